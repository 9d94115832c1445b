// AVX-512 (F/BW/VNNI) GEMV of the int-group 16-row block layout (int_group_kernels.hpp, "Row blocks").
//   y_ρ = Σ_j s_ρj · d_j · Σ_{i∈j} q_ρi · xq_i  −  Σ_j s_ρj · z_ρj · S_j        (S_j = d_j · Σ_{i∈j} xq_i)
// The integer dots are exact; one FMA per group for each of the two terms, for 16 rows at once.
#include <immintrin.h>

#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's AVX-512 headers (see bitplane_avx512.cpp)

#include <algorithm>
#include <cstring>

#include "kernels/cpu/block_prefetch.hpp"
#include "kernels/cpu/group_dispatch.hpp"
#include "kernels/cpu/int_group_kernels.hpp"

namespace planeq::cpu {

namespace {

#define PLANEQ_AI inline __attribute__((always_inline))


PLANEQ_AI __m512i bcast_quad(const int8_t* x) {
    int32_t v;
    std::memcpy(&v, x, 4);
    return _mm512_set1_epi32(v);
}

// Σ over one group of the 16 rows' code · xq dots, in four int32 accumulators (vpdpbusd latency).
template <int B, int G>
PLANEQ_AI __m512i group_dots(const uint8_t* codes, const int8_t* xq) {
    constexpr int64_t QUADS = G / 4;
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);
    const __m512i m2_1 = _mm512_set1_epi8(0x0C), m2_2 = _mm512_set1_epi8(0x30), m2_3 = _mm512_set1_epi8(char(0xC0));
    if constexpr (B == 4) {
        for (int64_t q = 0; q < QUADS; q += 4) {  // two vectors: quads q … q + 3
            const uint8_t* p = codes + q * 32;
            prefetch_block_line(p);
            prefetch_block_line(p + 64);
            const __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 64);
            s0 = _mm512_dpbusd_epi32(s0, _mm512_and_si512(v0, m4), bcast_quad(xq + 4 * q));
            s1 = _mm512_dpbusd_epi32(s1, _mm512_andnot_si512(m4, v0), bcast_quad(xq + 4 * q + 4));  // 16 × code
            s2 = _mm512_dpbusd_epi32(s2, _mm512_and_si512(v1, m4), bcast_quad(xq + 4 * q + 8));
            s3 = _mm512_dpbusd_epi32(s3, _mm512_andnot_si512(m4, v1), bcast_quad(xq + 4 * q + 12));  // 16 × code
        }
    } else {
        const uint8_t* hi = codes + QUADS * 16;
        for (int64_t q = 0; q < QUADS; q += 4) {  // one vector: quads q … q + 3
            const uint8_t* p = codes + q * 16;
            prefetch_block_line(p);
            const __m512i v = _mm512_loadu_si512(p);
            if constexpr (B == 2) {  // fields masked in place (no shifts): s1..s3 count 4, 16, 64 × code
                s0 = _mm512_dpbusd_epi32(s0, _mm512_and_si512(v, m2), bcast_quad(xq + 4 * q));
                s1 = _mm512_dpbusd_epi32(s1, _mm512_and_si512(v, m2_1), bcast_quad(xq + 4 * q + 4));  // 4 × code
                s2 = _mm512_dpbusd_epi32(s2, _mm512_and_si512(v, m2_2), bcast_quad(xq + 4 * q + 8));  // 16 × code
                s3 = _mm512_dpbusd_epi32(s3, _mm512_and_si512(v, m2_3), bcast_quad(xq + 4 * q + 12));  // 64 × code
            } else {
                s0 = _mm512_dpbusd_epi32(s0, _mm512_and_si512(v, m2), bcast_quad(xq + 4 * q));
                s1 = _mm512_dpbusd_epi32(s1, _mm512_and_si512(_mm512_srli_epi16(v, 2), m2), bcast_quad(xq + 4 * q + 4));
                s2 = _mm512_dpbusd_epi32(s2, _mm512_and_si512(_mm512_srli_epi16(v, 4), m2), bcast_quad(xq + 4 * q + 8));
                s3 = _mm512_dpbusd_epi32(s3, _mm512_and_si512(_mm512_srli_epi16(v, 6), m2), bcast_quad(xq + 4 * q + 12));
            }
            if constexpr (B == 3) {  // the high bit counts 4: its plane selects 4 (u8) per set bit
                const __m512i four = _mm512_set1_epi8(4);
                for (int u = 0; u < 4; ++u) {
                    uint64_t word;
                    std::memcpy(&word, hi + (q + u) * 8, 8);
                    const __m512i sel = _mm512_maskz_mov_epi8(_cvtu64_mask64(word), four);
                    if (u == 0) s0 = _mm512_dpbusd_epi32(s0, sel, bcast_quad(xq + 4 * q));
                    if (u == 1) s1 = _mm512_dpbusd_epi32(s1, sel, bcast_quad(xq + 4 * q + 4));
                    if (u == 2) s2 = _mm512_dpbusd_epi32(s2, sel, bcast_quad(xq + 4 * q + 8));
                    if (u == 3) s3 = _mm512_dpbusd_epi32(s3, sel, bcast_quad(xq + 4 * q + 12));
                }
            }
        }
    }
    // The in-place fields were multiples of 16 (int4 high nibble) or 4, 16, 64 (int2): exact shifts back.
    if constexpr (B == 4) {
        s1 = _mm512_srai_epi32(s1, 4);
        s3 = _mm512_srai_epi32(s3, 4);
    } else if constexpr (B == 2) {
        s1 = _mm512_srai_epi32(s1, 2);
        s2 = _mm512_srai_epi32(s2, 4);
        s3 = _mm512_srai_epi32(s3, 6);
    }
    return _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3));
}

template <int B, int G>
void block(const IntBlocks& w, const Int8Act& a, int64_t blk, float* y) {
    const uint8_t* base = w.bytes.data() + blk * w.block_bytes();
    const uint8_t* params = base + w.code_bytes();
    const int64_t gcb = w.group_code_bytes();
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = 0; j < w.ngroups; ++j) {
        const __m512i dot = group_dots<B, G>(base + j * gcb, a.xq + j * G);
        const uint8_t* pj = params + j * 48;
        const __m512 s = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pj)));
        const __m512 z = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pj + 32))));
        acc = _mm512_fmadd_ps(_mm512_mul_ps(s, _mm512_set1_ps(a.d[j])), _mm512_cvtepi32_ps(dot), acc);
        acc = _mm512_fnmadd_ps(_mm512_mul_ps(s, z), _mm512_set1_ps(a.zsum[j]), acc);
    }
    const int64_t r0 = 16 * blk, nr = std::min<int64_t>(16, w.rows - r0);
    _mm512_mask_storeu_ps(y + r0, __mmask16((1u << nr) - 1), acc);
}

template <int B>
void run_g(const IntBlocks& w, const Int8Act& a, int64_t b0, int64_t b1, float* y) {
    for_each_block(w.group, b0, b1, [&]<int G>(int64_t b) { block<B, G>(w, a, b, y); });
}

}  // namespace

void int_group_gemv_blocks_avx512(const IntBlocks& w, const Int8Act& a, int64_t b0, int64_t b1, float* y) {
    switch (w.bits) {
        case 2: return run_g<2>(w, a, b0, b1, y);
        case 3: return run_g<3>(w, a, b0, b1, y);
        default: return run_g<4>(w, a, b0, b1, y);
    }
}

}  // namespace planeq::cpu
