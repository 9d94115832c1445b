#!/usr/bin/env bash
# One device call (the lent H200) for GPU quantization: the CudaQuant tests, then `planeq bench-quant` of the
# Llama-3-8B shape with GPTQ and BPDQ (each under a time limit: a partial run still prints per-layer times and
# the extrapolated whole-model time). Binaries built on the CPU machine, carried with the shared libraries
# the GPU image lacks (docs/cuda.md). Usage: C=<carry folder> bash <carry folder>/cuda-device-quant.sh [GPTQ_S BPDQ_S]
set -uo pipefail
C=${C:-.devcarry}
gptq_s=${1:-60}
bpdq_s=${2:-100}
. "$(dirname "${BASH_SOURCE[0]}")/cuda-device-env.sh"   # libraries, LD_LIBRARY_PATH
{ date -u; nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,memory.total --format=csv
  ldd $C/planeq | grep -iE "not found|cublas|cusolver|cusparse|nvjitlink|cudart"; } 2>&1 | tee $OUT/env.txt
timeout 150 $C/planeq_tests --gtest_filter='CudaQuant*' 2>&1 | tee $OUT/tests.log | grep -vE "^\[ +(RUN|OK) " | tail -40
B="$C/planeq bench-quant --shape llama3-8b --device cuda --bits 2 --group 128"
echo "### $B --method gptq --time-limit $gptq_s"
timeout $((gptq_s + 45)) $B --method gptq --time-limit $gptq_s 2>&1 | tee $OUT/gptq.log
echo "### $B --method bpdq --iters 10 --time-limit $bpdq_s"
timeout $((bpdq_s + 60)) $B --method bpdq --iters 10 --time-limit $bpdq_s 2>&1 | tee $OUT/bpdq.log
nvidia-smi --query-gpu=clocks.sm,power.draw,memory.used --format=csv | tee -a $OUT/env.txt
