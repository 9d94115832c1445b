// The machine's f32 GEMM peak as OpenBLAS delivers it, at the shapes a ctx-512 prefill of the
// reference models runs (M = 512 tokens). The baseline `planeq ppl`'s GFLOP/s is compared against.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>

#include "core/cpu_features.hpp"
#include "kernels/cpu/gemm_f32.hpp"
#include <vector>

namespace {

void BM_OpenBlasSgemm(benchmark::State& state) {
    const int m = int(state.range(0)), n = int(state.range(1)), k = int(state.range(2));
    std::vector<float> a(size_t(m) * k), b(size_t(n) * k), c(size_t(m) * n);
    std::mt19937 rng(0);
    std::normal_distribution<float> nd;
    for (float& v : a) v = nd(rng);
    for (float& v : b) v = nd(rng);
    for (auto _ : state) {
        // Y[m×n] = X[m×k] · Wᵀ, W stored [n×k] as a linear layer's weight.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::kIs1000);
}

// planeq's own GEMM with bf16 weights (the prefill path of a bf16 checkpoint).
void BM_PlaneqGemmBf16(benchmark::State& state) {
    const int m = int(state.range(0)), n = int(state.range(1)), k = int(state.range(2));
    std::vector<float> a(size_t(m) * k), c(size_t(m) * n);
    std::vector<uint16_t> b(size_t(n) * k);
    std::mt19937 rng(0);
    std::normal_distribution<float> nd;
    for (float& v : a) v = nd(rng);
    for (uint16_t& v : b) v = uint16_t(0x3f80 ^ (rng() & 0x807f));
    const planeq::cpu::BOperand B{b.data(), planeq::DType::BF16, k, true};
    for (auto _ : state) {
        planeq::cpu::gemm_f32(m, n, k, a.data(), k, B, c.data(), n);
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::kIs1000);
    state.SetLabel(planeq::simd_level_name(planeq::simd_level()));
}

BENCHMARK(BM_PlaneqGemmBf16)->Args({512, 512, 1536})->Args({512, 1536, 512})->Args({512, 512, 512})
    ->Args({512, 8192, 512})->Args({512, 4096, 4096})->Unit(benchmark::kMillisecond)->MinTime(1.0);

BENCHMARK(BM_OpenBlasSgemm)->Args({512, 512, 1536})->Args({512, 1536, 512})->Args({512, 512, 512})
    ->Args({512, 8192, 512})->Args({512, 4096, 4096})->Unit(benchmark::kMillisecond)->MinTime(1.0);

}  // namespace

BENCHMARK_MAIN();
