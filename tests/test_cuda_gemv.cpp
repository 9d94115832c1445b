// GPU decode kernels against the CPU reference: the format's dequantize_rows, then an f64 matmul.
// Bar: ‖y − ref‖ / ‖ref‖ ≤ 1e-3 on fresh random inputs, odd shapes (rows not a multiple of 16, columns not a
// multiple of 256), batch 1 … 16; outputs are poisoned (NaN) first, so an unwritten element fails.
// The cuBLAS baseline runs on bf16 activations (cuBLAS needs matching input types): its bar is 1e-2.
// Every test skips when no CUDA device is present (CI compiles these but has no GPU).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include <cuda_runtime.h>

#include "core/error.hpp"
#include "core/half.hpp"
#include "formats/dense.hpp"
#include "formats/int_group.hpp"
#include "kernels/cuda/cuda_gemv.hpp"
#include "model/synthetic.hpp"
#include "cuda_test_util.hpp"

namespace planeq {
namespace {

using namespace cuda_test;

// Runs the GPU GEMV of `w` at `batch` (optionally through the fused silu·up prep) and returns the error.
double gpu_error(const PackedWeight& w, int batch, uint64_t seed, bool silu = false, bool rms = false) {
    std::mt19937_64 rng(seed);
    const size_t nx = size_t(batch * w.cols), ny = size_t(batch * w.rows);
    std::vector<float> x = random_vec(nx, rng), up = random_vec(nx, rng);
    std::vector<float> act = x;
    if (silu)
        for (size_t i = 0; i < nx; ++i) act[i] = x[i] / (1.0f + std::exp(-x[i])) * up[i];
    cuda::GpuWeightPtr gw = cuda::upload(w);
    DevBuf dx(nx), dup(nx), dy(ny);
    EXPECT_EQ(cudaMemcpy(dx.p, x.data(), nx * 4, cudaMemcpyHostToDevice), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(dup.p, up.data(), nx * 4, cudaMemcpyHostToDevice), cudaSuccess);
    EXPECT_EQ(cudaMemset(dy.p, 0xff, ny * 4), cudaSuccess);  // NaN poison
    cuda::ActBufferPtr ab = cuda::make_act_buffer(w.cols);
    if (w.format->name != "bf16") cuda::prepare_act(*ab, dx.p, silu ? dup.p : nullptr, w.cols, batch, w.params.group, nullptr, rms);
    cuda::gemv(*gw, ab.get(), dx.p, batch, dy.p, nullptr);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> y(ny);
    EXPECT_EQ(cudaMemcpy(y.data(), dy.p, ny * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    std::vector<double> ref = reference(w, act, batch);
    if (rms)
        for (int n = 0; n < batch; ++n) {
            double s2 = 0;
            for (int64_t c = 0; c < w.cols; ++c) s2 += double(act[size_t(n * w.cols + c)]) * act[size_t(n * w.cols + c)];
            const double inv = 1.0 / std::sqrt(s2 / double(w.cols) + 1e-5);
            for (int64_t r = 0; r < w.rows; ++r) ref[size_t(n * w.rows + r)] *= inv;
        }
    return rel_error(y, ref);
}

TEST(CudaGemv, PlaneFormatsMatchReference) {
    REQUIRE_GPU();
    uint64_t seed = 100;
    {
        for (const Case& c : kCases) {
            // Odd rows; columns a multiple of the group but (mostly) not of 256.
            for (auto [R, C] : {std::pair<int64_t, int64_t>{37, 768}, {100, int64_t(c.group) * 5}, {16, 1280}}) {
                const PackedWeight w = make_weight(c, R, C, ++seed);
                for (int batch : {1, 3, 4, 5, 8, 11, 16}) {
                    const double e = gpu_error(w, batch, ++seed);
                    EXPECT_LE(e, 1e-3) << c.format << " b" << c.bits << " g" << c.group << (c.sym ? " sym" : "") << " "
                                       << R << "x" << C << " batch " << batch;
                }
            }
        }
    }
}

TEST(CudaGemv, FusedSiluUpAndRmsNorm) {
    REQUIRE_GPU();
    const PackedWeight w = make_weight(Case{"bitplane", 2, 128, false}, 48, 640, 7);
    for (int batch : {1, 5, 16}) {
        EXPECT_LE(gpu_error(w, batch, 8 + batch, true, false), 1e-3) << "silu·up, batch " << batch;
        EXPECT_LE(gpu_error(w, batch, 9 + batch, false, true), 1e-3) << "rms norm, batch " << batch;
        EXPECT_LE(gpu_error(w, batch, 10 + batch, true, true), 1e-3) << "silu·up + rms norm, batch " << batch;
    }
}

TEST(CudaGemv, MultiWeightLaunch) {
    REQUIRE_GPU();
    const int batch = 2;
    const int64_t C = 512;
    std::vector<PackedWeight> ws;
    for (int64_t R : {64, 16, 40}) ws.push_back(random_int(R, C, 2, 128, false, 50 + uint64_t(R)));
    std::mt19937_64 rng(3);
    std::vector<float> x = random_vec(size_t(batch * C), rng);
    DevBuf dx(x.size());
    CK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    std::vector<cuda::GpuWeightPtr> gw;
    std::vector<std::unique_ptr<DevBuf>> dy;
    std::vector<const cuda::GpuWeight*> wp;
    std::vector<float*> yp;
    for (const PackedWeight& w : ws) {
        gw.push_back(cuda::upload(w));
        dy.push_back(std::make_unique<DevBuf>(size_t(batch * w.rows)));
        CK(cudaMemset(dy.back()->p, 0xff, size_t(batch * w.rows) * 4));
        wp.push_back(gw.back().get());
        yp.push_back(dy.back()->p);
    }
    cuda::ActBufferPtr ab = cuda::make_act_buffer(C);
    cuda::prepare_act(*ab, dx.p, nullptr, C, batch, 128, nullptr);
    cuda::gemv_multi(wp.data(), yp.data(), 3, ab.get(), dx.p, batch, nullptr);
    CK(cudaDeviceSynchronize());
    for (size_t i = 0; i < ws.size(); ++i) {
        std::vector<float> y(size_t(batch * ws[i].rows));
        CK(cudaMemcpy(y.data(), yp[i], y.size() * 4, cudaMemcpyDeviceToHost));
        EXPECT_LE(rel_error(y, reference(ws[i], x, batch)), 1e-3) << "weight " << i;
    }
}

TEST(CudaGemv, Bf16OwnKernelAndCublas) {
    REQUIRE_GPU();
    for (auto [R, C] : {std::pair<int64_t, int64_t>{37, 200}, {300, 4104}}) {
        const PackedWeight w = random_weight(kFormatBF16, R, C, FormatParams{16, 0, false, false}, uint64_t(R));
        for (int batch : {1, 2, 7, 16}) {
            EXPECT_LE(gpu_error(w, batch, uint64_t(batch)), 1e-3) << R << "x" << C << " batch " << batch;
            // cuBLAS baseline
            std::mt19937_64 rng(uint64_t(batch) + 99);
            std::vector<float> x = random_vec(size_t(batch * C), rng);
            DevBuf dx(x.size()), dy(size_t(batch * R)), dxb(x.size());
            CK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMemset(dy.p, 0xff, size_t(batch * R) * 4));
            cuda::GpuWeightPtr gw = cuda::upload(w);
            cuda::gemv_cublas_bf16(*gw, dx.p, reinterpret_cast<uint16_t*>(dxb.p), batch, dy.p, nullptr);
            CK(cudaDeviceSynchronize());
            std::vector<float> y(size_t(batch * R));
            CK(cudaMemcpy(y.data(), dy.p, y.size() * 4, cudaMemcpyDeviceToHost));
            EXPECT_LE(rel_error(y, reference(w, x, batch)), 1e-2) << "cuBLAS " << R << "x" << C << " batch " << batch;
        }
    }
}

TEST(CudaGemv, RejectsWhatTheGpuDoesNotSupport) {
    REQUIRE_GPU();
    const PackedWeight gi = random_weight(kFormatIntGroup, 16, 256, FormatParams{4, 128, false, true}, 1);
    EXPECT_THROW(cuda::upload(gi), Error);
    const PackedWeight f32 = random_weight(kFormatBF16, 16, 256, FormatParams{16, 0, false, false}, 1);
    cuda::GpuWeightPtr gw = cuda::upload(f32);
    EXPECT_THROW(cuda::gemv(*gw, nullptr, nullptr, 17, nullptr, nullptr), Error);  // batch > 16
}

}  // namespace
}  // namespace planeq
