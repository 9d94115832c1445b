// AVX-512 tritplane kernels (F/BW/VL/VNNI/VBMI/F16C): the int8-activation GEMV, block dequantization for
// the prefill GEMM, and the PTQTP topology step. Math and kernel order in tritplane_kernels.hpp.
//
// GEMV inner loop, per 64 stored bytes (320 trits of 16 segments) and digit k = 0..4:
//     m ← m + m + m                       (k > 0; bytes wrap mod 256)
//     k1 = m ≥ 86, k2 = m ≥ 171           (vpcmpub → mask registers)
//     u  = k2 ? 2 : k1 ? 1 : 0            (two masked moves)
//     acc_k += u ·4 xexp[v][k]            (vpdpbusd: u8 {0,1,2} × s8, four per 32-bit lane = segment)
// Five accumulators (one per digit) keep the vpdpbusd chains short; a superblock ends with one
// int32 → f32 conversion and one FMA by (α·d) per lane.
#include <immintrin.h>

// GCC 12's AVX-512 intrinsic headers pass _mm*_undefined_*() as the masked-off source of unmasked
// operations, which -Wuninitialized reports.
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <cstring>

#include "core/half.hpp"
#include "formats/tritplane.hpp"
#include "kernels/cpu/tritplane_digits_avx512.hpp"
#include "kernels/cpu/tritplane_kernels.hpp"

namespace planeq::cpu {

namespace {

#define PLANEQ_AI inline __attribute__((always_inline))

PLANEQ_AI void digits5(__m512i m, const int8_t* x, __m512i* acc) {
    __m512i u[5];
    p5_digits_cmp_avx512(m, u);
#pragma GCC unroll 5
    for (int k = 0; k < 5; ++k) acc[k] = _mm512_dpbusd_epi32(acc[k], u[k], _mm512_loadu_si512(x + 64 * k));
}

inline __mmask64 bytes_mask(int64_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }

// The extra bytes of a superblock of n groups (2n segments, E bytes each at `p`), one 32-bit lane per
// segment, zero padded.
template <int E>
PLANEQ_AI __m512i load_extras(const uint8_t* p, int64_t n) {
    const bool full = n == 8;
    if constexpr (E == 1) {
        return _mm512_cvtepu8_epi32(full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                                         : _mm_maskz_loadu_epi8(__mmask16((1u << (2 * n)) - 1), p));
    } else if constexpr (E == 2) {
        return _mm512_cvtepu16_epi32(full ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                                          : _mm256_maskz_loadu_epi16(__mmask16((1u << (2 * n)) - 1), p));
    } else if constexpr (E == 4) {
        return full ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(bytes_mask(8 * n), p);
    } else {  // E == 3: byte 4L + q ← byte 3L + q (q < 3), byte 4L + 3 ← 0
        const __m512i raw = _mm512_maskz_loadu_epi8(bytes_mask(6 * n), p);
        alignas(64) static const uint8_t idx[64] = {
            0,  1,  2,  0, 3,  4,  5,  0, 6,  7,  8,  0, 9,  10, 11, 0, 12, 13, 14, 0, 15, 16, 17, 0,
            18, 19, 20, 0, 21, 22, 23, 0, 24, 25, 26, 0, 27, 28, 29, 0, 30, 31, 32, 0, 33, 34, 35, 0,
            36, 37, 38, 0, 39, 40, 41, 0, 42, 43, 44, 0, 45, 46, 47, 0};
        return _mm512_maskz_permutexvar_epi8(__mmask64(0x7777777777777777ull), _mm512_load_si512(idx), raw);
    }
}

// Prefetch distance per row stream. At 4096 × 14336 (median of 3): 768 B 2097 µs, 2 KB 1370, 4 KB
// 1250–1262, 8 KB 1599 (see int_group_avx512.cpp for why far-ahead prefetch pays on this machine).
constexpr int64_t kPrefetchBytes = 4096;

template <int M4, int E>
void gemv_rows(const TritplaneView& w, const TritplaneAct& a, int64_t r0, int64_t r1, float* y) {
    constexpr int V = M4 + 1;
    const int64_t G = w.ngroups, nfull = G / 8, rem = G % 8, sb_bytes = 16 * w.nb;
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = w.trits + r * w.row_bytes;
        const uint16_t* sc = w.scales + r * 2 * G;
        __m512 out = _mm512_setzero_ps();
        for (int64_t s = 0; s < nfull; ++s) {
            const uint8_t* p = row + s * sb_bytes;
            const int8_t* xs = a.xexp + s * V * 320;
            __m512i acc[5] = {_mm512_loadu_si512(a.zinit + 16 * s), _mm512_setzero_si512(), _mm512_setzero_si512(),
                              _mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma GCC unroll 16
            for (int v = 0; v < M4; ++v) {
                _mm_prefetch(reinterpret_cast<const char*>(p + 64 * v + kPrefetchBytes), _MM_HINT_T0);
                digits5(_mm512_loadu_si512(p + 64 * v), xs + v * 320, acc);
            }
            digits5(load_extras<E>(p + 64 * M4, 8), xs + M4 * 320, acc);
            const __m512i sum = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3])), acc[4]);
            const __m512 scv = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + 16 * s))),
                                             _mm512_loadu_ps(a.dexp + 16 * s));
            out = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scv, out);
        }
        if (rem) {
            const int64_t s = nfull, n = rem;
            const uint8_t* p = row + s * sb_bytes;
            const int8_t* xs = a.xexp + s * V * 320;
            __m512i acc[5] = {_mm512_loadu_si512(a.zinit + 16 * s), _mm512_setzero_si512(), _mm512_setzero_si512(),
                              _mm512_setzero_si512(), _mm512_setzero_si512()};
            const __mmask64 mb = bytes_mask(8 * n);
            for (int v = 0; v < M4; ++v) digits5(_mm512_maskz_loadu_epi8(mb, p + 8 * n * v), xs + v * 320, acc);
            digits5(load_extras<E>(p + 8 * n * M4, n), xs + M4 * 320, acc);
            const __m512i sum = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3])), acc[4]);
            const __m512 scv = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(__mmask16((1u << (2 * n)) - 1), sc + 16 * s)),
                                             _mm512_loadu_ps(a.dexp + 16 * s));
            out = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scv, out);
        }
        alignas(64) float o[16];
        _mm512_store_ps(o, out);
        y[r] = tritplane_reduce16(o);
    }
}

}  // namespace

