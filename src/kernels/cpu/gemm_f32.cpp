#include "kernels/cpu/gemm_f32.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/blas_threads.hpp"
#include "core/cpu_features.hpp"
#include "core/parallel.hpp"
#include "core/scratch.hpp"
#include "formats/dense.hpp"

namespace planeq::cpu {

void gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const BOperand& B, float* C, int64_t ldc,
              bool accumulate, int threads, bool a_trans) {
    if (M <= 0 || N <= 0) return;
    if (simd_level() == SimdLevel::Avx512) gemm_f32_avx512(M, N, K, A, lda, B, C, ldc, accumulate, threads, a_trans);
    else gemm_f32_openblas(M, N, K, A, lda, B, C, ldc, accumulate, threads, a_trans);
}

namespace {

// Tiles of C = op(A)·op(B), one single-threaded sgemm each (core/blas_threads.hpp): N in slices of 256, and M
// in tiles of ≥ 128 rows where there are fewer than 8 slices. The tiling depends on the shape only, so every
// team gets the same bits. (With N slices alone, the tiny model's 256-wide q/o/down ran on one thread while
// the other waited: a quarter of its perplexity run on a 2-core machine.)
void sgemm_slices(CBLAS_TRANSPOSE ta, bool b_rows_are_n, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* C, int64_t ldc, int threads) {
    constexpr int64_t kSlice = 256, kMinRows = 128, kTasks = 8;
    const int64_t slices = (N + kSlice - 1) / kSlice;
    const int64_t want = (kTasks + slices - 1) / slices;  // M tiles wanted
    const int64_t rows = std::max(kMinRows, (M + want - 1) / want + 15) / 16 * 16;
    const int64_t mtiles = (M + rows - 1) / rows, tasks = slices * mtiles;
    // The team size before the guard: OpenBLAS's OpenMP build sets the calling thread's OpenMP thread count in
    // openblas_set_num_threads, so a plain `parallel for` under the guard got a team of one.
    const int team = threads == 1 ? 1 : omp_get_max_threads();
    const SingleThreadedBlas one;
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1 && tasks > 1)
    for (int64_t t = 0; t < tasks; ++t) {
        const int64_t s = t % slices, mt = t / slices;
        const int64_t n0 = s * kSlice, nn = std::min(kSlice, N - n0), m0 = mt * rows, mm = std::min(rows, M - m0);
        const float* bs = b_rows_are_n ? b + n0 * ldb : b + n0;
        const float* as = ta == CblasTrans ? A + m0 : A + m0 * lda;
        cblas_sgemm(CblasRowMajor, ta, b_rows_are_n ? CblasTrans : CblasNoTrans, int(mm), int(nn), int(K), 1.0f, as, int(lda), bs,
                    int(ldb), beta, C + m0 * ldc + n0, int(ldc));
    }
}

}  // namespace

void gemm_f32_openblas(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const BOperand& B, float* C,
                       int64_t ldc, bool accumulate, int threads, bool a_trans) {
    const CBLAS_TRANSPOSE ta = a_trans ? CblasTrans : CblasNoTrans;
    const float* b = static_cast<const float*>(B.data);
    int64_t ldb = B.ld;
    if (B.block) {  // materialize op(B) as [N × K] f32
        float* wf = scratch_floats(size_t(N * K), 4);
        const int64_t step = 32;
        parallel_for((N + step - 1) / step, threads != 1, [&](int64_t i) {
            const int64_t n0 = i * step;
            B.block(B.ctx, n0, std::min(step, N - n0), 0, K, wf + n0 * K);
        });
        sgemm_slices(ta, true, M, N, K, A, lda, wf, K, accumulate ? 1.0f : 0.0f, C, ldc, threads);
        return;
    }
    if (B.dtype != DType::F32) {  // widen to f32 first: OpenBLAS has no bf16/f16 sgemm
        const int64_t rows = B.rows_are_n ? N : K, cols = B.rows_are_n ? K : N;
        float* wf = scratch_floats(size_t(rows * cols), 4);
        const auto* src = static_cast<const uint8_t*>(B.data);
        const size_t esz = dtype_size(B.dtype);
        parallel_for(rows, threads != 1,
                     [&](int64_t r) { dense_to_f32(B.dtype, src + size_t(r * B.ld) * esz, 0, size_t(cols), wf + r * cols); });
        b = wf;
        ldb = cols;
    }
    sgemm_slices(ta, B.rows_are_n, M, N, K, A, lda, b, ldb, accumulate ? 1.0f : 0.0f, C, ldc, threads);
}

}  // namespace planeq::cpu
