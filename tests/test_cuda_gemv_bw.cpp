// The batch-1 bandwidth-first GEMV (gemv_bw.cu, DecodeOptions::bw) against the CPU reference (the format's
// dequantize_rows + an f64 matmul), bar ‖y − ref‖/‖ref‖ ≤ 1e-3 like every GPU kernel: int b=2 (sym and asym) and
// bitplane k=2 at g 32 … 256, odd shapes (rows not a multiple of 32, columns not a multiple of 256, a K split
// that leaves warps without work), every CTA shape (1, 2, 4 row blocks), the in-kernel silu·up and RMS scale,
// unaligned inputs (the scalar load path), a three-weight launch, and the path selection. Outputs are NaN-poisoned
// first. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_gemv.hpp"
#include "model/synthetic.hpp"
#include "cuda_test_util.hpp"

namespace planeq {
namespace {

using namespace cuda_test;

// y = W·act (act = x, or silu(x)·up), optionally / rms(act), through prepare_act(…, weight) + gemv at batch 1;
// `offset` floats into the device buffers (1: misaligned, the scalar path).
double bw_error(const PackedWeight& w, uint64_t seed, bool silu, bool rms, int offset = 0) {
    std::mt19937_64 rng(seed);
    const size_t nx = size_t(w.cols), ny = size_t(w.rows);
    std::vector<float> x = random_vec(nx, rng), up = random_vec(nx, rng), act = x;
    if (silu)
        for (size_t i = 0; i < nx; ++i) act[i] = x[i] / (1.0f + std::exp(-x[i])) * up[i];
    cuda::GpuWeightPtr gw = cuda::upload(w);
    EXPECT_TRUE(cuda::bw_decode_path(*gw, 1));
    DevBuf dx(nx + 4), dup(nx + 4), dy(ny);
    EXPECT_EQ(cudaMemcpy(dx.p + offset, x.data(), nx * 4, cudaMemcpyHostToDevice), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(dup.p + offset, up.data(), nx * 4, cudaMemcpyHostToDevice), cudaSuccess);
    EXPECT_EQ(cudaMemset(dy.p, 0xff, ny * 4), cudaSuccess);
    cuda::ActBufferPtr ab = cuda::make_act_buffer(w.cols);
    cuda::prepare_act(*ab, dx.p + offset, silu ? dup.p + offset : nullptr, w.cols, 1, w.params.group, nullptr, rms, gw.get());
    cuda::gemv(*gw, ab.get(), dx.p + offset, 1, dy.p, nullptr);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> y(ny);
    EXPECT_EQ(cudaMemcpy(y.data(), dy.p, ny * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    std::vector<double> ref = reference(w, act, 1);
    if (rms) {
        double s2 = 0;
        for (float a : act) s2 += double(a) * a;
        for (double& r : ref) r /= std::sqrt(s2 / double(w.cols) + 1e-5);
    }
    return rel_error(y, ref);
}

struct BwOptions {  // sets DecodeOptions for a scope
    cuda::DecodeOptions keep = cuda::decode_options();
    BwOptions(bool bw, int rows) {
        cuda::DecodeOptions d = keep;
        d.bw = bw, d.bw_rows = rows;
        cuda::set_decode_options(d);
    }
    ~BwOptions() { cuda::set_decode_options(keep); }
};

TEST(CudaGemvBw, MatchesReference) {
    REQUIRE_GPU();
    uint64_t seed = 7000;
    const Case cases[] = {{"int", 2, 32, false},      {"int", 2, 64, true},        {"int", 2, 128, false},
                          {"int", 2, 256, true},      {"int", 2, 128, true},       {"bitplane", 2, 32, false},
                          {"bitplane", 2, 64, false}, {"bitplane", 2, 128, false}, {"bitplane", 2, 256, false}};
    for (const Case& c : cases)
        // 37 rows: one partial row block; 4352 columns: 17 iterations of 256 over 16, 8 or 4 warps a row block;
        // 200 rows × 5g: columns not a multiple of 256; 16 × 1280.
        for (auto [R, C] : {std::pair<int64_t, int64_t>{37, 768}, {200, int64_t(c.group) * 5}, {16, 1280}, {300, 4352}}) {
            const PackedWeight w = make_weight(c, R, C, ++seed);
            for (int rows : {0, 1, 2, 4}) {
                BwOptions o(true, rows);
                const std::string what = std::string(c.format) + " b2 g" + std::to_string(c.group) + (c.sym ? " sym " : " ") +
                                         std::to_string(R) + "x" + std::to_string(C) + " rows/CTA " + std::to_string(rows);
                EXPECT_LE(bw_error(w, ++seed, false, false), 1e-3) << what;
                EXPECT_LE(bw_error(w, ++seed, true, true), 1e-3) << what << " silu·up + rms";
                if (rows == 0) {
                    EXPECT_LE(bw_error(w, ++seed, false, true), 1e-3) << what << " rms";
                    EXPECT_LE(bw_error(w, ++seed, true, false, 1), 1e-3) << what << " silu·up, misaligned";
                }
            }
        }
}

TEST(CudaGemvBw, MultiWeightLaunchAndSelection) {
    REQUIRE_GPU();
    const int64_t C = 1536;
    for (const char* f : {"int", "bitplane"}) {
        std::vector<PackedWeight> ws;
        for (int64_t R : {96, 40, 130}) ws.push_back(make_weight(Case{f, 2, 128, false}, R, C, 80 + uint64_t(R)));
        for (int rows : {1, 4}) {
            BwOptions o(true, rows);
            std::mt19937_64 rng(5);
            const std::vector<float> x = random_vec(size_t(C), rng);
            DevBuf dx(x.size());
            CK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
            Uploaded up(ws, 1);
            cuda::ActBufferPtr ab = cuda::make_act_buffer(C);
            cuda::prepare_act(*ab, dx.p, nullptr, C, 1, 128, nullptr, false, up.wp[0]);
            cuda::gemv_multi(up.wp.data(), up.yp.data(), 3, ab.get(), dx.p, 1, nullptr);
            CK(cudaDeviceSynchronize());
            for (size_t i = 0; i < ws.size(); ++i) {
                std::vector<float> y(size_t(ws[i].rows));
                CK(cudaMemcpy(y.data(), up.yp[i], y.size() * 4, cudaMemcpyDeviceToHost));
                EXPECT_LE(rel_error(y, reference(ws[i], x, 1)), 1e-3) << f << " weight " << i << " rows/CTA " << rows;
            }
        }
    }
    auto path = [](const char* f, int bits, int group, int batch) {
        return cuda::bw_decode_path(*cuda::upload(make_weight(Case{f, bits, group, false}, 16, 256, 1)), batch);
    };
    {
        BwOptions o(true, 0);
        EXPECT_TRUE(path("int", 2, 128, 1));
        EXPECT_TRUE(path("int", 2, 32, 1));
        EXPECT_TRUE(path("bitplane", 2, 256, 1));
        EXPECT_FALSE(path("int", 2, 128, 2));  // batch 1 only
        EXPECT_FALSE(path("int", 4, 128, 1));
        EXPECT_FALSE(path("int", 3, 128, 1));
        EXPECT_FALSE(path("bitplane", 3, 128, 1));
        EXPECT_FALSE(path("tritplane", 2, 128, 1));
    }
    BwOptions off(false, 0);
    EXPECT_FALSE(path("int", 2, 128, 1));
}

}  // namespace
}  // namespace planeq
