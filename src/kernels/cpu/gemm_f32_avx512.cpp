// AVX-512 f32 GEMM, GotoBLAS style: C[M×N] (+)= A[M×K] · op(B).
//
//   for each K slice of KC:                       (threads split N; A slice packed once, shared)
//     pack A[:, slice] into MR-row panels [KC][MR]
//     for each NC-wide block of this thread's N:  pack B block into NR-column panels [KC][NR] (f32, the
//                                                 bf16/f16 widening and the transpose happen here, once)
//       for each B panel (stays in L1): for each A panel: 14×32 micro-kernel
//
// The micro-kernel keeps a 14×32 tile of C in 28 zmm accumulators; each k step is 2 loads of B and
// 14 broadcast-FMA pairs, so the FMA units, not the loads, set the pace.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/half.hpp"
#include "core/scratch.hpp"
#include "kernels/cpu/gemm_f32.hpp"

namespace planeq::cpu {

namespace {

constexpr int64_t MR = 14, NR = 32, KC = 256, NC = 256;

// ---- packing -------------------------------------------------------------------------------

inline __m512 load16(const void* base, DType dt, int64_t offset, __mmask16 m) {
    switch (dt) {
        case DType::BF16:
            return _mm512_castsi512_ps(_mm512_slli_epi32(
                _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + offset)), 16));
        case DType::F16:
            return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + offset));
        default:
            return _mm512_maskz_loadu_ps(m, static_cast<const float*>(base) + offset);
    }
}

