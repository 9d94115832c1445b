#!/usr/bin/env bash
# One device call (the lent H200) for the prefill GEMM: the GPU tests, then the prefill benchmarks of the
# Llama-3-8B linear stack (planeq plane GEMM vs cuBLAS bf16), and the SASS summary of the int2 128x256 GEMM kernel.
# Binaries and libraries as in scripts/cuda-device-run.sh; C= the carried folder (default .devcarry).
# Usage: scripts/cuda-device-prefill.sh [quick|tiles|full]   (TESTS=gtest filter, default CudaGemm.*:CudaGemv.*)
set -uo pipefail
mode=${1:-full}
C=${C:-.devcarry}
. "$(dirname "${BASH_SOURCE[0]}")/cuda-device-env.sh"   # libraries, LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,clocks.max.sm,power.draw --format=csv 2>&1 | tee $OUT/env.txt
timeout 240 $C/planeq_tests --gtest_brief=1 --gtest_filter="${TESTS:-CudaGemm.*:CudaGemv.*}" 2>&1 | tee $OUT/tests.log | tail -40
B="$C/planeq bench --device cuda --shape llama3-8b -n 0 -r 5"
run() { echo "### $*"; timeout 200 $B "$@" 2>&1; }
{
  run --format int --bits 2 --group 128 -p 2048
  run --format bitplane --bits 2 --group 128 -p 2048 --no-baseline
  if [ "$mode" = tiles ]; then  # the CTA tile configurations (PLANEQ_GEMM_TILE: 1 128x128, 2 256x128, 3 128x256)
    for t in 1 2 3; do
      echo "## PLANEQ_GEMM_TILE=$t"
      PLANEQ_GEMM_TILE=$t run --format int --bits 2 --group 128 -p 2048 --no-baseline
      PLANEQ_GEMM_TILE=$t run --format bitplane --bits 2 --group 128 -p 2048 --no-baseline
      PLANEQ_GEMM_TILE=$t run --format int --bits 2 --group 128 -p 512 --no-baseline
    done
  fi
  if [ "$mode" = full ]; then
    run --format int --bits 2 --group 128 -p 512
    run --format bitplane --bits 2 --group 128 -p 512 --no-baseline
    run --format int --bits 4 --group 128 -p 2048 --no-baseline
    run --format int --bits 3 --group 128 -p 2048 --no-baseline
    run --format tritplane --group 128 -p 2048 --no-baseline
  fi
} 2>&1 | tee $OUT/bench.log | grep -v "^generating"
cuobjdump -sass $C/planeq 2>/dev/null | awk '/Function :/{f = ($0 ~ /plane_gemm_kernelILi0ELi1ELi1ELi256E/)} f' > $OUT/sass_gemm_int2.txt
grep -oE "^\s+/\*[0-9a-f]{4}\*/\s+(@!?U?P\w+\s+)?[A-Z0-9]+" $OUT/sass_gemm_int2.txt | awk '{print $NF}' | sort | uniq -c | sort -rn | head -16 | tr '\n' ' '; echo
