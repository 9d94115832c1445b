// The persistent decode stack (decode_stack.cu): a bench-like chain of steps (per layer q/k/v → o → gate/up →
// down over silu(gate)·up, every input RMS-scaled) as one launch, against the CPU reference step by step: every
// step writes its own buffer, so each step's reference is the format's dequantize_rows + an f64 matmul over the
// GPU's own input to that step, / rms — bar ‖y − ref‖/‖ref‖ ≤ 1e-3 like every GPU kernel (with int8 activations,
// DecodeOptions::bw_act8, over the input as the CPU's int8 GEMVs quantize it). Odd shapes: columns not
// a multiple of 256, partial row blocks, fewer row blocks than SMs (idle blocks), more (two a block), and rows
// of more than 16 iterations (several ring stages). Then eager vs graph replays bit for bit (the grid barrier
// resets itself; the reduction order is fixed), and the refusals. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_gemv.hpp"
#include "kernels/cuda/decode_stack.hpp"
#include "model/synthetic.hpp"
#include "cuda_test_util.hpp"

namespace planeq {
namespace {

using namespace cuda_test;

std::vector<float> fetch(const float* p, int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    EXPECT_EQ(cudaMemcpy(v.data(), p, size_t(n) * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
}

// One step of the test chain on the host side: its weights (CPU and GPU), its outputs, its input buffers.
struct TestStep {
    std::vector<PackedWeight> w;
    std::vector<cuda::GpuWeightPtr> gw;
    std::vector<std::unique_ptr<DevBuf>> y;
    const float* x = nullptr;
    const float* up = nullptr;
    int64_t cols = 0;
};

struct Chain {
    std::vector<TestStep> steps;
    std::unique_ptr<DevBuf> h0;
    int64_t H = 0;

    // Layers of q/k/v (Q, KV, KV rows), o, gate/up (I rows), down (H rows).
    Chain(const Case& c, int layers, int64_t H_, int64_t Q, int64_t KV, int64_t I, uint64_t seed) : H(H_) {
        std::mt19937_64 rng(seed);
        h0 = std::make_unique<DevBuf>(size_t(H));
        const std::vector<float> x0 = random_vec(size_t(H), rng);
        EXPECT_EQ(cudaMemcpy(h0->p, x0.data(), size_t(H) * 4, cudaMemcpyHostToDevice), cudaSuccess);
        const float* h = h0->p;
        auto add = [&](std::vector<int64_t> rows, int64_t cols, const float* x, const float* up) -> TestStep& {
            TestStep t;
            t.x = x, t.up = up, t.cols = cols;
            for (int64_t r : rows) {
                t.w.push_back(make_weight(c, r, cols, ++seed));
                t.gw.push_back(cuda::upload(t.w.back()));
                t.y.push_back(std::make_unique<DevBuf>(size_t(r)));
                EXPECT_EQ(cudaMemset(t.y.back()->p, 0xff, size_t(r) * 4), cudaSuccess);  // NaN: unwritten fails
            }
            steps.push_back(std::move(t));
            return steps.back();
        };
        for (int l = 0; l < layers; ++l) {
            const TestStep& qkv = add({Q, KV, KV}, H, h, nullptr);
            const TestStep& o = add({H}, Q, qkv.y[0]->p, nullptr);
            const TestStep& gu = add({I, I}, H, o.y[0]->p, nullptr);
            const TestStep& down = add({H}, I, gu.y[0]->p, gu.y[1]->p);
            h = down.y[0]->p;
        }
    }

    std::vector<cuda::StackStep> stack_steps() const {
        std::vector<cuda::StackStep> v;
        for (const TestStep& t : steps) {
            cuda::StackStep s;
            s.n = int(t.gw.size()), s.x = t.x, s.up = t.up, s.rms = true, s.eps = 1e-5f;
            for (int k = 0; k < s.n; ++k) s.w[k] = t.gw[size_t(k)].get(), s.y[k] = t.y[size_t(k)]->p;
            v.push_back(s);
        }
        return v;
    }

    // Every step's outputs against the CPU reference over the GPU's own input to it; act8: over that input as the
    // CPU's int8 GEMVs quantize it (the RMS still of the input itself).
    void check(const std::string& what, bool act8) const {
        for (size_t i = 0; i < steps.size(); ++i) {
            const TestStep& t = steps[i];
            std::vector<float> a = fetch(t.x, t.cols);
            if (t.up) {
                const std::vector<float> u = fetch(t.up, t.cols);
                for (size_t j = 0; j < a.size(); ++j) a[j] = a[j] / (1.0f + std::exp(-a[j])) * u[j];
            }
            double s2 = 0;
            for (float v : a) s2 += double(v) * v;
            const double inv_rms = 1.0 / std::sqrt(s2 / double(t.cols) + 1e-5);
            const std::vector<float> xq = act8 ? cpu_int8_act(a, 128) : a;
            for (size_t k = 0; k < t.w.size(); ++k) {
                std::vector<double> ref = reference(t.w[k], xq, 1);
                for (double& r : ref) r *= inv_rms;
                EXPECT_LE(rel_error(fetch(t.y[k]->p, t.w[k].rows), ref), 1e-3) << what << ", step " << i << " weight " << k;
            }
        }
    }

    std::vector<std::vector<float>> outputs() const {
        std::vector<std::vector<float>> v;
        for (const TestStep& t : steps)
            for (size_t k = 0; k < t.w.size(); ++k) v.push_back(fetch(t.y[k]->p, t.w[k].rows));
        return v;
    }
};

TEST(CudaDecodeStack, MatchesReferenceStepByStep) {
    REQUIRE_GPU();
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    for (bool act8 : {false, true})
        for (const Case& c : {Case{"int", 2, 128, false}, Case{"int", 2, 128, true}, Case{"bitplane", 2, 128, false}}) {
            ScopedDecodeOptions o([&](cuda::DecodeOptions& d) { d.bw_act8 = act8; });
            // H 640: 3 iterations, the last partial; KV 72: partial row blocks; I 4480: 140 row blocks of gate/up
            // (more than the SMs) and 18 iterations for down (two ring stages).
            const Chain ch(c, 2, 640, 640, 72, 4480, 100);
            const std::string what = std::string(c.format) + (c.sym ? " sym" : "") + (act8 ? " act8" : " hi/lo");
            const cuda::PersistentStack ps(ch.stack_steps());
            EXPECT_GE(ps.stages(), 2);
            std::vector<std::vector<float>> first;
            eager_then_graph(s, what, [&] { ps.run(s); },
                             [&](const std::string& w) {
                                 ch.check(w, act8);
                                 if (first.empty()) first = ch.outputs();
                                 else EXPECT_EQ(ch.outputs(), first) << w << ": replays differ";
                             });
        }
    CK(cudaStreamDestroy(s));
}

TEST(CudaDecodeStack, RefusesWhatItCannotRun) {
    REQUIRE_GPU();
    const Chain ok(Case{"int", 2, 128, false}, 1, 256, 256, 64, 512, 200);
    std::vector<cuda::StackStep> steps = ok.stack_steps();
    EXPECT_EQ(cuda::PersistentStack::unsupported(steps), "");
    // Group 64 and int4 weights take other kernels.
    for (const Case& c : {Case{"int", 2, 64, false}, Case{"int", 4, 128, false}}) {
        const Chain bad(c, 1, 256, 256, 64, 512, 300);
        const std::vector<cuda::StackStep> b = bad.stack_steps();
        EXPECT_NE(cuda::PersistentStack::unsupported(b), "") << c.format << c.bits << " g" << c.group;
        EXPECT_THROW(cuda::PersistentStack ps(b), std::exception);
    }
    steps[1].x = steps[1].x + 1;  // misaligned input
    EXPECT_NE(cuda::PersistentStack::unsupported(steps), "");
    steps[1].x = steps[1].x - 1;
    steps[2].n = 0;
    EXPECT_NE(cuda::PersistentStack::unsupported(steps), "");
}

}  // namespace
}  // namespace planeq
