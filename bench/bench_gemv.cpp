// Decode (batch-1 GEMV) throughput of the int-group format against dense bf16, and the machine's memory
// bandwidth measured in the same binary (STREAM-style read and copy over ≥ 1 GiB with the OpenMP team).
//
//   build-int/planeq_bench_kernels --benchmark_filter='Mem|Gemv|Decode' --benchmark_repetitions=5 \
//       --benchmark_report_aggregates_only=true
//
// Every GEMV benchmark cycles through enough copies of its weight (≥ 512 MiB in all) that each call
// reads the weight from DRAM, as a decode step does: a single 4096×4096 int4 matrix (8.7 MB) would
// otherwise sit in L3 and measure the cache. Counters: GB/s = stored weight bytes per second;
// bw_frac = GB/s over the read bandwidth (BM_MemRead's kernel, median of 5 passes, measured once).
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "bench_util.hpp"
#include "core/cpu_features.hpp"
#include "core/half.hpp"
#include "formats/dense.hpp"
#include "formats/int_group.hpp"
#include "kernels/cpu/int_group_kernels.hpp"

namespace {

using namespace planeq;
using planeq::bench::clone;
using planeq::bench::since;

constexpr size_t kStreamBytes = size_t(1) << 30;     // 1 GiB per array
constexpr size_t kWorkingSet = size_t(512) << 20;    // GEMV weights cycled per benchmark

// Untouched pages would read as the shared zero page: fill for real.
struct Buffer {
    uint8_t* p = nullptr;
    size_t n = 0;
    explicit Buffer(size_t bytes) : p(static_cast<uint8_t*>(std::aligned_alloc(64, bytes))), n(bytes) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < int64_t(n / 4096); ++i) std::memset(p + i * 4096, int(i & 0x7f) + 1, 4096);
    }
    ~Buffer() { std::free(p); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
};

// Sums every 64-bit word with 512-bit loads (the way the GEMV reads), the team splitting the array.
__attribute__((target("avx512f"))) uint64_t read_avx512(const uint8_t* p, size_t n) {
    uint64_t total = 0;
#pragma omp parallel reduction(+ : total)
    {
        const int64_t lines = int64_t(n / 256);
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < lines; ++i) {
            const __m512i* q = reinterpret_cast<const __m512i*>(p + i * 256);
            a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(q));
            a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(q + 1));
            a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(q + 2));
            a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(q + 3));
        }
        total += uint64_t(_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3))));
    }
    return total;
}

uint64_t read_generic(const uint8_t* p, size_t n) {
    uint64_t total = 0;
    const auto* w = reinterpret_cast<const uint64_t*>(p);
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t i = 0; i < int64_t(n / 8); ++i) total += w[i];
    return total;
}

uint64_t read_all(const uint8_t* p, size_t n) {
    return cpu_features().avx512f ? read_avx512(p, n) : read_generic(p, n);
}

__attribute__((target("avx512f"))) void copy_avx512(uint8_t* dst, const uint8_t* src, size_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < int64_t(n / 256); ++i) {
        const __m512i* s = reinterpret_cast<const __m512i*>(src + i * 256);
        __m512i* d = reinterpret_cast<__m512i*>(dst + i * 256);
        _mm512_store_si512(d, _mm512_load_si512(s));
        _mm512_store_si512(d + 1, _mm512_load_si512(s + 1));
        _mm512_store_si512(d + 2, _mm512_load_si512(s + 2));
        _mm512_store_si512(d + 3, _mm512_load_si512(s + 3));
    }
}

void copy_all(uint8_t* dst, const uint8_t* src, size_t n) {
    if (cpu_features().avx512f) {
        copy_avx512(dst, src, n);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < int64_t(n / 4096); ++i) std::memcpy(dst + i * 4096, src + i * 4096, 4096);
}


// The q-quantile of per-iteration times (q = 0.1: the 10% fastest iterations, the machine at its least
// disturbed: this box is shared, and one descheduled thread stalls a whole parallel call).
double quantile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[size_t(q * double(v.size() - 1))];
}

