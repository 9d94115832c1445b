#!/usr/bin/env bash
# Debian 12 packages planeq needs to build and test. Run as root (or with sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  build-essential cmake pkg-config git ca-certificates \
  libgtest-dev libbenchmark-dev \
  nlohmann-json3-dev libpcre2-dev libutf8proc-dev libeigen3-dev libopenblas-openmp-dev \
  libcli11-dev libcpp-httplib-dev libssl-dev
