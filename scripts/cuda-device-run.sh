#!/usr/bin/env bash
# One device call (the lent H200): run the CUDA tests and the decode benchmarks with binaries built on the
# CPU machine (carried in $C, default .devcarry/, with the shared libraries the GPU image lacks), logs to $OUT.
# Usage: [C=<carried folder>] scripts/cuda-device-run.sh [quick|full]
#   quick: int2 / bitplane k=2 g128 with the decode-switch A/B (PLANEQ_BENCH_VARIANTS=1); full: + the other formats.
set -uo pipefail
mode=${1:-full}
cd "$(dirname "$0")/.."
C=${C:-.devcarry}
. "$(dirname "${BASH_SOURCE[0]}")/cuda-device-env.sh"   # libraries, LD_LIBRARY_PATH
{ nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,clocks.max.sm,power.draw --format=csv; ldd $C/planeq | grep -i "not found\|cublas\|cudart"; } 2>&1 | tee $OUT/env.txt
timeout 200 $C/planeq_tests --gtest_brief=1 ${TEST_FILTER:+--gtest_filter=$TEST_FILTER} 2>&1 | tee $OUT/tests.log | tail -25
B="$C/planeq bench --device cuda --shape llama3-8b -p 0 -n 100 -r 5"
run() { echo "### $*"; timeout 120 $B "$@" 2>&1; }
{
  PLANEQ_BENCH_VARIANTS=1 run --format int --bits 2 --group 128
  PLANEQ_BENCH_VARIANTS=1 run --format bitplane --bits 2 --group 128 --no-baseline
  if [ "$mode" = full ]; then
    run --format int --bits 4 --group 128 --no-baseline
    run --format tritplane --group 128 --no-baseline
    run --format int --bits 2 --group 32 --no-baseline
    run --format int --bits 3 --group 128 --no-baseline
    run --format bitplane --bits 3 --group 128 --no-baseline
    run --format int --bits 2 --group 128 --batch 4 --no-baseline
    run --format int --bits 2 --group 128 --batch 8 --no-baseline
  fi
} 2>&1 | tee $OUT/bench.log | grep -v "^generating"
# SASS of the int8-path int2 g128 kernel and of the fp16 one: instruction mix.
cuobjdump -sass $C/planeq 2>/dev/null > $OUT/all.sass
for k in i8_gemv_kernelILi0ELi2ELi8E; do
  echo "== $k"; awk -v k=$k '/Function :/{f = index($0, k) > 0} f' $OUT/all.sass > $OUT/sass_$k.txt
  grep -oE "^\s+/\*[0-9a-f]{4}\*/\s+(@!?U?P\w+\s+)?[A-Z0-9]+" $OUT/sass_$k.txt | awk '{print $NF}' | sort | uniq -c | sort -rn | head -14 | tr '\n' ' '; echo
done
rm -f $OUT/all.sass
