// Decode (batch-1 GEMV) throughput of the bitplane and tritplane formats' kernel variants (docs/formats.md),
// next to the int-group format at the same bits, from DRAM (every benchmark cycles through ≥ 512 MiB of weight copies)
// and hot (one L2-sized slice, the kernel's compute throughput on one thread).
//
//   planeq_bench_kernels --benchmark_filter=Bitplane --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Counters: GB/s = stored weight bytes per second; weights/ns; read_frac = (time to read a cold copy of the
// same bytes with the same threads) / (GEMV time on another cold copy), measured back to back, so that the
// shared machine's changing load cancels out.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "core/cpu_features.hpp"
#include "core/half.hpp"
#include "formats/bitplane.hpp"
#include "formats/int_group.hpp"
#include "formats/tritplane.hpp"

namespace {

using namespace planeq;
using planeq::bench::clone;
using planeq::bench::since;

constexpr size_t kWorkingSet = size_t(512) << 20;

PackedWeight random_bitplane(int64_t rows, int64_t cols, int k, int g, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> codes(size_t(rows * cols));
    for (auto& c : codes) c = uint8_t(rng() & ((1u << k) - 1));
    std::vector<uint16_t> coefs(size_t(rows * (cols / g) * (k + 1)));
    for (auto& c : coefs) c = f32_to_bf16(0.01f * (float(rng() % 200) / 100.0f - 1.0f));
    return pack_bitplane(rows, cols, FormatParams{k, g, false, false}, codes, coefs);
}

PackedWeight random_int(int64_t rows, int64_t cols, int bits, int g, uint32_t seed) {
    std::mt19937 rng(seed);
    const int maxq = (1 << bits) - 1;
    const int64_t ng = cols / g;
    std::vector<uint8_t> codes(size_t(rows * cols)), zeros(size_t(rows * ng));
    std::vector<uint16_t> scales(size_t(rows * ng));
    for (auto& c : codes) c = uint8_t(rng() & uint32_t(maxq));
    for (auto& z : zeros) z = uint8_t((maxq + 1) / 2);
    for (auto& s : scales) s = f32_to_f16(0.01f * (1.0f + float(rng() % 100) / 100.0f));
    return pack_int_group(rows, cols, FormatParams{bits, g, false, false}, codes, scales, zeros, {});
}


uint64_t read_bytes(const uint8_t* p, size_t n) {
    uint64_t total = 0;
    const auto* w = reinterpret_cast<const uint64_t*>(p);
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t i = 0; i < int64_t(n / 8); ++i) total += w[i];
    return total;
}


// Sets the kernel variant the arguments name for one benchmark and restores the previous one after.
struct VariantScope {
    BitplaneGemvVariant bp = bitplane_gemv_variant();
    TritplaneGemvVariant tp = tritplane_gemv_variant();
    VariantScope(int variant, int k) {
        if (variant == 98) set_tritplane_gemv_variant(TritplaneGemvVariant(k));
        else if (variant != 99) set_bitplane_gemv_variant(BitplaneGemvVariant(variant));
    }
    ~VariantScope() {
        set_bitplane_gemv_variant(bp);
        set_tritplane_gemv_variant(tp);
    }
};

std::string label(int k, int variant, int g) {
    const std::string what = variant == 99   ? "int" + std::to_string(k)
                             : variant == 98 ? std::string("tritplane ") + tritplane_gemv_variant_name(TritplaneGemvVariant(k))
                                             : std::string("bitplane k") + std::to_string(k) + " " +
                                                   bitplane_gemv_variant_name(BitplaneGemvVariant(variant));
    return what + " g" + std::to_string(g);
}

