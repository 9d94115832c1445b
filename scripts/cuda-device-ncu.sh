#!/usr/bin/env bash
# Diagnostics on the device: Nsight Compute on one plane GEMV (issue/stall statistics, occupancy), SASS of
# the int2 kernel, and the int2 bench. Usage: scripts/cuda-device-ncu.sh (binaries as cuda-device-run.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
C=.devcarry
. "$(dirname "${BASH_SOURCE[0]}")/cuda-device-env.sh"   # libraries, LD_LIBRARY_PATH
B="$C/planeq bench --device cuda --shape llama3-8b --format int --bits 2 --group 128 --no-baseline -p 0"
timeout 200 $B -n 100 -r 3 2>&1 | grep -v "^generating" | tee $OUT/bench.log
cuobjdump -sass $C/planeq 2>/dev/null | awk '/Function :/{f = ($0 ~ /plane_gemv_kernelILi0ELi0ELi8E/)} f' > $OUT/sass_int2_mode0_g128.txt
wc -l $OUT/sass_int2_mode0_g128.txt
timeout 300 ncu --clock-control none -k regex:plane_gemv_kernel --launch-skip 6 --launch-count 1 \
  --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats --section LaunchStats --section MemoryWorkloadAnalysis \
  $B -n 2 -r 1 --no-baseline > $OUT/ncu.txt 2>&1
grep -v "^generating" $OUT/ncu.txt | grep -E "Duration|Throughput|Warp Cycles|Stall|Issued|Eligible|Active Warps|Theoretical|Achieved|Registers|Block Limit|No Eligible|One or More|Memory|DRAM|L2|Waves|Grid|Block Size|Shared" | head -70
