// AVX2 (+F16C/FMA) GEMV of the int-group 16-row block layout (int_group_kernels.hpp, "Row blocks"), for CPUs
// without AVX-512: a 64-byte block vector is two ymm halves (rows 0–7, 8–15), one int32 lane a row, so every
// activation quad is one broadcast for 8 rows and the per-group scaling is two FMAs for 8 rows, as in the
// AVX-512 kernel:
//   y_ρ = Σ_j s_ρj · d_j · Σ_{i∈j} q_ρi · xq_i  −  Σ_j s_ρj · z_ρj · S_j        (S_j = d_j · Σ_{i∈j} xq_i)
// Without vpdpbusd the dots are vpmaddubsw (u8 code × s8 xq → int16 pairs, ≤ 2·15·127 = 3810: no saturation)
// summed in int16 and widened by vpmaddwd before they can overflow (kWiden products), then exact int32.
// ALU instructions per 64 weights of a half: int4 and, shift, and, 2 vpmaddubsw, 2 adds (+ widening): ~7.5,
// where the row kernel (int_group_avx2.cpp) spends ~20.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/int_group_kernels.hpp"
#include "kernels/cpu/group_dispatch.hpp"

namespace planeq::cpu {

namespace {

#define PLANEQ_AI inline __attribute__((always_inline))

constexpr int64_t kPrefetchBytes = 4096;  // as the AVX-512 block kernel

PLANEQ_AI __m256i bcast_quad(const int8_t* x) {
    int32_t v;
    std::memcpy(&v, x, 4);
    return _mm256_set1_epi32(v);
}
PLANEQ_AI __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
PLANEQ_AI __m256i widen(__m256i s16) { return _mm256_madd_epi16(s16, _mm256_set1_epi16(1)); }

// 32 bits (lane bytes 0–31 of a half) → 32 bytes, 4 where the bit is set (the high bit of a 3-bit code).
PLANEQ_AI __m256i expand_bits4(uint32_t bits) {
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)),
                                          _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
    const __m256i sel = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel), _mm256_set1_epi8(4));
}

// Σ over one group of the 16 rows' code · xq dots: out[0] rows 0–7, out[1] rows 8–15 (int32 lanes).
template <int B, int G>
PLANEQ_AI void group_dots(const uint8_t* codes, const int8_t* xq, __m256i* out) {
    constexpr int64_t QUADS = G / 4;
    // Products an int16 pair sum may take: 32767 / (2 · max code · 127).
    constexpr int kWiden = B == 4 ? 8 : B == 3 ? 18 : 43;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    __m256i s32[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    __m256i s16[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    int taken = 0;  // products in s16 (the same for both halves)
    auto add = [&](int h, __m256i codes8, __m256i quad) { s16[h] = _mm256_add_epi16(s16[h], _mm256_maddubs_epi16(codes8, quad)); };
    auto flush_if = [&](int next) {
        if (taken + next > kWiden) {
            for (int h = 0; h < 2; ++h) {
                s32[h] = _mm256_add_epi32(s32[h], widen(s16[h]));
                s16[h] = _mm256_setzero_si256();
            }
            taken = 0;
        }
        taken += next;
    };
    if constexpr (B == 4) {
        for (int64_t q = 0; q < QUADS; q += 2) {  // one vector: quads q (low nibbles), q + 1 (high)
            const uint8_t* p = codes + q * 32;
            _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
            const __m256i x0 = bcast_quad(xq + 4 * q), x1 = bcast_quad(xq + 4 * q + 4);
            flush_if(2);
            for (int h = 0; h < 2; ++h) {
                const __m256i v = load32(p + 32 * h);
                add(h, _mm256_and_si256(v, m4), x0);
                add(h, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4), x1);
            }
        }
    } else {
        const uint8_t* hi = codes + QUADS * 16;
        for (int64_t q = 0; q < QUADS; q += 4) {  // one vector: quads q … q + 3 in the 2-bit fields
            const uint8_t* p = codes + q * 16;
            _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
            __m256i x[4];
            for (int u = 0; u < 4; ++u) x[u] = bcast_quad(xq + 4 * (q + u));
            flush_if(4);
            for (int h = 0; h < 2; ++h) {
                const __m256i v = load32(p + 32 * h);
                for (int u = 0; u < 4; ++u) {
                    __m256i c = _mm256_and_si256(u ? _mm256_srli_epi16(v, 2 * u) : v, m2);
                    if constexpr (B == 3) {  // the high-bit plane: bit (lane byte) of quad q + u, counting 4
                        uint32_t bits;
                        std::memcpy(&bits, hi + (q + u) * 8 + 4 * h, 4);
                        c = _mm256_or_si256(c, expand_bits4(bits));
                    }
                    add(h, c, x[u]);
                }
            }
        }
    }
    for (int h = 0; h < 2; ++h) out[h] = _mm256_add_epi32(s32[h], widen(s16[h]));
}

template <int B, int G>
void block(const IntBlocks& w, const Int8Act& a, int64_t blk, float* y) {
    const uint8_t* base = w.bytes.data() + blk * w.block_bytes();
    const uint8_t* params = base + w.code_bytes();
    const int64_t gcb = w.group_code_bytes();
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t j = 0; j < w.ngroups; ++j) {
        __m256i dot[2];
        group_dots<B, G>(base + j * gcb, a.xq + j * G, dot);
        const uint8_t* pj = params + j * 48;
        for (int h = 0; h < 2; ++h) {
            const __m256 s = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pj + 16 * h)));
            const __m256 z = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(pj + 32 + 8 * h))));
            acc[h] = _mm256_fmadd_ps(_mm256_mul_ps(s, _mm256_set1_ps(a.d[j])), _mm256_cvtepi32_ps(dot[h]), acc[h]);
            acc[h] = _mm256_fnmadd_ps(_mm256_mul_ps(s, z), _mm256_set1_ps(a.zsum[j]), acc[h]);
        }
    }
    alignas(32) float r[16];
    _mm256_store_ps(r, acc[0]);
    _mm256_store_ps(r + 8, acc[1]);
    const int64_t r0 = 16 * blk, nr = std::min<int64_t>(16, w.rows - r0);
    std::memcpy(y + r0, r, size_t(nr) * sizeof(float));
}

template <int B>
void run_g(const IntBlocks& w, const Int8Act& a, int64_t b0, int64_t b1, float* y) {
    for_each_block(w.group, b0, b1, [&]<int G>(int64_t b) { block<B, G>(w, a, b, y); });
}

}  // namespace

void int_group_gemv_blocks_avx2(const IntBlocks& w, const Int8Act& a, int64_t b0, int64_t b1, float* y) {
    switch (w.bits) {
        case 2: return run_g<2>(w, a, b0, b1, y);
        case 3: return run_g<3>(w, a, b0, b1, y);
        default: return run_g<4>(w, a, b0, b1, y);
    }
}

}  // namespace planeq::cpu