struct Bandwidth {
    double median = 0, p10 = 0;  // GB/s
};

// Read bandwidth: 21 passes over 1 GiB after a warm-up, median and 10th-percentile-fastest, measured once.
const Bandwidth& read_bandwidth() {
    static const Bandwidth bw = [] {
        Buffer b(kStreamBytes);
        benchmark::DoNotOptimize(read_all(b.p, b.n));
        std::vector<double> t;
        for (int i = 0; i < 21; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            benchmark::DoNotOptimize(read_all(b.p, b.n));
            t.push_back(since(t0));
        }
        return Bandwidth{double(b.n) / quantile(t, 0.5) / 1e9, double(b.n) / quantile(t, 0.1) / 1e9};
    }();
    return bw;
}

// Per-iteration times of a benchmark loop.
struct IterTimes {
    std::vector<double> t;
    std::chrono::steady_clock::time_point t0;
    void start() { t0 = std::chrono::steady_clock::now(); }
    void stop() { t.push_back(since(t0)); }
    double total() const {
        double s = 0;
        for (double x : t) s += x;
        return s;
    }
};

// GB/s = bytes per second over the whole run (Google Benchmark's rate); GB/s_p10 = bytes over the 10%
// quantile iteration time. bw_frac, bw_frac_p10: those over the read bandwidth's median and p10.
// read_frac: median over iterations of (time to read a cold copy of the weight's bytes with the same
// threads) / (time of the GEMV on another cold copy), measured back to back, so that the ever-changing
// load of this shared machine cancels out.
void set_counters(benchmark::State& state, double bytes_per_iter, const IterTimes& it, const IterTimes& rd) {
    if (!rd.t.empty()) {
        std::vector<double> f;
        for (size_t i = 0; i < std::min(rd.t.size(), it.t.size()); ++i) f.push_back(rd.t[i] / it.t[i]);
        state.counters["read_frac"] = quantile(f, 0.5);
    }
    state.counters["GB/s"] =
        benchmark::Counter(bytes_per_iter, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
    const double mean_gbs = bytes_per_iter * double(it.t.size()) / it.total() / 1e9;
    const double p10_gbs = bytes_per_iter / quantile(it.t, 0.1) / 1e9;
    state.counters["GB/s_p10"] = p10_gbs;
    state.counters["bw_frac"] = mean_gbs / read_bandwidth().median;
    state.counters["bw_frac_p10"] = p10_gbs / read_bandwidth().p10;
}

void BM_MemRead(benchmark::State& state) {
    Buffer b(kStreamBytes);
    IterTimes it;
    for (auto _ : state) {
        it.start();
        benchmark::DoNotOptimize(read_all(b.p, b.n));
        it.stop();
    }
    state.counters["GB/s_p10"] = double(b.n) / quantile(it.t, 0.1) / 1e9;
    state.counters["GB/s"] = benchmark::Counter(double(b.n), benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
    state.counters["threads"] = omp_get_max_threads();
    state.SetLabel("1 GiB");
}

// The GEMV's access pattern without its arithmetic: rows of `row_bytes`, 8 rows at a time, 64 bytes of
// each per step (args: row bytes, software prefetch distance in lines, 0 = none). Shows what streaming
// eight short rows at once costs against one long stream (BM_MemRead).
__attribute__((target("avx512f"))) uint64_t read_rows_avx512(const uint8_t* p, size_t n, int64_t rb, int64_t pf) {
    uint64_t total = 0;
    const int64_t blocks = int64_t(n) / (8 * rb), lines = rb / 64;
#pragma omp parallel reduction(+ : total)
    {
        __m512i acc = _mm512_setzero_si512();
#pragma omp for schedule(static)
        for (int64_t b = 0; b < blocks; ++b) {
            const uint8_t* base = p + b * 8 * rb;
            for (int64_t l = 0; l < lines; ++l) {
                for (int t = 0; t < 8; ++t) {
                    if (pf) _mm_prefetch(reinterpret_cast<const char*>(base + t * rb + (l + pf) * 64), _MM_HINT_T0);
                    acc = _mm512_add_epi64(acc, _mm512_loadu_si512(base + t * rb + l * 64));
                }
            }
        }
        total += uint64_t(_mm512_reduce_add_epi64(acc));
    }
    return total;
}

void BM_MemReadRows(benchmark::State& state) {
    if (!cpu_features().avx512f) {
        state.SkipWithError("needs AVX-512");
        return;
    }
    Buffer b(kStreamBytes);
    IterTimes it;
    for (auto _ : state) {
        it.start();
        benchmark::DoNotOptimize(read_rows_avx512(b.p, b.n, state.range(0), state.range(1)));
        it.stop();
    }
    state.counters["GB/s_p10"] = double(b.n) / quantile(it.t, 0.1) / 1e9;
    state.counters["GB/s"] = benchmark::Counter(double(b.n), benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

// STREAM copy convention: bytes = read + written (2 × 1 GiB); write-allocate traffic is not counted.
void BM_MemCopy(benchmark::State& state) {
    Buffer src(kStreamBytes), dst(kStreamBytes);
    IterTimes it;
    for (auto _ : state) {
        it.start();
        copy_all(dst.p, src.p, src.n);
        benchmark::ClobberMemory();
        it.stop();
    }
    state.counters["GB/s_p10"] = 2.0 * double(src.n) / quantile(it.t, 0.1) / 1e9;
    state.counters["GB/s"] = benchmark::Counter(2.0 * double(src.n), benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
    state.counters["threads"] = omp_get_max_threads();
    state.SetLabel("1 GiB -> 1 GiB");
}

// ---- weights -------------------------------------------------------------------------------------------

// A random int-group weight (4-bit codes spread over the grid, scales ~ 1e-2, zeros mid-range).
PackedWeight random_int(int64_t rows, int64_t cols, int bits, int group, uint32_t seed) {
    std::mt19937 rng(seed);
    const int maxq = (1 << bits) - 1;
    const int64_t ng = cols / group;
    std::vector<uint8_t> codes(size_t(rows * cols)), zeros(size_t(rows * ng));
    std::vector<uint16_t> scales(size_t(rows * ng));
    for (auto& c : codes) c = uint8_t(rng() & uint32_t(maxq));
    for (auto& z : zeros) z = uint8_t((maxq + 1) / 2 + int(rng() % 3) - 1);
    for (auto& s : scales) s = f32_to_f16(0.01f * (1.0f + float(rng() % 100) / 100.0f));
    return pack_int_group(rows, cols, FormatParams{bits, group, false, false}, codes, scales, zeros, {});
}

PackedWeight random_bf16(int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint16_t> w(size_t(rows * cols));
    for (auto& v : w) v = uint16_t(0x3c00 ^ (rng() & 0x807f));
    PackedWeight pw;
    pw.format = &kFormatBF16;
    pw.rows = rows;
    pw.cols = cols;
    pw.add_part(PartSpec{"weight", DType::BF16, {rows, cols}}, {reinterpret_cast<const uint8_t*>(w.data()), w.size() * 2});
    return pw;
}


// Reads every stored byte of w (the bandwidth-bound floor of a GEMV over it).
void read_weight(const PackedWeight& w) {
    for (const WeightPart& p : w.parts) benchmark::DoNotOptimize(read_all(p.data, p.spec.nbytes()));
}

std::vector<PackedWeight> copies(const PackedWeight& w, size_t working_set) {
    std::vector<PackedWeight> out;
    if (working_set == 0) return out;
    const size_t n = std::max<size_t>(2, (working_set + w.stored_bytes() - 1) / w.stored_bytes());
    for (size_t i = 0; i < n; ++i) out.push_back(clone(w));
    return out;
}

std::vector<float> random_x(int64_t n) {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = nd(rng);
    return x;
}

// Args: rows (out), cols (in), bits (16 = bf16 dense), variant (int only: IntGemvVariant). `hot`: one
// copy of the weight, called again and again (it stays in cache where it fits: the kernel's compute
// throughput, not a decode).
void gemv_bench(benchmark::State& state, bool hot) {
    const int64_t rows = state.range(0), cols = state.range(1);
    const int bits = int(state.range(2));
    const auto variant = IntGemvVariant(state.range(3));
    const IntGemvVariant saved = int_group_gemv_variant();
    set_int_group_gemv_variant(variant);
    read_bandwidth();  // measured before, not during, the timing
    const PackedWeight one = bits == 16 ? random_bf16(rows, cols, 1) : random_int(rows, cols, bits, 128, 1);
    std::vector<PackedWeight> ws = copies(one, hot ? 0 : kWorkingSet);
    const std::vector<float> x = random_x(cols);
    std::vector<float> y(static_cast<size_t>(rows));
    size_t i = 0;
    IterTimes it, rd;
    for (auto _ : state) {
        if (!hot) {  // the paired read of another cold copy (untimed for Google Benchmark)
            state.PauseTiming();
            rd.start();
            read_weight(ws[(i + ws.size() / 2) % ws.size()]);
            rd.stop();
            state.ResumeTiming();
        }
        const PackedWeight& w = hot ? one : ws[i++ % ws.size()];
        it.start();
        w.format->gemv(w, x.data(), y.data());
        benchmark::DoNotOptimize(y.data());
        it.stop();
    }
    set_counters(state, double(one.stored_bytes()), it, rd);
    state.SetLabel(std::string(bits == 16 ? "bf16" : "int" + std::to_string(bits) + "-g128 " +
                                                         int_group_gemv_variant_name(variant)) +
                   " " + simd_level_name(simd_level()));
    set_int_group_gemv_variant(saved);
}

void gemv_args(benchmark::internal::Benchmark* b) {
    for (auto [r, c] : std::vector<std::pair<int, int>>{{4096, 4096}, {4096, 14336}, {14336, 4096}}) {
        for (int bits : {4, 3, 2}) b->Args({r, c, bits, int(int_group_gemv_variant())});  // the default
        b->Args({r, c, 16, 0});
    }
    b->Args({128256, 4096, 16, 0});  // Llama-3-8B's bf16 lm_head: a third of a 2-bit model's bytes per token
}

// The alternatives measured for the design (docs/formats.md): activation block g vs 32, f32 activations.
void gemv_variant_args(benchmark::internal::Benchmark* b) {
    for (auto [r, c] : std::vector<std::pair<int, int>>{{4096, 4096}, {4096, 14336}})
        for (int bits : {4, 2})
            for (int v : {int(IntGemvVariant::Int8Act32), int(IntGemvVariant::Int8ActGroup), int(IntGemvVariant::F32Act),
                           int(IntGemvVariant::Int8RowBlocks)})
                b->Args({r, c, bits, v});
}

// The AVX-512 int8 row kernel alone on one thread, on an L2-resident slice (128 rows × 4096 columns;
// 256 KB at 4-bit): compute throughput in weights per nanosecond, no memory or threading in the way.
// Args: bits, activation block (32 or 128), rows (128: L2-resident; 4: L1-resident).
void BM_KernelL2(benchmark::State& state) {
    const int bits = int(state.range(0)), block = int(state.range(1));
    const int64_t rows = state.range(2), cols = 4096, ng = cols / 128;
    if (simd_level() != SimdLevel::Avx512) {
        state.SkipWithError("needs AVX-512");
        return;
    }
    const PackedWeight w = random_int(rows, cols, bits, 128, 1);
    const std::vector<uint8_t> zeros = unpack_int_group_zeros(w);
    cpu::IntGroupView v;
    v.qweight = w.part("qweight").data;
    v.rows = rows;
    v.cols = cols;
    v.bits = bits;
    v.group = 128;
    v.ngroups = ng;
    v.scales = w.part("scales").as<uint16_t>();
    v.zeros = zeros.data();
    const std::vector<float> x = random_x(cols);
    std::vector<int8_t> xq(size_t(cols + 64), 0);
    std::vector<float> d(size_t(cols / block)), dexp(size_t(cols / 64 * 16)), zsum(size_t(ng), 0.5f);
    std::vector<int32_t> sx(d.size());
    cpu::int_group_quantize_act_avx512(x.data(), cols, block, xq.data(), d.data(), sx.data());
    for (size_t k = 0; k < d.size() && block == 32; ++k) std::fill_n(dexp.begin() + (k / 2) * 16 + (k % 2) * 8, 8, d[k]);
    const cpu::Int8Act a{block, xq.data(), d.data(), dexp.data(), zsum.data()};
    std::vector<float> y(static_cast<size_t>(rows));
    for (auto _ : state) {
        cpu::int_group_gemv_rows_avx512(v, a, 0, rows, y.data());
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["weights/ns"] = benchmark::Counter(double(rows * cols) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GB/s"] = benchmark::Counter(double(w.stored_bytes()), benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

void BM_Gemv(benchmark::State& state) { gemv_bench(state, false); }
void BM_GemvVariant(benchmark::State& state) { gemv_bench(state, false); }
void BM_GemvHot(benchmark::State& state) { gemv_bench(state, true); }

// One Llama-3-8B decoder layer's linears (q, k, v, o, gate, up, down), cycled over enough layers to
// exceed the caches; tok/s extrapolates to 32 layers (linears only: no attention, norms, lm_head).
void BM_DecodeLlama3_8B(benchmark::State& state) {
    const int bits = int(state.range(0));
    read_bandwidth();
    const std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {1024, 4096},  {1024, 4096}, {4096, 4096},
                                                             {14336, 4096}, {14336, 4096}, {4096, 14336}};
    std::vector<PackedWeight> layer;
    size_t layer_bytes = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
        const auto [r, c] = shapes[i];
        layer.push_back(bits == 16 ? random_bf16(r, c, uint32_t(i)) : random_int(r, c, bits, 128, uint32_t(i)));
        layer_bytes += layer.back().stored_bytes();
    }
    const size_t nlayers = std::max<size_t>(2, (kWorkingSet + layer_bytes - 1) / layer_bytes);
    std::vector<std::vector<PackedWeight>> layers(nlayers);
    for (auto& l : layers)
        for (const PackedWeight& w : layer) l.push_back(clone(w));
    layer.clear();
    const std::vector<float> x = random_x(14336);
    std::vector<float> y(14336);
    size_t i = 0;
    IterTimes it, rd;
    for (auto _ : state) {
        state.PauseTiming();
        rd.start();
        for (const PackedWeight& w : layers[(i + nlayers / 2) % nlayers]) read_weight(w);
        rd.stop();
        state.ResumeTiming();
        it.start();
        for (const PackedWeight& w : layers[i++ % nlayers]) w.format->gemv(w, x.data(), y.data());
        benchmark::DoNotOptimize(y.data());
        it.stop();
    }
    set_counters(state, double(layer_bytes), it, rd);
    state.counters["ms/tok_32L_p10"] = 32e3 * quantile(it.t, 0.1);
    state.counters["tok/s_32L"] = benchmark::Counter(1.0 / 32, benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(std::string(bits == 16 ? "bf16" : "int" + std::to_string(bits) + "-g128") + " " +
                   simd_level_name(simd_level()));
}

BENCHMARK(BM_MemRead)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_MemReadRows)->ArgsProduct({{2048, 7168}, {0, 8, 16}})->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_MemCopy)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_Gemv)->Apply(gemv_args)->Unit(benchmark::kMicrosecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_GemvVariant)->Apply(gemv_variant_args)->Unit(benchmark::kMicrosecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_GemvHot)->Apply(gemv_variant_args)->Unit(benchmark::kMicrosecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_KernelL2)->ArgsProduct({{4, 3, 2}, {32, 128}, {128, 4}})->Unit(benchmark::kMicrosecond)->MinTime(0.5);
BENCHMARK(BM_DecodeLlama3_8B)->Arg(4)->Arg(3)->Arg(2)->Arg(16)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();

}  // namespace