// Args: rows, cols, k (bits), variant (BitplaneGemvVariant; 99 = the int-group format, default variant;
// 98 = the tritplane format, k = its TritplaneGemvVariant), g.
void BM_BitplaneGemv(benchmark::State& state) {
    const int64_t rows = state.range(0), cols = state.range(1);
    const int k = int(state.range(2)), variant = int(state.range(3)), g = int(state.range(4));
    const bool is_int = variant == 99, is_trit = variant == 98;
    const VariantScope scope(variant, k);
    const PackedWeight one = is_int    ? random_int(rows, cols, k, g, 1)
                             : is_trit ? random_tritplane(rows, cols, g, 0.02f, 1)
                                       : random_bitplane(rows, cols, k, g, 1);
    std::vector<PackedWeight> ws;
    const size_t n = std::max<size_t>(2, (kWorkingSet + one.stored_bytes() - 1) / one.stored_bytes());
    for (size_t i = 0; i < n; ++i) ws.push_back(clone(one));
    std::mt19937 rng(11);
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(rows));
    for (auto& v : x) v = nd(rng);
    std::vector<double> frac;
    size_t i = 0;
    for (auto _ : state) {
        state.PauseTiming();
        const PackedWeight& other = ws[(i + n / 2) % n];
        auto t0 = std::chrono::steady_clock::now();
        for (const WeightPart& p : other.parts) benchmark::DoNotOptimize(read_bytes(p.data, p.spec.nbytes()));
        const double tr = since(t0);
        state.ResumeTiming();
        const PackedWeight& w = ws[i++ % n];
        t0 = std::chrono::steady_clock::now();
        w.format->gemv(w, x.data(), y.data());
        benchmark::DoNotOptimize(y.data());
        frac.push_back(tr / since(t0));
    }
    std::sort(frac.begin(), frac.end());
    state.counters["read_frac"] = frac.empty() ? 0.0 : frac[frac.size() / 2];
    state.counters["GB/s"] = benchmark::Counter(double(one.stored_bytes()), benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
    state.counters["weights/ns"] = benchmark::Counter(double(rows * cols) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(label(k, variant, g) + " " + simd_level_name(simd_level()));
}

// The whole GEMV on one thread, one weight of 256 rows × 4096 columns (≈ 300 KB at k = 2: L2-resident):
// compute throughput without memory in the way.
void BM_BitplaneGemvHot(benchmark::State& state) {
    const int k = int(state.range(0)), variant = int(state.range(1)), g = int(state.range(2));
    const bool is_int = variant == 99, is_trit = variant == 98;
    const VariantScope scope(variant, k);
    const int64_t rows = 256, cols = 4096;
    const PackedWeight w = is_int    ? random_int(rows, cols, k, g, 1)
                           : is_trit ? random_tritplane(rows, cols, g, 0.02f, 1)
                                     : random_bitplane(rows, cols, k, g, 1);
    std::vector<float> x(size_t(cols), 0.5f), y(static_cast<size_t>(rows));
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    for (auto _ : state) {
        w.format->gemv(w, x.data(), y.data());
        benchmark::DoNotOptimize(y.data());
    }
    omp_set_num_threads(threads);
    state.counters["weights/ns"] = benchmark::Counter(double(rows * cols) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(label(k, variant, g));
}

void gemv_args(benchmark::internal::Benchmark* b) {
    for (auto [r, c] : std::vector<std::pair<int, int>>{{4096, 4096}, {14336, 4096}, {4096, 14336}}) {
        for (int v : {0, 1, 2, 3}) b->Args({r, c, 2, v, 128});
        b->Args({r, c, 2, 99, 128});
        b->Args({r, c, 3, 99, 128});
        for (int tv : {0, 1, 2, 3, 4}) b->Args({r, c, tv, 98, 128});
    }
    for (int k : {3, 4})
        for (int v : {0, 3}) b->Args({4096, 4096, k, v, 128});
    b->Args({4096, 4096, 2, 3, 256});
    b->Args({4096, 4096, 2, 3, 64});
}

void hot_args(benchmark::internal::Benchmark* b) {
    for (int k : {2, 3, 4})
        for (int v : {0, 1, 2, 3}) b->Args({k, v, 128});
    b->Args({2, 99, 128});
    b->Args({4, 99, 128});
    for (int g : {128, 32, 64, 256})
        for (int tv : {0, 1, 2, 3, 4}) b->Args({tv, 98, g});
    b->Args({2, 3, 32});
    b->Args({2, 3, 256});
}

BENCHMARK(BM_BitplaneGemv)->Apply(gemv_args)->Unit(benchmark::kMicrosecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_BitplaneGemvHot)->Apply(hot_args)->Unit(benchmark::kMicrosecond)->MinTime(0.5)->UseRealTime();

}  // namespace
