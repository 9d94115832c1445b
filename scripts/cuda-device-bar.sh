#!/usr/bin/env bash
# One device call (the lent H200) for issue 8's 2-bit decode bar: the GPU tests, then the Llama-3-8B-shape decode
# stack (linears + bf16 head, batch 1) for int2 / bitplane k=2 g128 with the decode-switch A/B
# (PLANEQ_BENCH_VARIANTS=1: prep fusion × int8 weight pipeline depth, single GEMVs per depth and warps), int4 and
# tritplane g128 (regression rows), and the whole-forward decode. Binaries and libraries as in
# scripts/cuda-device-run.sh (C= the carried folder holding bins.tar.xz, libs.tar.xz and cuda-device-env.sh).
# NCU=1: Nsight Compute on layer 0's int2 gate/up (4 warps a tile) and down (8 warps) GEMVs, weights in registers
# (the default) and in the 4-stage shared-memory ring (PLANEQ_I8_STAGES=4).
# Usage: [C=<folder>] [SRC=<dir the tests were built in>] [TESTS=<gtest filter>] [VARIANTS=0|1] [FORWARD=0|1] [NCU=0|1]
#        scripts/cuda-device-bar.sh
set -uo pipefail
C=${C:-.devcarry-gpu}
. $C/cuda-device-env.sh   # libraries, binaries, LD_LIBRARY_PATH
# The forward tests look for the models and data under the source dir the test objects were built in (SRC,
# default /work/main): link the carried checkout's tiny-llama and $C/wiki.test.raw there (as cuda-device-infer.sh).
SRC=${SRC:-/work/main}
[ "$PWD" = "$SRC" ] || { mkdir -p $SRC/models && ln -sfn $PWD/models/tiny-llama $SRC/models/tiny-llama; }
[ ! -f $C/wiki.test.raw ] || { mkdir -p $SRC/../shared/data/wikitext2 && ln -sf $PWD/$C/wiki.test.raw $SRC/../shared/data/wikitext2/wiki.test.raw; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,clocks.max.sm,power.draw --format=csv 2>&1 | tee $OUT/env.txt
timeout ${TEST_TIMEOUT:-240} $C/planeq_tests --gtest_brief=1 --gtest_filter="${TESTS:-Cuda*:GpuPlane*}" 2>&1 | tee $OUT/tests.log | grep -v "^\[ *OK" | tail -30
B="$C/planeq bench --device cuda --shape llama3-8b -p 0 -n 100 -r 5"
run() { echo "### $*"; timeout 150 $B "$@" 2>&1 | grep -v "^generating"; }
{
  PLANEQ_BENCH_VARIANTS=${VARIANTS:-1} run --format int --bits 2 --group 128
  PLANEQ_BENCH_VARIANTS=${VARIANTS:-1} run --format bitplane --bits 2 --group 128 --no-baseline
  run --format int --bits 4 --group 128 --no-baseline
  run --format tritplane --group 128 --no-baseline
  if [ "${FORWARD:-1}" = 1 ]; then
    echo "### forward int2 g128"
    timeout 150 $C/planeq bench --shape llama3-8b --device cuda --forward --format int --bits 2 --group 128 -p 512 -n 128 -r 3 2>&1 | grep -v "^generating"
  fi
} 2>&1 | tee $OUT/bench.log | grep -E "^###|tokens/s|D2D|decode path|single GEMV|^  [a-z/]+ +[0-9]|pp|tg|error|Error"
if [ "${NCU:-0}" = 1 ]; then
  # The eager warm-up forward launches the int8 GEMVs in the order q/k/v, o, gate/up, down (layer 0).
  for st in 0 4; do
    echo "### ncu, int2 g128, PLANEQ_I8_STAGES=$st: gate/up then down of layer 0"
    PLANEQ_I8_STAGES=$st timeout 120 ncu --clock-control none -k regex:i8_gemv_kernel --launch-skip 2 --launch-count 2 \
      --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats --section LaunchStats \
      --section MemoryWorkloadAnalysis $C/planeq bench --device cuda --shape llama3-8b -p 0 --format int --bits 2 --group 128 --no-baseline -n 2 -r 1 > $OUT/ncu_st$st.txt 2>&1
    grep -v "^generating" $OUT/ncu_st$st.txt | grep -E "i8_gemv_kernel|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\)|Issue Slots Busy|Issued Ipc|No Eligible|Eligible Warps|Active Warps Per|Achieved Occupancy|Theoretical Occupancy|Registers Per|Shared Memory Config|Dynamic Shared|Warp Cycles Per Issued|Block Limit (Reg|Shared)|L1/TEX Hit|L2 Hit|Mem Busy|Max Bandwidth" | head -60
  done
fi
