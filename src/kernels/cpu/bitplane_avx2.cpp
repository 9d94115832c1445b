// AVX2 bitplane GEMV (int8 bit-serial): per 32 columns and plane, the 32 plane bits become 32 byte masks
// (vpshufb broadcast + AND with the bit + compare), select the int8 activations, and vpmaddubsw (u8 ones ·
// s8, pairs ≤ 254: never saturates) + vpmaddwd with ones sum them into 8 int32 lanes. The group's plane
// sums are scaled by c_m·d_j at the group's end, as in the AVX-512 kernel.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/cpu/bitplane_kernels.hpp"

namespace planeq::cpu {

namespace {

inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// 32 bits → 32 bytes, 0xFF where the bit is set.
inline __m256i expand_bits(uint32_t bits) {
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)),
                                          _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                            0x0101010101010101, 0x0000000000000000));
    const __m256i sel = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel);
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline float bf16(uint16_t h) {
    const uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

template <int K>
void rows(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y) {
    const int64_t ng = w.ngroups, g = w.group, rb = w.row_bytes(), n = ng * (K + 1);
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = w.planes + r * rb;
        const uint16_t* cf = w.coefs + r * n;
        __m256 acc = _mm256_setzero_ps();
        float c0 = 0.0f;
        for (int64_t j = 0; j < ng; ++j) {
            __m256i s[K];
            for (int m = 0; m < K; ++m) s[m] = _mm256_setzero_si256();
            for (int64_t col = j * g; col < (j + 1) * g; col += 32) {
                const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + col));
                const int64_t t = col / 64;
                // 32-bit half (col % 64 / 32) of plane word m of chunk t; a 32-column last chunk is a u32.
                const uint8_t* base = row + 8 * K * t + (64 * t + 64 <= w.cols ? 4 * (col % 64 / 32) : 0);
                const int64_t stride = 64 * t + 64 <= w.cols ? 8 : 4;
                for (int m = 0; m < K; ++m) {
                    const __m256i sel = _mm256_and_si256(expand_bits(load_u32(base + stride * m)), xv);
                    s[m] = _mm256_add_epi32(s[m], _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, sel), ones16));
                }
            }
            const float d = a.d[j];
            for (int m = 0; m < K; ++m)
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[m]), _mm256_set1_ps(bf16(cf[j * (K + 1) + m + 1]) * d), acc);
            c0 += bf16(cf[j * (K + 1)]) * d * float(a.sx[j]);
        }
        y[r] = hsum(acc) + c0;
    }
}

}  // namespace

void bitplane_gemv_rows_avx2(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y) {
    switch (w.k) {
        case 2: return rows<2>(w, a, r0, r1, y);
        case 3: return rows<3>(w, a, r0, r1, y);
        default: return rows<4>(w, a, r0, r1, y);
    }
}

}  // namespace planeq::cpu