void tritplane_gemv_rows_avx512(const TritplaneView& w, const TritplaneAct& a, int64_t r0, int64_t r1, float* y) {
    switch (w.group) {
        case 32: return gemv_rows<1, 3>(w, a, r0, r1, y);
        case 64: return gemv_rows<3, 1>(w, a, r0, r1, y);
        case 128: return gemv_rows<6, 2>(w, a, r0, r1, y);
        default: return gemv_rows<12, 4>(w, a, r0, r1, y);
    }
}

// ---- block dequantization (prefill GEMM) ---------------------------------------------------------

void tritplane_dequant_block_avx512(const TritplaneView& w, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float* out) {
    const TritplaneGeometry geo(w.group);
    const int g = geo.g, M = geo.M, M4 = M / 4;
    const int64_t G = w.ngroups, end = c0 + nc;
    alignas(64) uint8_t u[2][256 + 64];
    alignas(64) uint8_t codes[256 + 64];
    alignas(64) uint8_t main_bytes[64];
    // Trits of the extra bytes: (digit-array index, trit) pairs, the same for every segment.
    int ex_trit[5 * 4], ex_digit[5 * 4], nex = 0;
    for (int q = 0; q < geo.E; ++q)
        for (int k = 0; k < 5; ++k)
            if (const int i = geo.trit_at(M + q, k); i >= 0) {
                ex_trit[nex] = i;
                ex_digit[nex] = q * 5 + k;
                ++nex;
            }
    const __m512i one = _mm512_set1_epi8(1), two = _mm512_set1_epi8(2);
    const __m512i t86 = _mm512_set1_epi8(char(86)), t171 = _mm512_set1_epi8(char(171));
    const __mmask64 mmain = bytes_mask(M);
    for (int64_t r = r0; r < r0 + nr; ++r) {
        const uint8_t* row = w.trits + r * w.row_bytes;
        const uint16_t* sc = w.scales + r * 2 * G;
        for (int64_t j = c0 / g; j * g < end; ++j) {
            const int64_t s = j / 8, n = std::min<int64_t>(8, G - 8 * s);
            const uint8_t* p = row + s * 16 * w.nb;
            for (int pl = 0; pl < 2; ++pl) {
                const int64_t L = 2 * (j % 8) + pl;
                for (int v = 0; v < M4; ++v) std::memcpy(main_bytes + 4 * v, p + 8 * n * v + 4 * L, 4);
                __m512i m = _mm512_maskz_loadu_epi8(mmain, main_bytes);
                for (int k = 0; k < 5; ++k) {
                    if (k) m = _mm512_add_epi8(_mm512_add_epi8(m, m), m);
                    const __mmask64 k1 = _mm512_cmpge_epu8_mask(m, t86), k2 = _mm512_cmpge_epu8_mask(m, t171);
                    _mm512_storeu_si512(u[pl] + M * k, _mm512_mask_mov_epi8(_mm512_maskz_mov_epi8(k1, one), k2, two));
                }
                const uint8_t* ex = p + 8 * n * M4 + L * geo.E;
                uint8_t exd[20];
                for (int q = 0; q < geo.E; ++q) {
                    unsigned mm = ex[q];
                    for (int k = 0; k < 5; ++k) {
                        exd[q * 5 + k] = uint8_t((mm * 3u) >> 8);
                        mm = (mm * 3u) & 0xFFu;
                    }
                }
                for (int e = 0; e < nex; ++e) u[pl][ex_trit[e]] = exd[ex_digit[e]];
            }
            // code = 3·u1 + u2 ∈ 0..8 indexes the group's 9 levels, each computed like the reference.
            const float a1 = _cvtsh_ss(sc[2 * j]), a2 = _cvtsh_ss(sc[2 * j + 1]);
            alignas(64) float lv[16] = {};
            for (int c = 0; c < 9; ++c) lv[c] = a1 * float(c / 3 - 1) + a2 * float(c % 3 - 1);
            const __m512 table = _mm512_load_ps(lv);
            for (int i = 0; i < g; i += 64) {
                const __m512i u1 = _mm512_loadu_si512(u[0] + i), u2 = _mm512_loadu_si512(u[1] + i);
                _mm512_storeu_si512(codes + i, _mm512_add_epi8(_mm512_add_epi8(_mm512_add_epi8(u1, u1), u1), u2));
            }
            const int64_t lo = std::max(c0, j * g), hi = std::min(end, (j + 1) * g);
            float* o = out + (r - r0) * nc - c0;  // o[c] for column c
            for (int64_t c = lo; c < hi; c += 16) {
                const int64_t cnt = std::min<int64_t>(16, hi - c);
                const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + (c - j * g))));
                _mm512_mask_storeu_ps(o + c, __mmask16((1u << cnt) - 1), _mm512_permutexvar_ps(idx, table));
            }
        }
    }
}

