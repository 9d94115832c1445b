#!/usr/bin/env bash
# One device call (the lent H200) for the batch-1 bandwidth-first GEMV (gemv_bw.cu, DecodeOptions::bw; issue 8's
# 2-bit decode bar): the GPU tests, then the Llama-3-8B-shape decode stack (linears + bf16 head, batch 1) for int2
# and bitplane k=2 g128 with the bw A/B in the same run (PLANEQ_BENCH_BW=1: bw off = the int8 path, bw on automatic,
# with the gate/up pairing off, row blocks per CTA or column split forced; the MLP alone a layer, pairing × down's
# split; single GEMVs at every (rows, split)), int4 and tritplane g128 (unchanged paths), and the
# whole-forward decode with bw off and on. Binaries and libraries as in scripts/cuda-device-run.sh (C= the carried
# folder holding bins.tar.xz, libs.tar.xz and cuda-device-env.sh).
# Usage: [C=<folder>] [SRC=<dir the tests were built in>] [TESTS=<gtest filter>] [FORWARD=0|1] scripts/cuda-device-bw.sh
set -uo pipefail
C=${C:-.devcarry-bw}
. $C/cuda-device-env.sh   # libraries, binaries, LD_LIBRARY_PATH
# The forward tests look for tiny-llama under the source dir the tests were built in (SRC): link it there.
SRC=${SRC:-/work/main}
[ "$PWD" = "$SRC" ] || { mkdir -p $SRC/models && ln -sfn $PWD/models/tiny-llama $SRC/models/tiny-llama; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,clocks.max.sm,power.draw --format=csv 2>&1 | tee $OUT/env.txt
if [ "${TESTS:-Cuda*:GpuPlane*}" != none ]; then
  timeout ${TEST_TIMEOUT:-200} $C/planeq_tests --gtest_brief=1 --gtest_filter="${TESTS:-Cuda*:GpuPlane*}" 2>&1 | tee $OUT/tests.log | grep -v "^\[ *OK" | tail -40
fi
B="$C/planeq bench --device cuda --shape llama3-8b -p 0 -n 100 -r 5"
if [ "${PROF:-0}" = 1 ]; then
  # Where the bw kernel's time goes: single GEMVs with the quantization or the weight loop skipped (PLANEQ_BW_SKIP=1 / 2,
  # wrong results, timing only), then Nsight Compute on layer 0's gate/up and down bw launches (eager warm-up).
  for skip in 0 1 2; do
    echo "### PLANEQ_BW_SKIP=$skip"
    PLANEQ_BW_SKIP=$skip PLANEQ_BENCH_BW=1 timeout 100 $C/planeq bench --device cuda --shape llama3-8b -p 0 -n 20 -r 2 --format int --bits 2 --group 128 --no-baseline 2>&1 | grep -A4 "bw path (prep"
  done
  timeout 150 ncu --clock-control none -k regex:bw_gemv_kernel --launch-skip 2 --launch-count 2 --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section SchedulerStats --section LaunchStats --section MemoryWorkloadAnalysis --section InstructionStats \
    $C/planeq bench --device cuda --shape llama3-8b -p 0 --format int --bits 2 --group 128 --no-baseline -n 2 -r 1 > $OUT/ncu.txt 2>&1
  grep -v "^generating" $OUT/ncu.txt | grep -E "bw_gemv_kernel|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\)|Issue Slots Busy|Issued Ipc|No Eligible|Eligible Warps|Active Warps Per|Achieved Occupancy|Theoretical Occupancy|Registers Per|Dynamic Shared|Warp Cycles Per Issued|Block Limit|L1/TEX Hit|L2 Hit|Mem Busy|Executed Instructions|Stall|stall" | head -80
  exit 0
fi
run() { echo "### $*"; timeout 150 $B "$@" 2>&1 | grep -v "^generating"; }
{
  PLANEQ_BENCH_BW=1 run --format int --bits 2 --group 128
  PLANEQ_BENCH_BW=1 run --format bitplane --bits 2 --group 128 --no-baseline
  run --format int --bits 4 --group 128 --no-baseline
  run --format tritplane --group 128 --no-baseline
  if [ "${FORWARD:-1}" = 1 ]; then
    for bw in 0 1; do
      echo "### forward int2 g128, PLANEQ_GEMV_BW=$bw"
      PLANEQ_GEMV_BW=$bw timeout 120 $C/planeq bench --shape llama3-8b --device cuda --forward --format int --bits 2 --group 128 -p 512 -n 128 -r 3 2>&1 | grep -v "^generating"
    done
  fi
} 2>&1 | tee $OUT/bench.log | grep -E "^###|tokens/s|D2D|decode path|single GEMV|MLP|^  [a-z/_]+ +[0-9]|pp|tg|error|Error"