// In-register transpose of 16 rows of 16 floats (see the derivation in docs/kernels.md).
inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    __m512 s[16];
    for (int i = 0; i < 4; ++i) {
        s[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        s[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        s[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        s[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    // s[4g + c] lane L holds rows 4g..4g+3 of column 4L + c.
    for (int c = 0; c < 4; ++c) {
        const __m512 v0 = _mm512_shuffle_f32x4(s[c], s[4 + c], 0x88);
        const __m512 v1 = _mm512_shuffle_f32x4(s[c], s[4 + c], 0xDD);
        const __m512 v2 = _mm512_shuffle_f32x4(s[8 + c], s[12 + c], 0x88);
        const __m512 v3 = _mm512_shuffle_f32x4(s[8 + c], s[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

// A rows [m0, m0 + mr) × cols [k0, k0 + kc) -> out[k][MR], rows past mr zero. Row-major A is
// transposed 16 × 16 in registers; transposed A (stored [K × M]) is the easy case: each k is a
// contiguous run of mr values.
void pack_a(const float* A, int64_t lda, bool a_trans, int64_t m0, int64_t mr, int64_t k0, int64_t kc, float* out) {
    const __mmask16 row_mask = __mmask16((1u << MR) - 1);  // MR ≤ 16 lanes of each k
    if (a_trans) {
        const __mmask16 m = __mmask16((1u << mr) - 1);
        for (int64_t k = 0; k < kc; ++k)
            _mm512_mask_storeu_ps(out + k * MR, row_mask, _mm512_maskz_loadu_ps(m, A + (k0 + k) * lda + m0));
        return;
    }
    for (int64_t kk = 0; kk < kc; kk += 16) {
        const int64_t kvalid = std::min<int64_t>(16, kc - kk);
        const __mmask16 km = __mmask16((1u << kvalid) - 1);
        __m512 r[16];
        for (int64_t i = 0; i < 16; ++i)
            r[i] = i < mr ? _mm512_maskz_loadu_ps(km, A + (m0 + i) * lda + k0 + kk) : _mm512_setzero_ps();
        transpose16(r);
        for (int64_t k = 0; k < kvalid; ++k) _mm512_mask_storeu_ps(out + (kk + k) * MR, row_mask, r[k]);
    }
}

// B columns [n0, n0 + nr) of op(B), K range [k0, k0 + kc) -> out[k][NR] in f32, columns past nr zero.
void pack_b(const BOperand& B, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* out) {
    if (B.block) {  // a packed format dequantizes the block; then transpose it like a stored [N × K] f32 matrix
        float* tmp = scratch_floats(size_t(NR * KC), 3);
        B.block(B.ctx, n0, nr, k0, kc, tmp);
        pack_b(BOperand{tmp, DType::F32, kc, true}, 0, nr, 0, kc, out);
        return;
    }
    if (!B.rows_are_n) {  // stored [K × N]: each k is a contiguous run of n
        for (int64_t k = 0; k < kc; ++k) {
            const int64_t off = (k0 + k) * B.ld + n0;
            for (int64_t h = 0; h < NR; h += 16) {
                const int64_t valid = std::clamp<int64_t>(nr - h, 0, 16);
                const __mmask16 m = __mmask16((1u << valid) - 1);
                _mm512_storeu_ps(out + k * NR + h, load16(B.data, B.dtype, off + h, m));
            }
        }
        return;
    }
    // Stored [N × K]: transpose 16×16 tiles (16 columns of op(B) = 16 stored rows).
    for (int64_t h = 0; h < NR; h += 16) {
        for (int64_t kk = 0; kk < kc; kk += 16) {
            const int64_t kvalid = std::min<int64_t>(16, kc - kk);
            const __mmask16 km = __mmask16((1u << kvalid) - 1);
            __m512 r[16];
            for (int64_t j = 0; j < 16; ++j) {
                const int64_t n = h + j;
                r[j] = n < nr ? load16(B.data, B.dtype, (n0 + n) * B.ld + k0 + kk, km) : _mm512_setzero_ps();
            }
            transpose16(r);
            for (int64_t k = 0; k < kvalid; ++k) _mm512_storeu_ps(out + (kk + k) * NR + h, r[k]);
        }
    }
}

// ---- micro-kernel --------------------------------------------------------------------------

template <bool Accumulate>
void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc, int64_t mr,
                  __mmask16 mask0, __mmask16 mask1) {
    __m512 acc[MR][2];
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_load_ps(b + k * NR);
        const __m512 b1 = _mm512_load_ps(b + k * NR + 16);
#pragma GCC unroll 14
        for (int i = 0; i < MR; ++i) {
            const __m512 ai = _mm512_set1_ps(a[k * MR + i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
        if (i >= mr) break;
        float* ci = c + i * ldc;
        if (Accumulate) {
            acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_maskz_loadu_ps(mask0, ci));
            acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_maskz_loadu_ps(mask1, ci + 16));
        }
        _mm512_mask_storeu_ps(ci, mask0, acc[i][0]);
        _mm512_mask_storeu_ps(ci + 16, mask1, acc[i][1]);
    }
}

// One thread's share: columns [n_begin, n_end) for the K slice [k0, k0 + kc).
void compute_slice(int64_t M, int64_t n_begin, int64_t n_end, int64_t k0, int64_t kc, const float* apacked,
                   const BOperand& B, float* C, int64_t ldc, bool accumulate) {
    float* bpacked = scratch_floats(size_t(NC * KC) + 16, 2);
    bpacked = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(bpacked) + 63) & ~uintptr_t(63));
    const int64_t a_panels = (M + MR - 1) / MR;
    for (int64_t nc0 = n_begin; nc0 < n_end; nc0 += NC) {
        const int64_t nc = std::min(NC, n_end - nc0);
        const int64_t b_panels = (nc + NR - 1) / NR;
        for (int64_t p = 0; p < b_panels; ++p)
            pack_b(B, nc0 + p * NR, std::min(NR, nc - p * NR), k0, kc, bpacked + p * KC * NR);
        for (int64_t p = 0; p < b_panels; ++p) {
            const int64_t n0 = nc0 + p * NR, nr = std::min(NR, nc - p * NR);
            const __mmask16 mask0 = __mmask16((1u << std::min<int64_t>(16, nr)) - 1);
            const __mmask16 mask1 = __mmask16(nr > 16 ? (1u << (nr - 16)) - 1 : 0);
            const float* bp = bpacked + p * KC * NR;
            for (int64_t ap = 0; ap < a_panels; ++ap) {
                const int64_t m0 = ap * MR, mr = std::min(MR, M - m0);
                float* c = C + m0 * ldc + n0;
                if (accumulate) micro_kernel<true>(kc, apacked + ap * KC * MR, bp, c, ldc, mr, mask0, mask1);
                else micro_kernel<false>(kc, apacked + ap * KC * MR, bp, c, ldc, mr, mask0, mask1);
            }
        }
    }
}

}  // namespace

void gemm_f32_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const BOperand& B, float* C,
                     int64_t ldc, bool accumulate, int threads, bool a_trans) {
    const int64_t a_panels = (M + MR - 1) / MR;
    const int team = threads == 1 ? 1 : (threads > 0 ? threads : omp_get_max_threads());
    // The packed A slice is shared by the team: allocate it from the calling thread's scratch.
    std::vector<float>* shared_a = nullptr;
    thread_local std::vector<float> a_storage;
    if (a_storage.size() < size_t(a_panels * KC * MR)) a_storage.resize(size_t(a_panels * KC * MR));
    shared_a = &a_storage;
    float* apacked = shared_a->data();

    // Split N into NR-aligned ranges, one per thread.
    const int64_t n_units = (N + NR - 1) / NR;
    auto run = [&](int tid, int nthreads) {
        const int64_t u0 = n_units * tid / nthreads, u1 = n_units * (tid + 1) / nthreads;
        const int64_t n_begin = u0 * NR, n_end = std::min(N, u1 * NR);
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            const int64_t kc = std::min(KC, K - k0);
            for (int64_t ap = tid; ap < a_panels; ap += nthreads)
                pack_a(A, lda, a_trans, ap * MR, std::min(MR, M - ap * MR), k0, kc, apacked + ap * KC * MR);
            if (nthreads > 1) {
#pragma omp barrier
            }
            if (n_begin < n_end) compute_slice(M, n_begin, n_end, k0, kc, apacked, B, C, ldc, accumulate || k0 > 0);
            if (nthreads > 1) {
#pragma omp barrier
            }
        }
    };
    if (K == 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; ++i) std::fill_n(C + i * ldc, N, 0.0f);
        return;
    }
    if (team == 1 || n_units < 2) {
        run(0, 1);
        return;
    }
#pragma omp parallel num_threads(team)
    run(omp_get_thread_num(), omp_get_num_threads());
}

}  // namespace planeq::cpu
