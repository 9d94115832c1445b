// AVX2 int-group GEMV: int8 activations, vpmaddubsw (u8 codes × s8 activations → s16 pairs, at most
// 2·15·127 = 3810, so never saturating) and vpmaddwd with ones to int32. Works in 32-column halves:
//   4-bit chunk (128 columns, 64 bytes = two ymm): AND 0x0F gives columns 0-31 and 32-63, shift right 4
//          and AND columns 64-95 and 96-127.
//   2-bit chunk (256 columns, 64 bytes): shift right 2k and AND 0x03 gives columns 64k .. 64k + 63.
//   3-bit: plus the high-bit plane expanded bit → byte (vpshufb, AND with the bit, compare).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/int_group_kernels.hpp"

namespace planeq::cpu {

namespace {

inline uint64_t load_u64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

// 32 bits → 32 bytes, 4 where the bit is set (the high bit of a 3-bit code).
inline __m256i expand_bits(uint32_t bits) {
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)),
                                          _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                            0x0101010101010101, 0x0000000000000000));
    const __m256i sel = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel), _mm256_set1_epi8(4));
}

// Codes of 32-column block K (columns 32K .. 32K + 31) of a full chunk whose main plane is r[0] (bytes
// 0-31) and r[1] (bytes 32-63).
template <int B, int K>
inline __m256i extract(const __m256i* r, const uint8_t* chunk) {
    if constexpr (B == 4) {  // W = 128: byte j holds columns j and j + 64
        const __m256i v = K < 2 ? r[K] : _mm256_srli_epi16(r[K - 2], 4);
        return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
    } else {  // W = 256: byte j holds columns j + 64k, k = 0..3
        const __m256i v = K < 2 ? r[K % 2] : _mm256_srli_epi16(r[K % 2], 2 * (K / 2));
        __m256i q = _mm256_and_si256(v, _mm256_set1_epi8(0x03));
        if constexpr (B == 3) q = _mm256_or_si256(q, expand_bits(load_u32(chunk + 64 + 4 * K)));
        return q;
    }
}

inline __m256i dot32(__m256i q, __m256i xv) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), _mm256_set1_epi16(1));
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline __m256 zero_term(const uint16_t* s, const uint8_t* z, const float* zsum, int64_t ng, float& tail) {
    __m256 acc = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= ng; j += 8) {
        const __m256 sv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + j)));
        const __m256 zv = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(z + j))));
        acc = _mm256_fmadd_ps(_mm256_mul_ps(sv, zv), _mm256_loadu_ps(zsum + j), acc);
    }
    tail = 0.0f;
    for (; j < ng; ++j) tail += half_to_float(s[j]) * float(z[j]) * zsum[j];
    return acc;
}

// NR rows. Per 32-column block k of group j: act32 scales the block's dot by d_k into the group sum;
// act-g keeps the dot in int32 to the group's end.
template <int B, bool ACT32, int NR>
struct Rows {
    static constexpr int BPC = B == 4 ? 4 : 8;  // 32-column blocks per full chunk
    static constexpr int64_t BYTES = 32 * BPC * B / 8;
    const IntGroupView& w;
    const Int8Act& a;
    const uint8_t* row[NR];
    const uint16_t* s[NR];
    __m256 acc[NR], fg[NR];
    __m256i ig[NR];

    Rows(const IntGroupView& w_, const Int8Act& a_, int64_t r) : w(w_), a(a_) {
        for (int t = 0; t < NR; ++t) {
            row[t] = w.qweight + (r + t) * w.row_bytes();
            s[t] = w.scales + (r + t) * w.ngroups;
            acc[t] = fg[t] = _mm256_setzero_ps();
            ig[t] = _mm256_setzero_si256();
        }
    }

