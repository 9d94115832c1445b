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
// `hint`: the prep is told the weight, so batch ≤ 4 takes the int8 path where the format allows.
double gpu_error(const PackedWeight& w, int batch, uint64_t seed, bool silu = false, bool rms = false, bool hint = false) {
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
    if (w.format->name != "bf16")
        cuda::prepare_act(*ab, dx.p, silu ? dup.p : nullptr, w.cols, batch, w.params.group, nullptr, rms, hint ? gw.get() : nullptr);
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
                    if (batch > 4) continue;  // the int8 path (or the fp16 one where the format has none), both block sizes
                    // (warps per tile, weight pipeline depth): both block sizes, registers and every ring depth
                    for (auto [warps, stages] : {std::pair{4, 0}, {8, 0}, {4, 4}, {8, 4}}) {
                        const ScopedDecodeOptions o([&](cuda::DecodeOptions& d) { d.i8_warps = warps, d.i8_stages = stages; });
                        const double e8 = gpu_error(w, batch, ++seed, false, false, true);
                        EXPECT_LE(e8, 1e-3) << c.format << " b" << c.bits << " g" << c.group << (c.sym ? " sym" : "") << " "
                                            << R << "x" << C << " batch " << batch << " (int8 path, " << warps << " warps, "
                                            << stages << " stages)";
                    }
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
    for (int batch : {1, 4}) {  // the int8 path's prep
        EXPECT_LE(gpu_error(w, batch, 20 + batch, true, true, true), 1e-3) << "int8 path, silu·up + rms norm, batch " << batch;
        EXPECT_LE(gpu_error(w, batch, 30 + batch, false, true, true), 1e-3) << "int8 path, rms norm, batch " << batch;
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
    Uploaded up(ws, batch);
    const std::vector<const cuda::GpuWeight*>& wp = up.wp;
    const std::vector<float*>& yp = up.yp;
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

// A chain on a real stream, eagerly and as a replayed graph, under every decode switch: prep → GEMV (int2) →
// prep of its output → GEMV (bitplane) → our bf16 GEMV of that, every intermediate NaN-poisoned first (memset
// nodes between the kernels). With programmatic dependent launch a kernel that read its input before the
// previous one finished would see the poison or stale values; each stage is checked against the reference
// applied to the GPU's own previous stage.
TEST(CudaGemv, ChainOnAStreamUnderEveryDecodeOption) {
    REQUIRE_GPU();
    const int64_t C = 512, R1 = 384, R2 = 256, R3 = 72;
    const PackedWeight w1 = random_int(R1, C, 2, 128, false, 61);
    const PackedWeight w2 = random_weight(*find_format("bitplane"), R2, R1, FormatParams{2, 128, false, false}, 62);
    const PackedWeight w3 = random_weight(kFormatBF16, R3, R2, FormatParams{16, 0, false, false}, 63);
    cuda::GpuWeightPtr g1 = cuda::upload(w1), g2 = cuda::upload(w2), g3 = cuda::upload(w3);
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    for (int batch : {1, 3, 6}) {
        std::mt19937_64 rng(uint64_t(batch) + 500);
        const std::vector<float> x = random_vec(size_t(batch * C), rng);
        DevBuf dx(x.size()), d1(size_t(batch * R1)), d2(size_t(batch * R2)), d3(size_t(batch * R3));
        CK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
        cuda::ActBufferPtr a1 = cuda::make_act_buffer(C), a2 = cuda::make_act_buffer(R1);
        auto chain = [&] {
            cudaMemsetAsync(d1.p, 0xff, size_t(batch * R1) * 4, s);
            cudaMemsetAsync(d2.p, 0xff, size_t(batch * R2) * 4, s);
            cudaMemsetAsync(d3.p, 0xff, size_t(batch * R3) * 4, s);
            cuda::prepare_act(*a1, dx.p, nullptr, C, batch, 128, s, false, g1.get());
            cuda::gemv(*g1, a1.get(), dx.p, batch, d1.p, s);
            cuda::prepare_act(*a2, d1.p, nullptr, R1, batch, 128, s, true, g2.get());
            cuda::gemv(*g2, a2.get(), d1.p, batch, d2.p, s);
            cuda::gemv(*g3, nullptr, d2.p, batch, d3.p, s);
        };
        auto check = [&](const std::string& what) {
            std::vector<float> y1(size_t(batch * R1)), y2(size_t(batch * R2)), y3(size_t(batch * R3));
            CK(cudaMemcpy(y1.data(), d1.p, y1.size() * 4, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(y2.data(), d2.p, y2.size() * 4, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(y3.data(), d3.p, y3.size() * 4, cudaMemcpyDeviceToHost));
            EXPECT_LE(rel_error(y1, reference(w1, x, batch)), 1e-3) << what << " stage 1";
            std::vector<double> r2 = reference(w2, y1, batch);
            for (int n = 0; n < batch; ++n) {  // stage 2 has the RMS scale fused
                double s2 = 0;
                for (int64_t c = 0; c < R1; ++c) s2 += double(y1[size_t(n * R1 + c)]) * y1[size_t(n * R1 + c)];
                for (int64_t r = 0; r < R2; ++r) r2[size_t(n * R2 + r)] /= std::sqrt(s2 / double(R1) + 1e-5);
            }
            EXPECT_LE(rel_error(y2, r2), 1e-3) << what << " stage 2";
            EXPECT_LE(rel_error(y3, reference(w3, y2, batch)), 1e-3) << what << " stage 3";
        };
        for (int m = 0; m < 8; ++m) {
            const ScopedDecodeOptions o([&](cuda::DecodeOptions& d) { d = cuda::DecodeOptions{(m & 1) != 0, (m & 2) != 0, (m & 4) != 0, (m & 4) ? 8 : 4}; });
            const std::string what = "batch " + std::to_string(batch) + " pdl " + std::to_string(m & 1) + " int8 " +
                                     std::to_string((m >> 1) & 1) + " l2pf " + std::to_string((m >> 2) & 1);
            eager_then_graph(s, what, chain, check);
        }
    }
    cudaStreamDestroy(s);
}

// gemv_multi_prep: the next GEMV's input prepared inside the launch (the last block of each group of output rows
// quantizes it) for every int8-path format family, batches 1–4, a one-weight source and a silu(gate)·up pair, under
// both weight pipeline depths, on a stream eagerly and as a graph replayed 3× (the per-group counters must reset),
// outputs NaN-poisoned first. Stage 2 is checked against the reference applied to the GPU's own stage 1, with
// the RMS scale; with fuse_prep off the same call is gemv_multi + prepare_act, checked the same way.
TEST(CudaGemv, FusedNextPrepChain) {
    REQUIRE_GPU();
    // C: 17 superchunks, so that at 4 warps a tile a warp walks 5 (past the ring of 4 stages); R: a multiple of
    // 256 (the fusion's condition), 3 groups of 256.
    const int64_t C = 4352, R = 768, R2 = 200;
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    uint64_t seed = 900;
    for (const Case& c : {Case{"int", 2, 128, false}, Case{"int", 2, 64, true}, Case{"int", 4, 128, false},
                          Case{"bitplane", 2, 128, false}, Case{"bitplane", 3, 256, false}, Case{"tritplane", 2, 128, false}}) {
        const PackedWeight wg = make_weight(c, R, C, ++seed), wu = make_weight(c, R, C, ++seed), wd = make_weight(c, R2, R, ++seed);
        cuda::GpuWeightPtr gg = cuda::upload(wg), gu = cuda::upload(wu), gd = cuda::upload(wd);
        const std::string name = std::string(c.format) + " b" + std::to_string(c.bits) + " g" + std::to_string(c.group);
        for (int batch = 1; batch <= 4; ++batch) {
            std::mt19937_64 rng(seed + uint64_t(batch));
            const std::vector<float> x = random_vec(size_t(batch * C), rng);
            DevBuf dx(x.size()), dg(size_t(batch * R)), du(size_t(batch * R)), dy(size_t(batch * R2));
            CK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
            cuda::ActBufferPtr a1 = cuda::make_act_buffer(C), a2 = cuda::make_act_buffer(R);
            for (int silu = 0; silu < 2; ++silu)
                for (int mode = 0; mode < 3; ++mode) {  // 0, 1: fused at depth 0, 4; 2: not fused
                    const int depth[2] = {0, 4};
                    const ScopedDecodeOptions o([&](cuda::DecodeOptions& d) {
                        d = cuda::DecodeOptions{};
                        d.i8_stages = mode < 2 ? depth[mode] : -1, d.fuse_prep = mode < 2;
                    });
                    auto chain = [&] {
                        cudaMemsetAsync(dg.p, 0xff, size_t(batch * R) * 4, s);
                        cudaMemsetAsync(du.p, 0xff, size_t(batch * R) * 4, s);
                        cudaMemsetAsync(dy.p, 0xff, size_t(batch * R2) * 4, s);
                        const cuda::GpuWeight* ws[2] = {gg.get(), gu.get()};
                        float* ys[2] = {dg.p, du.p};
                        cuda::prepare_act(*a1, dx.p, nullptr, C, batch, c.group, s, false, gg.get());
                        cuda::gemv_multi_prep(ws, ys, silu ? 2 : 1, a1.get(), dx.p, batch, s,
                                              cuda::NextAct{a2.get(), gd.get(), 0, silu ? 1 : -1, true});
                        cuda::gemv(*gd, a2.get(), dg.p, batch, dy.p, s);
                    };
                    auto check = [&](const std::string& what) {
                        std::vector<float> yg(size_t(batch * R)), yu(size_t(batch * R)), y2(size_t(batch * R2));
                        CK(cudaMemcpy(yg.data(), dg.p, yg.size() * 4, cudaMemcpyDeviceToHost));
                        CK(cudaMemcpy(yu.data(), du.p, yu.size() * 4, cudaMemcpyDeviceToHost));
                        CK(cudaMemcpy(y2.data(), dy.p, y2.size() * 4, cudaMemcpyDeviceToHost));
                        EXPECT_LE(rel_error(yg, reference(wg, x, batch)), 1e-3) << what << " stage 1 (gate)";
                        if (silu) EXPECT_LE(rel_error(yu, reference(wu, x, batch)), 1e-3) << what << " stage 1 (up)";
                        std::vector<float> a = yg;
                        if (silu)
                            for (size_t i = 0; i < a.size(); ++i) a[i] = yg[i] / (1.0f + std::exp(-yg[i])) * yu[i];
                        std::vector<double> r2 = reference(wd, a, batch);
                        for (int n = 0; n < batch; ++n) {
                            double s2 = 0;
                            for (int64_t k = 0; k < R; ++k) s2 += double(a[size_t(n * R + k)]) * a[size_t(n * R + k)];
                            for (int64_t r = 0; r < R2; ++r) r2[size_t(n * R2 + r)] /= std::sqrt(s2 / double(R) + 1e-5);
                        }
                        EXPECT_LE(rel_error(y2, r2), 1e-3) << what << " stage 2";
                    };
                    const std::string what = name + " batch " + std::to_string(batch) + (silu ? " silu·up" : "") +
                                             (mode < 2 ? " fused, depth " + std::to_string(depth[mode]) : " separate prep");
                    eager_then_graph(s, what, chain, check);
                }
        }
    }
    cudaStreamDestroy(s);
}

TEST(CudaGemv, Int8PathSelection) {
    REQUIRE_GPU();
    auto path = [](const char* f, int bits, int group, int batch) {
        const PackedWeight w = make_weight(Case{f, bits, group, false}, 16, 256, 1);
        return cuda::int8_decode_path(*cuda::upload(w), batch);
    };
    {
        const ScopedDecodeOptions o([](cuda::DecodeOptions& d) { d = cuda::DecodeOptions{}; });
        EXPECT_TRUE(path("int", 2, 128, 1));
        EXPECT_TRUE(path("int", 2, 64, 4));
        EXPECT_FALSE(path("int", 2, 32, 1));  // a word pair spans 64 columns
        EXPECT_FALSE(path("int", 2, 128, 5));
        EXPECT_FALSE(path("int", 3, 128, 1));  // mixed 2- and 1-bit planes
        EXPECT_TRUE(path("int", 4, 32, 1));
        EXPECT_TRUE(path("bitplane", 2, 128, 1));
        EXPECT_FALSE(path("bitplane", 2, 64, 1));
        EXPECT_TRUE(path("tritplane", 2, 64, 2));
    }
    const ScopedDecodeOptions o([](cuda::DecodeOptions& d) { d = cuda::DecodeOptions{true, false, true}; });
    EXPECT_FALSE(path("int", 2, 128, 1));
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
