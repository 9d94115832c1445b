#!/usr/bin/env bash
# One device call (the lent H200) for the full-GPU forward (issue 8 item 3): the GPU forward tests, `planeq ppl`,
# `run`, `kld` and `bench` with --device cuda on the bundled tiny-llama and an RTN int2 g128 copy of it, and
# the Llama-3-8B-shape forward (random weights). Binaries and libraries as in scripts/cuda-device-run.sh.
# C= the carried folder (default .devcarry-infer) holding bins.tar.xz (planeq, planeq_tests: xz keeps the
# call under the 64 MiB the device takes), libs.tar.xz and wiki.test.raw; the int2 copy is quantized there
# (planeq quantize models/tiny-llama -m rtn -b 2 -g 128, 2 s). The test binary looks for the
# models under the source dir it was built in (PLANEQ_SOURCE_DIR=SRC, default /work/main): links are
# made there. Usage: scripts/cuda-device-infer.sh [tests|all]   (TESTS=gtest filter, default CudaForward.*)
set -uo pipefail
mode=${1:-all}
C=${C:-.devcarry-infer}
SRC=${SRC:-/work/main}
. "$(dirname "${BASH_SOURCE[0]}")/cuda-device-env.sh"   # libraries, LD_LIBRARY_PATH
mkdir -p $SRC/models $SRC/../shared/data/wikitext2
ln -sfn $PWD/models/tiny-llama $SRC/models/tiny-llama
ln -sf $PWD/$C/wiki.test.raw $SRC/../shared/data/wikitext2/wiki.test.raw
W=$C/wiki.test.raw; M=models/tiny-llama; Q=$C/tiny-llama-int2; P="$C/planeq"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,clocks.max.sm,power.draw --format=csv 2>&1 | tee $OUT/env.txt
timeout ${TEST_TIMEOUT:-150} $C/planeq_tests --gtest_brief=1 --gtest_filter="${TESTS:-CudaForward.*}" 2>&1 | tee $OUT/tests.log | grep -v "^\[ *OK"
[ "$mode" = tests ] && exit 0
step() { echo "### $*"; timeout 100 "$@" 2>&1 | grep -v "^generating"; }
{
  step $P quantize $M -o $Q -m rtn -b 2 -g 128 -q --force
  step $P ppl $M -f $W --device cuda
  step $P ppl $M -f $W --device cuda --protocol second-half
  step $P ppl $Q -f $W --device cuda
  step $P ppl $Q -f $W --max-windows 40
  step $P ppl $Q -f $W --max-windows 40 --device cuda
  step $P kld $M $Q -f $W --device cuda --json
  for d in cpu cuda; do step $P run $M -p "The history of the city" -n 48 --temp 0 --device $d --json; done
  for d in cpu cuda; do step $P run $Q -p "The history of the city" -n 48 --temp 0 --device $d --json; done
  step $P bench $M --device cuda -p 512 -n 256 -r 3
  step $P bench $Q --device cuda -p 512 -n 256 -r 3
  step $P bench --shape llama3-8b --device cuda --forward --format int --bits 2 --group 128 -p 2048 -n 128 -r 3
  step $P bench --shape llama3-8b --device cuda --forward --format int --bits 2 --group 128 -p 512 -n 0 -r 3
  step $P bench --shape llama3-8b --device cuda --forward --format bf16 -p 2048 -n 128 -r 3
} 2>&1 | tee $OUT/cli.log
