// The prefill GEMM (plane formats on wgmma) against the CPU reference: the format's dequantize_rows, then an
// f64 matmul. Bar: ‖y − ref‖ / ‖ref‖ ≤ 1e-3 on fresh random inputs; odd shapes (rows not a multiple of the
// 128/256-row CTA tile or of 16, columns not a multiple of 256, tokens not a multiple of 128), all three CTA
// tiles, every plane configuration and group size; outputs are poisoned (NaN) first. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <cuda_runtime.h>

#include "core/error.hpp"
#include "cuda_test_util.hpp"
#include "formats/dense.hpp"
#include "kernels/cuda/cuda_gemv.hpp"

namespace planeq {
namespace {

using namespace cuda_test;

// Where the error sits when a check fails: the worst element and error sums by row % 16 and token % 8
// (fragment-layout mistakes show as a pattern there).
std::string diagnose(const std::vector<float>& y, const std::vector<double>& ref, int64_t rows, int tokens) {
    double worst = -1;
    int64_t wi = 0;
    std::vector<double> by_row(16, 0.0), by_tok(8, 0.0);
    int64_t nonfinite = 0;
    for (int n = 0; n < tokens; ++n)
        for (int64_t r = 0; r < rows; ++r) {
            const size_t i = size_t(n * rows + r);
            if (!std::isfinite(y[i])) {
                ++nonfinite;
                continue;
            }
            const double e = std::abs(double(y[i]) - ref[i]);
            by_row[size_t(r % 16)] += e, by_tok[size_t(n % 8)] += e;
            if (e > worst) worst = e, wi = int64_t(i);
        }
    char buf[512];
    std::snprintf(buf, sizeof buf, "nonfinite %lld; worst at token %lld row %lld: %g vs %g; |err| by row%%16:", (long long)nonfinite,
                  (long long)(wi / rows), (long long)(wi % rows), double(y[size_t(wi)]), ref[size_t(wi)]);
    std::string s = buf;
    for (double v : by_row) s += " " + std::to_string(int64_t(v));
    s += "; by token%8:";
    for (double v : by_tok) s += " " + std::to_string(int64_t(v));
    return s;
}

// GPU GEMM of `w` for `tokens` random tokens (optionally via the fused silu·up and RMS prep); returns the error.
double gemm_error(const PackedWeight& w, int tokens, uint64_t seed, std::string* why = nullptr, bool silu = false, bool rms = false) {
    std::mt19937_64 rng(seed);
    const size_t nx = size_t(tokens * w.cols), ny = size_t(tokens * w.rows);
    std::vector<float> x = random_vec(nx, rng), up = random_vec(nx, rng);
    std::vector<float> act = x;
    if (silu)
        for (size_t i = 0; i < nx; ++i) act[i] = x[i] / (1.0f + std::exp(-x[i])) * up[i];
    cuda::GpuWeightPtr gw = cuda::upload(w);
    DevBuf dx(nx), dup(nx), dy(ny);
    EXPECT_EQ(cudaMemcpy(dx.p, x.data(), nx * 4, cudaMemcpyHostToDevice), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(dup.p, up.data(), nx * 4, cudaMemcpyHostToDevice), cudaSuccess);
    EXPECT_EQ(cudaMemset(dy.p, 0xff, ny * 4), cudaSuccess);  // NaN poison
    cuda::PrefillBufferPtr pb = cuda::make_prefill_buffer(tokens, w.cols);
    cuda::prepare_prefill(*pb, dx.p, silu ? dup.p : nullptr, w.cols, tokens, nullptr, rms);
    cuda::gemm(*gw, *pb, dy.p, nullptr);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> y(ny);
    EXPECT_EQ(cudaMemcpy(y.data(), dy.p, ny * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    std::vector<double> ref = reference(w, act, tokens);
    if (rms)
        for (int n = 0; n < tokens; ++n) {
            double s2 = 0;
            for (int64_t c = 0; c < w.cols; ++c) s2 += double(act[size_t(n * w.cols + c)]) * act[size_t(n * w.cols + c)];
            const double inv = 1.0 / std::sqrt(s2 / double(w.cols) + 1e-5);
            for (int64_t r = 0; r < w.rows; ++r) ref[size_t(n * w.rows + r)] *= inv;
        }
    const double e = rel_error(y, ref);
    if (why && !(e <= 1e-3)) *why = diagnose(y, ref, w.rows, tokens);
    return e;
}

struct RowTile {  // forces the CTA tile (1: 128 rows × 128 tokens, 2: 256 × 128, 3: 128 × 256) for a scope
    explicit RowTile(int rt) { cuda::gemm_force_row_tile(rt); }
    ~RowTile() { cuda::gemm_force_row_tile(0); }
};

TEST(CudaGemm, PlaneFormatsMatchReference) {
    REQUIRE_GPU();
    uint64_t seed = 500;
    for (const Case& c : kCases) {
        for (auto [R, C] : {std::pair<int64_t, int64_t>{37, 768}, {300, int64_t(c.group) * 5}}) {
            const PackedWeight w = make_weight(c, R, C, ++seed);
            for (int rt : {1, 2, 3}) {
                RowTile force(rt);
                for (int tokens : {1, 77, 130}) {
                    std::string why;
                    const double e = gemm_error(w, tokens, ++seed, &why);
                    EXPECT_LE(e, 1e-3) << c.format << " b" << c.bits << " g" << c.group << (c.sym ? " sym" : "") << " " << R << "x"
                                       << C << " tokens " << tokens << " tile config " << rt << ": " << why;
                }
            }
        }
    }
}

TEST(CudaGemm, TwoBitAtLargerShapes) {  // many k-blocks (past the pipeline depth), several row and token tiles
    REQUIRE_GPU();
    for (const Case& c : {Case{"int", 2, 128, false}, Case{"bitplane", 2, 128, false}}) {
        const PackedWeight w = make_weight(c, 520, 4096, 77);
        for (int rt : {0, 1, 2, 3}) {
            RowTile force(rt);
            std::string why;
            const double e = gemm_error(w, 300, 78 + uint64_t(rt), &why);
            EXPECT_LE(e, 1e-3) << c.format << " 520x4096, 300 tokens, row tile " << rt << ": " << why;
            std::printf("[ info ] %s b2 g128 520x4096, 300 tokens, row tile %d: rel error %.2e\n", c.format, rt, e);
        }
    }
}

TEST(CudaGemm, FusedSiluUpAndRmsNorm) {
    REQUIRE_GPU();
    const PackedWeight w = make_weight(Case{"bitplane", 2, 128, false}, 48, 640, 7);
    for (int tokens : {1, 200}) {
        EXPECT_LE(gemm_error(w, tokens, 8 + tokens, nullptr, true, false), 1e-3) << "silu·up, tokens " << tokens;
        EXPECT_LE(gemm_error(w, tokens, 9 + tokens, nullptr, false, true), 1e-3) << "rms norm, tokens " << tokens;
        EXPECT_LE(gemm_error(w, tokens, 10 + tokens, nullptr, true, true), 1e-3) << "silu·up + rms norm, tokens " << tokens;
    }
}

TEST(CudaGemm, MultiWeightLaunch) {
    REQUIRE_GPU();
    const int tokens = 150;
    const int64_t C = 512;
    std::vector<PackedWeight> ws;
    for (int64_t R : {300, 16, 40}) ws.push_back(random_int(R, C, 2, 128, false, 60 + uint64_t(R)));
    std::mt19937_64 rng(4);
    std::vector<float> x = random_vec(size_t(tokens * C), rng);
    DevBuf dx(x.size());
    CK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    Uploaded up(ws, tokens);
    const std::vector<const cuda::GpuWeight*>& wp = up.wp;
    const std::vector<float*>& yp = up.yp;
    cuda::PrefillBufferPtr pb = cuda::make_prefill_buffer(tokens, C);
    cuda::prepare_prefill(*pb, dx.p, nullptr, C, tokens, nullptr);
    for (int rt : {1, 2, 3}) {
        RowTile force(rt);
        cuda::gemm_multi(wp.data(), yp.data(), 3, *pb, nullptr);
        CK(cudaDeviceSynchronize());
        for (size_t i = 0; i < ws.size(); ++i) {
            std::vector<float> y(size_t(tokens * ws[i].rows));
            CK(cudaMemcpy(y.data(), yp[i], y.size() * 4, cudaMemcpyDeviceToHost));
            EXPECT_LE(rel_error(y, reference(ws[i], x, tokens)), 1e-3) << "weight " << i << ", row tile " << rt;
        }
    }
}

TEST(CudaGemm, RejectsMismatches) {
    REQUIRE_GPU();
    const PackedWeight w = random_int(32, 512, 2, 128, false, 1);
    cuda::GpuWeightPtr gw = cuda::upload(w);
    DevBuf dx(size_t(4 * 768)), dy(size_t(4 * 32));
    cuda::PrefillBufferPtr pb = cuda::make_prefill_buffer(4, 768);
    cuda::prepare_prefill(*pb, dx.p, nullptr, 768, 4, nullptr);
    EXPECT_THROW(cuda::gemm(*gw, *pb, dy.p, nullptr), Error);  // prepared for another width
    EXPECT_THROW(cuda::prepare_prefill(*pb, dx.p, nullptr, 768, 300, nullptr), Error);  // larger than the buffer (256 tokens)
    const PackedWeight d = random_weight(kFormatBF16, 16, 256, FormatParams{16, 0, false, false}, 1);
    cuda::GpuWeightPtr gd = cuda::upload(d);
    cuda::prepare_prefill(*pb, dx.p, nullptr, 256, 4, nullptr);
    EXPECT_THROW(cuda::gemm(*gd, *pb, dy.p, nullptr), Error);  // bf16 prefill is cuBLAS
}

}  // namespace
}  // namespace planeq