    // Adds block k (codes q[t]) and closes the group when k is its last block.
    inline void add_block(int64_t k, const __m256i* q) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + 32 * k));
        const int64_t g = w.group;
        const bool group_end = ((k + 1) * 32) % g == 0;
        const int64_t j = k * 32 / g;
        if constexpr (ACT32) {
            const __m256 dv = _mm256_set1_ps(a.d[k]);
            for (int t = 0; t < NR; ++t) fg[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(q[t], xv)), dv, fg[t]);
            if (group_end)
                for (int t = 0; t < NR; ++t) {
                    acc[t] = _mm256_fmadd_ps(fg[t], _mm256_set1_ps(half_to_float(s[t][j])), acc[t]);
                    fg[t] = _mm256_setzero_ps();
                }
        } else {
            for (int t = 0; t < NR; ++t) ig[t] = _mm256_add_epi32(ig[t], dot32(q[t], xv));
            if (group_end)
                for (int t = 0; t < NR; ++t) {
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ig[t]), _mm256_set1_ps(half_to_float(s[t][j]) * a.d[j]),
                                             acc[t]);
                    ig[t] = _mm256_setzero_si256();
                }
        }
    }

    template <int K>
    inline void chunk_block(int64_t c, const __m256i (*raw)[2]) {
        __m256i q[NR];
        for (int t = 0; t < NR; ++t) q[t] = extract<B, K>(raw[t], row[t] + c * BYTES);
        add_block(c * BPC + K, q);
    }

    void run(int64_t r, float* y) {
        const int64_t W = 32 * BPC, nfull = w.cols / W, tail = w.cols % W;
        for (int64_t c = 0; c < nfull; ++c) {
            __m256i raw[NR][2];
            for (int t = 0; t < NR; ++t) {
                raw[t][0] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[t] + c * BYTES));
                raw[t][1] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[t] + c * BYTES + 32));
            }
            chunk_block<0>(c, raw);
            chunk_block<1>(c, raw);
            chunk_block<2>(c, raw);
            chunk_block<3>(c, raw);
            if constexpr (BPC == 8) {
                chunk_block<4>(c, raw);
                chunk_block<5>(c, raw);
                chunk_block<6>(c, raw);
                chunk_block<7>(c, raw);
            }
        }
        if (tail) {  // a narrower last chunk: unpack to natural order, then 32 columns at a time
            alignas(32) uint8_t buf[NR][256];
            for (int t = 0; t < NR; ++t) int_group_unpack_chunk(row[t] + nfull * BYTES, B, tail, buf[t]);
            for (int64_t m = 0; m * 32 < tail; ++m) {
                __m256i q[NR];
                for (int t = 0; t < NR; ++t) q[t] = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf[t] + 32 * m));
                add_block(nfull * BPC + m, q);
            }
        }
        for (int t = 0; t < NR; ++t) {
            float rest;
            const __m256 zt = zero_term(s[t], w.zeros + (r + t) * w.ngroups, a.zsum, w.ngroups, rest);
            y[r + t] = hsum(_mm256_sub_ps(acc[t], zt)) - rest;
        }
    }
};

template <int B, bool ACT32, int NR>
void rows(const IntGroupView& w, const Int8Act& a, int64_t r, float* y) {
    Rows<B, ACT32, NR>(w, a, r).run(r, y);
}

template <int B, bool ACT32>
void run_rows(const IntGroupView& w, const Int8Act& a, int64_t r0, int64_t r1, float* y) {
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) rows<B, ACT32, 2>(w, a, r, y);
    for (; r < r1; ++r) rows<B, ACT32, 1>(w, a, r, y);
}

}  // namespace

void int_group_quantize_act_avx2(const float* x, int64_t cols, int block, int8_t* xq, float* d, int32_t* sx) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t k = 0; k * block < cols; ++k) {
        const float* xb = x + k * block;
        __m256 mx = _mm256_setzero_ps();
        for (int i = 0; i < block; i += 8) mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(xb + i), abs_mask));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        const __m256 idv = _mm256_set1_ps(id);
        __m256i sum = _mm256_setzero_si256();
        for (int i = 0; i < block; i += 8) {
            __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i), idv));  // round half to even
            v = _mm256_max_epi32(_mm256_min_epi32(v, _mm256_set1_epi32(127)), _mm256_set1_epi32(-127));
            sum = _mm256_add_epi32(sum, v);
            const __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            _mm_storel_epi64(reinterpret_cast<__m128i*>(xq + k * block + i), _mm_packs_epi16(p16, p16));
        }
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        d[k] = amax / 127.0f;
        sx[k] = _mm_cvtsi128_si32(s4);
    }
}

void int_group_gemv_rows_avx2(const IntGroupView& w, const Int8Act& a, int64_t r0, int64_t r1, float* y) {
    const bool act32 = a.block == 32;
    switch (w.bits) {
        case 2: return act32 ? run_rows<2, true>(w, a, r0, r1, y) : run_rows<2, false>(w, a, r0, r1, y);
        case 3: return act32 ? run_rows<3, true>(w, a, r0, r1, y) : run_rows<3, false>(w, a, r0, r1, y);
        default: return act32 ? run_rows<4, true>(w, a, r0, r1, y) : run_rows<4, false>(w, a, r0, r1, y);
    }
}

}  // namespace planeq::cpu
