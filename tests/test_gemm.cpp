// The f32 GEMM (AVX-512 and OpenBLAS paths) against a naive double-precision reference, for odd
// shapes, both B layouts, f32/bf16/f16 B, transposed A, strided operands and accumulation.
#include <random>
#include <tuple>

#include "core/cpu_features.hpp"
#include "core/half.hpp"
#include "kernels/cpu/gemm_f32.hpp"
#include "test_util.hpp"

namespace planeq::test {
namespace {

struct Case {
    int64_t M, N, K;
    DType dtype;
    bool rows_are_n;
    bool accumulate;
    bool a_trans = false;  // A stored [K × M]
};

void run_case(const Case& c, bool avx512) {
    std::mt19937 rng(uint32_t(c.M * 131 + c.N * 7 + c.K));
    std::normal_distribution<float> nd;
    const int64_t lda = c.a_trans ? c.M + 3 : c.K + 3, ldc = c.N + 5;
    const int64_t b_rows = c.rows_are_n ? c.N : c.K, b_cols = c.rows_are_n ? c.K : c.N, ldb = b_cols + 2;
    std::vector<float> A(size_t((c.a_trans ? c.K : c.M) * lda)), C(size_t(c.M * ldc)), Bf(size_t(b_rows * ldb));
    std::vector<uint16_t> Bh(Bf.size());
    for (float& v : A) v = nd(rng);
    for (float& v : C) v = nd(rng);
    for (size_t i = 0; i < Bf.size(); ++i) {
        const float v = nd(rng);
        if (c.dtype == DType::BF16) { Bh[i] = f32_to_bf16(v); Bf[i] = bf16_to_f32(Bh[i]); }
        else if (c.dtype == DType::F16) { Bh[i] = f32_to_f16(v); Bf[i] = f16_to_f32(Bh[i]); }
        else Bf[i] = v;
    }
    std::vector<float> want = C;
    for (int64_t i = 0; i < c.M; ++i)
        for (int64_t j = 0; j < c.N; ++j) {
            double acc = c.accumulate ? double(C[size_t(i * ldc + j)]) : 0.0;
            for (int64_t k = 0; k < c.K; ++k)
                acc += double(A[size_t(c.a_trans ? k * lda + i : i * lda + k)]) * Bf[size_t(c.rows_are_n ? j * ldb + k : k * ldb + j)];
            want[size_t(i * ldc + j)] = float(acc);
        }
    cpu::BOperand B{c.dtype == DType::F32 ? static_cast<const void*>(Bf.data()) : Bh.data(), c.dtype, ldb, c.rows_are_n};
    if (avx512) cpu::gemm_f32_avx512(c.M, c.N, c.K, A.data(), lda, B, C.data(), ldc, c.accumulate, 0, c.a_trans);
    else cpu::gemm_f32_openblas(c.M, c.N, c.K, A.data(), lda, B, C.data(), ldc, c.accumulate, 0, c.a_trans);
    double max_err = 0;
    for (int64_t i = 0; i < c.M; ++i)
        for (int64_t j = 0; j < ldc; ++j) {
            const size_t at = size_t(i * ldc + j);
            if (j >= c.N) {
                ASSERT_EQ(C[at], want[at]) << "wrote outside C at row " << i << " col " << j;
                continue;
            }
            const double scale = std::sqrt(double(c.K)) + 1;
            max_err = std::max(max_err, std::abs(double(C[at]) - want[at]) / scale);
        }
    EXPECT_LE(max_err, 1e-5) << "M=" << c.M << " N=" << c.N << " K=" << c.K << " dtype=" << dtype_name(c.dtype)
                             << " rows_are_n=" << c.rows_are_n << " acc=" << c.accumulate << " a_trans=" << c.a_trans;
}

const Case kCases[] = {
    {1, 1, 1, DType::F32, true, false},     {14, 32, 256, DType::F32, true, false}, {15, 33, 257, DType::F32, true, false},
    {13, 31, 17, DType::BF16, true, false}, {100, 70, 600, DType::BF16, true, true}, {29, 300, 513, DType::F16, true, false},
    {64, 64, 64, DType::F32, false, false}, {37, 64, 129, DType::F32, false, true}, {5, 17, 3, DType::BF16, false, false},
    {512, 96, 40, DType::F32, true, false}, {3, 520, 300, DType::BF16, true, false},
    // Transposed A (Gram matrices): partial and full MR panels, several K slices, accumulation.
    {1, 1, 1, DType::F32, false, false, true},   {14, 32, 256, DType::F32, false, true, true},
    {45, 300, 513, DType::F32, false, true, true}, {13, 31, 17, DType::BF16, true, false, true},
    // M in tiles (OpenBLAS path: fewer than 8 slices of 256 columns), transposed A and accumulation among them.
    {300, 200, 50, DType::F32, false, true, true}, {700, 260, 33, DType::BF16, true, true},
};

TEST(Gemm, Avx512MatchesReference) {
    if (simd_level() != SimdLevel::Avx512) GTEST_SKIP() << "no AVX-512 on this CPU";
    for (const Case& c : kCases) run_case(c, true);
}

TEST(Gemm, OpenBlasFallbackMatchesReference) {
    for (const Case& c : kCases) run_case(c, false);
}

TEST(Gemm, SingleThreadedEqualsTeam) {
    if (simd_level() != SimdLevel::Avx512) GTEST_SKIP() << "no AVX-512 on this CPU";
    const int64_t M = 77, N = 333, K = 700;
    std::vector<float> A(size_t(M * K)), B(size_t(N * K)), C1(size_t(M * N)), C2(size_t(M * N));
    std::mt19937 rng(5);
    std::normal_distribution<float> nd;
    for (float& v : A) v = nd(rng);
    for (float& v : B) v = nd(rng);
    const cpu::BOperand b{B.data(), DType::F32, K, true};
    cpu::gemm_f32_avx512(M, N, K, A.data(), K, b, C1.data(), N, false, 1);
    cpu::gemm_f32_avx512(M, N, K, A.data(), K, b, C2.data(), N, false, 0);
    EXPECT_EQ(C1, C2);  // the same arithmetic order whatever the split
}

// The OpenBLAS path splits C into tiles by shape alone (N slices, M tiles): a team gives the one-thread bits.
TEST(Gemm, OpenBlasSingleThreadedEqualsTeam) {
    for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{77, 333, 700}, {600, 300, 64}, {1000, 2000, 40}}) {
        std::vector<float> A(size_t(M * K)), B(size_t(N * K)), C1(size_t(M * N)), C2(size_t(M * N));
        std::mt19937 rng(uint32_t(M + N));
        std::normal_distribution<float> nd;
        for (float& v : A) v = nd(rng);
        for (float& v : B) v = nd(rng);
        const cpu::BOperand b{B.data(), DType::F32, K, true};
        cpu::gemm_f32_openblas(M, N, K, A.data(), K, b, C1.data(), N, false, 1);
        cpu::gemm_f32_openblas(M, N, K, A.data(), K, b, C2.data(), N, false, 0);
        EXPECT_EQ(C1, C2) << M << "x" << N << "x" << K;
    }
}

}  // namespace
}  // namespace planeq::test