// ---- PTQTP topology step ------------------------------------------------------------------------------

int64_t tritplane_topology_avx512(const double* w, int64_t n, double a1, double a2, int8_t* t1, int8_t* t2) {
    static constexpr int8_t kPair1[9] = {0, 1, -1, 0, 0, 1, 1, -1, -1};
    static constexpr int8_t kPair2[9] = {0, 0, 0, 1, -1, 1, -1, 1, -1};
    __m512d level[9];
    for (int c = 0; c < 9; ++c) level[c] = _mm512_set1_pd(double(kPair1[c]) * a1 + double(kPair2[c]) * a2);
    // Codes 0..8 → trits, as bytes of a table indexed by vpermb (codes in the low byte of each 64-bit lane).
    const __m128i p1 = _mm_setr_epi8(0, 1, -1, 0, 0, 1, 1, -1, -1, 0, 0, 0, 0, 0, 0, 0);
    const __m128i p2 = _mm_setr_epi8(0, 0, 0, 1, -1, 1, -1, 1, -1, 0, 0, 0, 0, 0, 0, 0);
    int64_t changed = 0;
    for (int64_t i = 0; i < n; i += 8) {
        const __mmask8 m = n - i >= 8 ? __mmask8(0xFF) : __mmask8((1u << (n - i)) - 1);
        const __m512d x = _mm512_maskz_loadu_pd(m, w + i);
        __m512d d = _mm512_sub_pd(x, level[0]);
        __m512d best = _mm512_mul_pd(d, d);
        __m512i code = _mm512_setzero_si512();
        for (int c = 1; c < 9; ++c) {
            d = _mm512_sub_pd(x, level[c]);
            const __m512d e = _mm512_mul_pd(d, d);
            const __mmask8 lt = _mm512_cmp_pd_mask(e, best, _CMP_LT_OQ);
            best = _mm512_mask_mov_pd(best, lt, e);
            code = _mm512_mask_mov_epi64(code, lt, _mm512_set1_epi64(c));
        }
        const __m128i c8 = _mm512_cvtepi64_epi8(code);
        const __m128i n1 = _mm_shuffle_epi8(p1, c8), n2 = _mm_shuffle_epi8(p2, c8);
        const __m128i o1 = _mm_maskz_loadu_epi8(m, t1 + i), o2 = _mm_maskz_loadu_epi8(m, t2 + i);
        const __mmask16 diff = _mm_mask_cmpneq_epi8_mask(m, n1, o1) | _mm_mask_cmpneq_epi8_mask(m, n2, o2);
        changed += __builtin_popcount(unsigned(diff));
        _mm_mask_storeu_epi8(t1 + i, m, n1);
        _mm_mask_storeu_epi8(t2 + i, m, n2);
    }
    return changed;
}

}  // namespace planeq::cpu
