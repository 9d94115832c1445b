#!/usr/bin/env bash
# planeq's default tritplane GEMV against llama.cpp's (ggml's) GEMV of a 3-bit-class type, both with weights
# no cache holds (bench/ggml_cold_gemv.c says why ggml's own perf test does not do that), alternated ROUNDS
# times on the same machine so the bandwidth drift of a shared VM falls on both alike.
#
#   scripts/ggml-cold-gemv.sh GGML_DIR [ROUNDS=5] [TYPE=q3_K] [ROWS=4096] [COLS=14336]
#
# GGML_DIR: a built ggml checkout (include/ and build/src/libggml*.so; ggml 9a4acb37 was used for the
# README's figures). Needs planeq_bench_kernels built in build/. ROWS × COLS: one of the shapes
# planeq_bench_kernels has (4096 × 4096, 14336 × 4096, 4096 × 14336). Prints per round the two times in µs,
# each one's fraction of the read bandwidth sampled next to it, and planeq's speed-up; then the medians.
set -euo pipefail
ggml=${1:?usage: $0 GGML_DIR [ROUNDS] [TYPE] [ROWS] [COLS]}
rounds=${2:-5} type=${3:-q3_K} rows=${4:-4096} cols=${5:-14336}
root=$(cd "$(dirname "$0")/.." && pwd)
bench=$root/build/planeq_bench_kernels
[[ -x $bench ]] || { echo "$0: $bench not found (cmake --build build --target planeq_bench_kernels)" >&2; exit 1; }
[[ -f $ggml/include/ggml.h && -d $ggml/build/src ]] || { echo "$0: $ggml is not a built ggml checkout (include/ggml.h, build/src/)" >&2; exit 1; }
bin=$(mktemp -d)/ggml_cold_gemv
trap 'rm -rf "$(dirname "$bin")"' EXIT
gcc -O2 -fopenmp "$root/bench/ggml_cold_gemv.c" -I"$ggml/include" -L"$ggml/build/src" -lggml -lggml-base -lggml-cpu \
    -Wl,-rpath,"$ggml/build/src" -lm -o "$bin"

export OMP_WAIT_POLICY=active
ours=() theirs=() ratio=()
for ((r = 1; r <= rounds; ++r)); do
    # Variant 3 of the tritplane format: the default (AVX-512: the Lut7 row blocks; AVX2: the triples).
    o=$("$bench" --benchmark_filter="BM_BitplaneGemv/$rows/$cols/3/98/" --benchmark_repetitions=3 \
        --benchmark_report_aggregates_only=true 2>/dev/null | awk '/_median/ {for (i = 1; i <= NF; ++i) if ($i ~ /^read_frac=/) f = substr($i, 11); print $2, f}')
    t=$("$bin" "$type" "$rows" "$cols" 2 5 | sed -E 's/.*median ([0-9.]+) us.*read_frac ([0-9.]+).*/\1 \2/')
    read -r ot of <<<"$o"
    read -r tt tf <<<"$t"
    x=$(awk -v a="$ot" -v b="$tt" 'BEGIN { printf "%.3f", b / a }')
    printf 'round %d: planeq tritplane %s us (%.0f%% of read), ggml %s %s us (%.0f%% of read): %s×\n' "$r" "$ot" \
        "$(awk -v f="$of" 'BEGIN { print 100 * f }')" "$type" "$tt" "$(awk -v f="$tf" 'BEGIN { print 100 * f }')" "$x"
    ours+=("$ot") theirs+=("$tt") ratio+=("$x")
done
med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "median of $rounds rounds: planeq $(med "${ours[@]}") us, ggml $type $(med "${theirs[@]}") us, speed-up $(med "${ratio[@]}")×"
