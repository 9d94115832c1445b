// AVX2 tritplane GEMV: the AVX-512 kernel's order (tritplane_kernels.hpp) in two 256-bit halves
// (segments 0-7 and 8-15 of a superblock). Per 32 stored bytes and digit k:
//     m ← m + m + m;  c1 = (max(m, 86) == m), c2 = (max(m, 171) == m)   (unsigned ≥ by max + compare)
//     u = 0 − c1 − c2 ∈ {0, 1, 2};  s16 += vpmaddubsw(u, xexp)           (≤ 2·2·127 per pair, no saturation)
// and after the five digits of a vector vpmaddwd(s16, 1) into the int32 segment lanes (≤ 5·508 in int16).
// A partial superblock is copied into a zero-padded full-size buffer first.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/tritplane_kernels.hpp"

namespace planeq::cpu {

namespace {

#define PLANEQ_AI inline __attribute__((always_inline))

// One 64-byte vector (two halves) through its five digits into the int32 accumulators acc[0..1].
PLANEQ_AI void digits5(const uint8_t* p, const int8_t* x, __m256i* acc) {
    const __m256i t86 = _mm256_set1_epi8(char(86)), t171 = _mm256_set1_epi8(char(171)), zero = _mm256_setzero_si256();
    __m256i m[2] = {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32))};
    __m256i s16[2] = {zero, zero};
#pragma GCC unroll 5
    for (int k = 0; k < 5; ++k)
        for (int h = 0; h < 2; ++h) {
            if (k) m[h] = _mm256_add_epi8(_mm256_add_epi8(m[h], m[h]), m[h]);
            const __m256i c1 = _mm256_cmpeq_epi8(_mm256_max_epu8(m[h], t86), m[h]);
            const __m256i c2 = _mm256_cmpeq_epi8(_mm256_max_epu8(m[h], t171), m[h]);
            const __m256i u = _mm256_sub_epi8(_mm256_sub_epi8(zero, c1), c2);
            const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 64 * k + 32 * h));
            s16[h] = _mm256_add_epi16(s16[h], _mm256_maddubs_epi16(u, xv));
        }
    const __m256i ones = _mm256_set1_epi16(1);
    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(s16[0], ones));
    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(s16[1], ones));
}

// The extra bytes of a full superblock widened to one 32-bit lane per segment (64 bytes into buf).
template <int E>
PLANEQ_AI void widen_extras(const uint8_t* p, uint8_t* buf) {
    if constexpr (E == 1) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(buf), _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(buf + 32), _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8))));
    } else if constexpr (E == 2) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(buf), _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(buf + 32), _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))));
    } else if constexpr (E == 4) {
        std::memcpy(buf, p, 64);
    } else {
        for (int L = 0; L < 16; ++L) {
            buf[4 * L] = p[3 * L];
            buf[4 * L + 1] = p[3 * L + 1];
            buf[4 * L + 2] = p[3 * L + 2];
            buf[4 * L + 3] = 0;
        }
    }
}

inline void store_reduce(__m256 lo, __m256 hi, float* y) {
    alignas(32) float o[16];
    _mm256_store_ps(o, lo);
    _mm256_store_ps(o + 8, hi);
    *y = tritplane_reduce16(o);
}

template <int M4, int E>
void gemv_rows(const TritplaneView& w, const TritplaneAct& a, int64_t r0, int64_t r1, float* y) {
    constexpr int V = M4 + 1;
    const int64_t G = w.ngroups, nsb = w.nsb(), sb_bytes = 16 * w.nb;
    alignas(64) uint8_t ex[64];
    alignas(64) uint8_t part[64 * 16];  // a partial superblock, zero padded to the full layout
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = w.trits + r * w.row_bytes;
        const uint16_t* sc = w.scales + r * 2 * G;
        __m256 out[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t s = 0; s < nsb; ++s) {
            const int64_t n = std::min<int64_t>(8, G - 8 * s);
            const uint8_t* p = row + s * sb_bytes;
            alignas(32) uint16_t sh[16] = {};
            if (n < 8) {
                std::memset(part, 0, sizeof part);
                for (int v = 0; v < M4; ++v) std::memcpy(part + 64 * v, p + 8 * n * v, size_t(8 * n));
                std::memcpy(part + 64 * M4, p + 8 * n * M4, size_t(2 * n * E));
                p = part;
                std::memcpy(sh, sc + 16 * s, size_t(2 * n) * 2);
            } else {
                std::memcpy(sh, sc + 16 * s, 32);
            }
            const int8_t* xs = a.xexp + s * V * 320;
            __m256i acc[2] = {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.zinit + 16 * s)),
                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.zinit + 16 * s + 8))};
            for (int v = 0; v < M4; ++v) digits5(p + 64 * v, xs + v * 320, acc);
            widen_extras<E>(p + 64 * M4, ex);
            digits5(ex, xs + M4 * 320, acc);
            for (int h = 0; h < 2; ++h) {
                const __m256 scv = _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(sh + 8 * h))),
                                                 _mm256_loadu_ps(a.dexp + 16 * s + 8 * h));
                out[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[h]), scv, out[h]);
            }
        }
        store_reduce(out[0], out[1], y + r);
    }
}

}  // namespace

void tritplane_gemv_rows_avx2(const TritplaneView& w, const TritplaneAct& a, int64_t r0, int64_t r1, float* y) {
    switch (w.group) {
        case 32: return gemv_rows<1, 3>(w, a, r0, r1, y);
        case 64: return gemv_rows<3, 1>(w, a, r0, r1, y);
        case 128: return gemv_rows<6, 2>(w, a, r0, r1, y);
        default: return gemv_rows<12, 4>(w, a, r0, r1, y);
    }
}

}  // namespace planeq::cpu
