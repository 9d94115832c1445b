// Shared by the GPU tests (test_cuda_*.cpp): random inputs and weights, the CPU reference (the format's
// dequantize_rows + an f64 matmul), the relative error, and the GPU guard.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "core/half.hpp"
#include "formats/format.hpp"
#include "formats/int_group.hpp"
#include "kernels/cpu/int_group_kernels.hpp"
#include "kernels/cuda/cuda_gemv.hpp"
#include "model/synthetic.hpp"

namespace planeq::cuda_test {

#define REQUIRE_GPU()                                                            \
    do {                                                                         \
        std::string why_;                                                        \
        if (!cuda::device_available(&why_)) GTEST_SKIP() << "no GPU: " << why_; \
    } while (0)

#define CK(expr) ASSERT_EQ((expr), cudaSuccess) << #expr

// The decode switches (DecodeOptions) edited for a scope and restored at its end, also when an ASSERT leaves the test.
struct ScopedDecodeOptions {
    cuda::DecodeOptions keep = cuda::decode_options();
    template <class Edit>
    explicit ScopedDecodeOptions(Edit&& edit) {
        cuda::DecodeOptions d = keep;
        edit(d);
        cuda::set_decode_options(d);
    }
    ~ScopedDecodeOptions() { cuda::set_decode_options(keep); }
    ScopedDecodeOptions(const ScopedDecodeOptions&) = delete;
    ScopedDecodeOptions& operator=(const ScopedDecodeOptions&) = delete;
};

struct DevBuf {
    float* p = nullptr;
    explicit DevBuf(size_t n) { EXPECT_EQ(cudaMalloc(&p, n * sizeof(float)), cudaSuccess); }
    ~DevBuf() { cudaFree(p); }
};

inline std::vector<float> random_vec(size_t n, std::mt19937_64& rng) {
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

// An int weight with random codes, scales and zero points (random_weight fixes the zeros at 2^(b−1)).
inline PackedWeight random_int(int64_t R, int64_t C, int bits, int group, bool sym, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const int64_t G = C / group, maxq = (1 << bits) - 1;
    std::vector<uint8_t> codes(size_t(R * C)), zeros(size_t(R * G));
    std::vector<uint16_t> scales(size_t(R * G));
    for (auto& c : codes) c = uint8_t(rng() % uint64_t(maxq + 1));
    for (auto& z : zeros) z = uint8_t(rng() % uint64_t(maxq + 1));
    std::uniform_real_distribution<float> u(0.005f, 0.05f);
    for (auto& s : scales) s = f32_to_f16(u(rng));
    return pack_int_group(R, C, FormatParams{bits, group, sym, false}, codes, scales, zeros, {});
}

// ref[n][r] = Σ_c W[r][c] · a[n][c] in f64, W from the format's reference dequantizer.
inline std::vector<double> reference(const PackedWeight& w, const std::vector<float>& a, int batch) {
    std::vector<float> W(size_t(w.rows * w.cols));
    w.format->dequantize_rows(w, 0, w.rows, W.data());
    std::vector<double> y(size_t(batch * w.rows), 0.0);
    for (int n = 0; n < batch; ++n)
        for (int64_t r = 0; r < w.rows; ++r) {
            double s = 0;
            for (int64_t c = 0; c < w.cols; ++c) s += double(W[size_t(r * w.cols + c)]) * double(a[size_t(n * w.cols + c)]);
            y[size_t(n * w.rows + r)] = s;
        }
    return y;
}

inline double rel_error(const std::vector<float>& y, const std::vector<double>& ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < y.size(); ++i) {
        if (!std::isfinite(y[i])) return INFINITY;  // unwritten (poisoned) or broken
        num += (double(y[i]) - ref[i]) * (double(y[i]) - ref[i]);
        den += ref[i] * ref[i];
    }
    return std::sqrt(num / den);
}

// Weights uploaded for a multi-weight launch, each with a NaN-poisoned output of `tokens` rows (so an
// unwritten output fails rel_error), and the pointer arrays gemv_multi / gemm_multi take.
struct Uploaded {
    std::vector<cuda::GpuWeightPtr> gw;
    std::vector<std::unique_ptr<DevBuf>> dy;
    std::vector<const cuda::GpuWeight*> wp;
    std::vector<float*> yp;
    Uploaded(const std::vector<PackedWeight>& ws, int tokens) {
        for (const PackedWeight& w : ws) {
            gw.push_back(cuda::upload(w));
            dy.push_back(std::make_unique<DevBuf>(size_t(tokens * w.rows)));
            EXPECT_EQ(cudaMemset(dy.back()->p, 0xff, size_t(tokens * w.rows) * 4), cudaSuccess);
            wp.push_back(gw.back().get());
            yp.push_back(dy.back()->p);
        }
    }
};

// Runs `chain` on stream s eagerly, then captured as a CUDA graph replayed 3 times, calling
// check(what + " eager") / check(what + " graph") after each (a graph that replays stale inputs fails).
template <class Chain, class Check>
void eager_then_graph(cudaStream_t s, const std::string& what, Chain&& chain, Check&& check) {
    chain();
    CK(cudaStreamSynchronize(s));
    check(what + " eager");
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    chain();
    CK(cudaStreamEndCapture(s, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    for (int r = 0; r < 3; ++r) CK(cudaGraphLaunch(exec, s));
    CK(cudaStreamSynchronize(s));
    check(what + " graph");
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
}

struct Case {
    const char* format;
    int bits, group;
    bool sym;
};

inline const Case kCases[] = {
    {"int", 2, 32, false},  {"int", 2, 128, false}, {"int", 2, 256, true},  {"int", 3, 64, false},
    {"int", 3, 128, true},  {"int", 4, 32, true},   {"int", 4, 128, false}, {"int", 4, 256, false},
    {"bitplane", 2, 32, false}, {"bitplane", 2, 128, false}, {"bitplane", 3, 64, false}, {"bitplane", 3, 256, false},
    {"bitplane", 4, 128, false}, {"tritplane", 2, 32, false}, {"tritplane", 2, 128, false}, {"tritplane", 2, 256, false},
};

// x̂ as the CPU's int8 GEMVs see x: groups of `group` columns quantized by the CPU's quantizer (s = max|x|/127,
// round half to even), x̂_i = s·q_i.
inline std::vector<float> cpu_int8_act(const std::vector<float>& x, int group) {
    std::vector<float> xp(x);
    xp.resize((x.size() + size_t(group) - 1) / size_t(group) * size_t(group), 0.0f);
    std::vector<int8_t> q(xp.size());
    std::vector<float> d(xp.size() / size_t(group));
    std::vector<int32_t> sx(d.size());
    cpu::int_group_quantize_act_scalar(xp.data(), int64_t(xp.size()), group, q.data(), d.data(), sx.data());
    std::vector<float> xh(x.size());
    for (size_t i = 0; i < x.size(); ++i) xh[i] = d[i / size_t(group)] * float(q[i]);
    return xh;
}

inline PackedWeight make_weight(const Case& c, int64_t R, int64_t C, uint64_t seed) {
    if (std::string(c.format) == "int") return random_int(R, C, c.bits, c.group, c.sym, seed);
    return random_weight(*find_format(c.format), R, C, FormatParams{c.bits, c.group, false, false}, seed);
}

}  // namespace planeq::cuda_test
