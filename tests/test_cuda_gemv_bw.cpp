// The batch-1 bandwidth-first GEMV (gemv_bw.cu, DecodeOptions::bw) against the CPU reference (the format's
// dequantize_rows + an f64 matmul), bar ‖y − ref‖/‖ref‖ ≤ 1e-3 like every GPU kernel: int b=2 (sym and asym) and
// bitplane k=2 at g 32 … 256, odd shapes (rows not a multiple of 32, columns not a multiple of 256, a K split
// that leaves warps without work), every CTA shape (1, 2, 4 row blocks) and column split (1, 2, 8 blocks a cluster,
// uneven slices), the in-kernel silu·up and RMS scale (Σ x² summed across a split),
// unaligned inputs (the scalar load path), a three-weight launch, and the path selection. Outputs are NaN-poisoned
// first. With int8 activations (DecodeOptions::bw_act8) the reference is the CPU kernels' math: x quantized by the
// CPU's own quantizer, then Σ ŵ x̂ in f64. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_gemv.hpp"
#include "kernels/cuda/gpu_weight.hpp"
#include "model/synthetic.hpp"
#include "cuda_test_util.hpp"

namespace planeq {
namespace {

using namespace cuda_test;

// y = W·act (act = x, or silu(x)·up), optionally / rms(act), through prepare_act(…, weight) + gemv at batch 1;
// `offset` floats into the device buffers (1: misaligned, the scalar path). act8 (DecodeOptions::bw_act8 set by the
// caller): the reference is the CPU kernels' math, Σ ŵ x̂ with x̂ = cpu_int8_act(act, g).
double bw_error(const PackedWeight& w, uint64_t seed, bool silu, bool rms, int offset = 0, bool act8 = false) {
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
    std::vector<double> ref = reference(w, act8 ? cpu_int8_act(act, w.params.group) : act, 1);
    if (rms) {
        double s2 = 0;
        for (float a : act) s2 += double(a) * a;
        for (double& r : ref) r /= std::sqrt(s2 / double(w.cols) + 1e-5);
    }
    return rel_error(y, ref);
}

struct BwOptions : ScopedDecodeOptions {  // the bw kernel's switches for a scope
    BwOptions(bool bw, int rows, int split = 0, bool act8 = false, bool down_i8 = false)
        : ScopedDecodeOptions([&](cuda::DecodeOptions& d) {
              d.bw = bw, d.bw_rows = rows, d.bw_split = split, d.bw_act8 = act8, d.bw_down_i8 = down_i8;
          }) {}
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
            for (int rows : {0, 1, 2, 4})
                for (int split : {0, 1, 2, 8}) {  // 8: more blocks than iterations for the narrow shapes (capped)
                    BwOptions o(true, rows, split);
                    const std::string what = std::string(c.format) + " b2 g" + std::to_string(c.group) + (c.sym ? " sym " : " ") +
                                             std::to_string(R) + "x" + std::to_string(C) + " rows/CTA " + std::to_string(rows) +
                                             " split " + std::to_string(split);
                    EXPECT_LE(bw_error(w, ++seed, false, false), 1e-3) << what;
                    EXPECT_LE(bw_error(w, ++seed, true, true), 1e-3) << what << " silu·up + rms";
                    if (rows == 0 || split == 2) {
                        EXPECT_LE(bw_error(w, ++seed, false, true), 1e-3) << what << " rms";
                        EXPECT_LE(bw_error(w, ++seed, true, false, 1), 1e-3) << what << " silu·up, misaligned";
                    }
                }
        }
}

// DecodeOptions::bw_act8: the activation quantized exactly as the CPU's GEMVs quantize it, so the GPU's int sums are
// the CPU's: 1e-5 against that math where x is given (the rest is f32 rounding of the per-group products), 1e-3 with
// silu·up in the kernel (its __expf may move a value across a rounding boundary of the int8 grid). Every group size,
// CTA shape and split, both formats.
TEST(CudaGemvBw, Int8ActivationsEqualTheCpuKernelsMath) {
    REQUIRE_GPU();
    uint64_t seed = 31000;
    const Case cases[] = {{"int", 2, 32, false}, {"int", 2, 64, true}, {"int", 2, 128, false}, {"int", 2, 256, true},
                          {"bitplane", 2, 32, false}, {"bitplane", 2, 128, false}, {"bitplane", 2, 256, false}};
    for (const Case& c : cases)
        for (auto [R, C] : {std::pair<int64_t, int64_t>{37, 768}, {200, int64_t(c.group) * 5}, {300, 4352}}) {
            const PackedWeight w = make_weight(c, R, C, ++seed);
            for (auto [rows, split] : {std::pair{0, 0}, {1, 1}, {4, 1}, {1, 2}, {2, 8}}) {
                BwOptions o(true, rows, split, true);
                const std::string what = std::string(c.format) + " b2 g" + std::to_string(c.group) + (c.sym ? " sym " : " ") +
                                         std::to_string(R) + "x" + std::to_string(C) + " rows/CTA " + std::to_string(rows) +
                                         " split " + std::to_string(split);
                EXPECT_LE(bw_error(w, ++seed, false, false, 0, true), 1e-5) << what;
                EXPECT_LE(bw_error(w, ++seed, false, true, 0, true), 1e-5) << what << " rms";
                EXPECT_LE(bw_error(w, ++seed, true, true, 0, true), 1e-3) << what << " silu·up + rms";
            }
        }
}

// gate/up → down as a decode step chains them (gemv_multi_prep with silu): on the paired path the gate/up launch
// quantizes silu(gate)·up for down in its epilogue (ActBuffer::bw_preq). Gate, up and down each against the CPU
// reference (down's from the reference gate and up), with and without the RMS scales, for every group pairing that
// changes the activation group (down g32: groups of 32; g ≥ 64: 64), and the fallback when the intermediate size is
// not a multiple of 256 (no pairing, the same results). With DecodeOptions::bw_down_i8 (int b=2, down g ≥ 64) the
// epilogue writes the int8 path's layout in groups of 64 columns and down runs on the int8 path's GEMV.
TEST(CudaGemvBw, PairedGateUpQuantizesDownsInput) {
    REQUIRE_GPU();
    struct P { const char* f; int gu_group, down_group; bool sym; int64_t inter; bool paired; };
    const P cases[] = {{"int", 128, 128, false, 768, true}, {"int", 64, 32, true, 512, true}, {"int", 256, 64, false, 1024, true},
                       {"bitplane", 128, 128, false, 768, true}, {"bitplane", 32, 256, false, 512, true},
                       {"int", 128, 128, false, 640, false}};
    const int64_t H = 768;  // gate/up's columns: every group size divides it (and down's rows: not a power of two)
    uint64_t seed = 900;
    for (int m : {0, 1, 2})  // hi/lo, int8 activations, hi/lo with down on the int8 path (bw_down_i8)
    for (const P& c : cases)
        for (bool rms : {false, true}) {
            const bool act8 = m == 1, down_i8 = m == 2;
            BwOptions mode(true, 0, 0, act8, down_i8);
            const PackedWeight wg = make_weight(Case{c.f, 2, c.gu_group, c.sym}, c.inter, H, ++seed);
            const PackedWeight wu = make_weight(Case{c.f, 2, c.gu_group, c.sym}, c.inter, H, ++seed);
            const PackedWeight wd = make_weight(Case{c.f, 2, c.down_group, c.sym}, H, c.inter, ++seed);
            std::mt19937_64 rng(++seed);
            const std::vector<float> x = random_vec(size_t(H), rng);
            // reference: g, u = W x (/ rms(x)), a = silu(g)·u, y = W_down a (/ rms(a))
            auto scale = [&](std::vector<double>& v, const std::vector<float>& in) {
                if (!rms) return;
                double s2 = 0;
                for (float t : in) s2 += double(t) * t;
                for (double& r : v) r /= std::sqrt(s2 / double(in.size()) + 1e-5);
            };
            std::vector<double> g = reference(wg, x, 1), u = reference(wu, x, 1);
            scale(g, x), scale(u, x);
            std::vector<float> a(size_t(c.inter));
            for (size_t i = 0; i < a.size(); ++i) a[i] = float(g[i] / (1.0 + std::exp(-g[i])) * u[i]);
            std::vector<double> yd = reference(wd, a, 1);
            scale(yd, a);
            if (act8) {  // the CPU kernels' math: gate/up over x̂ (groups of gate/up's g)
                const std::vector<float> xh = cpu_int8_act(x, c.gu_group);
                g = reference(wg, xh, 1), u = reference(wu, xh, 1);
                scale(g, x), scale(u, x);
            }

            cuda::GpuWeightPtr dg = cuda::upload(wg), du = cuda::upload(wu), dd = cuda::upload(wd);
            DevBuf dx{size_t(H)}, dyg{size_t(c.inter)}, dyu{size_t(c.inter)}, dyd{size_t(H)};
            CK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
            for (auto [p, n] : {std::pair<float*, int64_t>{dyg.p, c.inter}, {dyu.p, c.inter}, {dyd.p, H}}) CK(cudaMemset(p, 0xff, size_t(n) * 4));
            cuda::ActBufferPtr A = cuda::make_act_buffer(std::max(H, c.inter)), A2 = cuda::make_act_buffer(std::max(H, c.inter));
            cuda::prepare_act(*A, dx.p, nullptr, H, 1, c.gu_group, nullptr, rms, dg.get());
            const cuda::GpuWeight* gu[2] = {dg.get(), du.get()};
            float* ys[2] = {dyg.p, dyu.p};
            cuda::gemv_multi_prep(gu, ys, 2, A.get(), dx.p, 1, nullptr, {A2.get(), dd.get(), 0, 1, rms});
            const std::string what = std::string(c.f) + " gate/up g" + std::to_string(c.gu_group) + " down g" +
                                     std::to_string(c.down_group) + " I " + std::to_string(c.inter) + (rms ? " rms" : "") +
                                     (act8 ? " act8" : "") + (down_i8 ? " down on the int8 path" : "");
            const bool i8 = down_i8 && c.paired && std::string(c.f) == "int" && c.down_group >= 64;
            EXPECT_EQ(A2->bw_preq, c.paired && !i8) << what;
            EXPECT_EQ(A2->i8_ga, i8 ? 64 : 0) << what;
            auto get = [](const float* p, int64_t n) {
                std::vector<float> v(size_t(n), 0.0f);
                EXPECT_EQ(cudaMemcpy(v.data(), p, size_t(n) * 4, cudaMemcpyDeviceToHost), cudaSuccess);
                return v;
            };
            CK(cudaDeviceSynchronize());
            const std::vector<float> yg = get(dyg.p, c.inter), yu = get(dyu.p, c.inter);
            EXPECT_LE(rel_error(yg, g), act8 && !rms ? 1e-5 : 1e-3) << what << " gate";
            EXPECT_LE(rel_error(yu, u), act8 && !rms ? 1e-5 : 1e-3) << what << " up";
            if (act8) {  // down against the CPU math on the GPU's own gate and up (its input's int8 grid follows them)
                std::vector<float> ag(size_t(c.inter));
                double s2 = 0;
                for (size_t i = 0; i < ag.size(); ++i) ag[i] = yg[i] / (1.0f + std::exp(-yg[i])) * yu[i], s2 += double(ag[i]) * ag[i];
                // the paired producer quantizes down's input in groups of min(g, 64) (a tile's 64 rows)
                yd = reference(wd, c.paired ? cpu_int8_act(ag, std::min(c.down_group, 64)) : cpu_int8_act(ag, c.down_group), 1);
                if (rms)
                    for (double& r : yd) r /= std::sqrt(s2 / double(c.inter) + 1e-5);
            }
            for (int split : {0, 1, 2}) {  // down over the pre-quantized input, whole or split over a cluster of 2
                BwOptions o(true, 0, split, act8, down_i8);
                CK(cudaMemset(dyd.p, 0xff, size_t(H) * 4));
                cuda::gemv(*dd, A2.get(), nullptr, 1, dyd.p, nullptr);
                CK(cudaDeviceSynchronize());
                EXPECT_LE(rel_error(get(dyd.p, H), yd), 1e-3) << what << " down, split " << split;
            }
        }
}

TEST(CudaGemvBw, MultiWeightLaunchAndSelection) {
    REQUIRE_GPU();
    const int64_t C = 1536;
    for (const char* f : {"int", "bitplane"}) {
        std::vector<PackedWeight> ws;
        for (int64_t R : {96, 40, 130}) ws.push_back(make_weight(Case{f, 2, 128, false}, R, C, 80 + uint64_t(R)));
        for (auto [rows, split] : {std::pair{1, 1}, {4, 1}, {1, 4}, {2, 2}}) {  // split 4 of 6 iterations: slices 1, 2, 1, 2
            BwOptions o(true, rows, split);
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
                EXPECT_LE(rel_error(y, reference(ws[i], x, 1)), 1e-3) << f << " weight " << i << " rows/CTA " << rows << " split " << split;
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
