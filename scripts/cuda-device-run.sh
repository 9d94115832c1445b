#!/usr/bin/env bash
# One device call (the lent H200): run the CUDA tests and the decode benchmarks with binaries built on the
# CPU machine (carried in .devcarry/ with the shared libraries the GPU image lacks), logs to $OUT.
# Usage: scripts/cuda-device-run.sh [quick|full]
set -uo pipefail
mode=${1:-full}
cd "$(dirname "$0")/.."
C=.devcarry
mkdir -p $C/lib && tar -xJf $C/libs.tar.xz -C $C/lib
cub=$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null)
export LD_LIBRARY_PATH=$PWD/$C/lib:/usr/local/cuda/lib64:${cub}:${LD_LIBRARY_PATH:-}
export OMP_NUM_THREADS=16
{ nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,clocks.max.sm,power.draw --format=csv; ldd $C/planeq | grep -i "not found\|cublas\|cudart"; } 2>&1 | tee $OUT/env.txt
$C/planeq_tests --gtest_brief=1 2>&1 | tee $OUT/tests.log | tail -25
B="$C/planeq bench --device cuda --shape llama3-8b -p 0 -n 100 -r 5"
run() { echo "### $*"; timeout 300 $B "$@" 2>&1; }
{
  run --format int --bits 2 --group 128
  run --format bitplane --bits 2 --group 128 --no-baseline
  run --format int --bits 2 --group 32 --no-baseline
  if [ "$mode" = full ]; then
    run --format int --bits 4 --group 128 --no-baseline
    run --format bitplane --bits 3 --group 128 --no-baseline
    run --format tritplane --group 128 --no-baseline
    run --format int --bits 3 --group 128 --no-baseline
    run --format int --bits 2 --group 128 --batch 8 --no-baseline
    run --format int --bits 2 --group 128 --batch 16 --no-baseline
  fi
} 2>&1 | tee $OUT/bench.log | grep -v "^generating"
# SASS of the int2 g128 packed-mode kernel: instruction mix (LOP3 per decode, HMMA count).
cuobjdump -sass $C/planeq 2>/dev/null | awk '/Function :/{f = ($0 ~ /plane_gemv_kernelILi0ELi0ELi8E/)} f' > $OUT/sass_int2.txt
grep -oE "^\s+/\*[0-9a-f]{4}\*/\s+(@!?U?P\w+\s+)?[A-Z0-9]+" $OUT/sass_int2.txt | awk '{print $NF}' | sort | uniq -c | sort -rn | head -12 | tr '\n' ' '; echo
