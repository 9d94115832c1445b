// AVX-512 (F/BW/VNNI/VBMI/F16C) GEMV of the tritplane 16-row block layout (tritplane_kernels.hpp, "row
// blocks"). Per 64-byte vector (16 rows × 4 P5 bytes = 20 trits of each row) the five digits are decoded
// (Cmp or Lut) and each meets a broadcast int8 quad in one vpdpbusd: u ∈ {0, 1, 2} times xq, additions
// only. Per (group, plane) the row sums get −Σxq and one FMA by float(α)·d for 16 rows at once.
#include <immintrin.h>

#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's AVX-512 headers (see bitplane_avx512.cpp)

#include <algorithm>
#include <cstring>

#include "kernels/cpu/block_prefetch.hpp"
#include "kernels/cpu/group_dispatch.hpp"
#include "kernels/cpu/tritplane_digits_avx512.hpp"
#include "kernels/cpu/tritplane_kernels.hpp"
#include "kernels/cpu/tritplane_recode.hpp"

namespace planeq::cpu {

namespace {

#define PLANEQ_AI inline __attribute__((always_inline))

PLANEQ_AI __m512i bcast_quad(const void* x) {
    int32_t v;
    std::memcpy(&v, x, 4);
    return _mm512_set1_epi32(v);
}

// Digits by the spec's recurrence (tritplane_digits_avx512.hpp).
struct CmpDecoder {
    static constexpr int kScaleShift[5] = {};
    PLANEQ_AI void decode(__m512i m, __m512i* u) const { p5_digits_cmp_avx512(m, u); }
    PLANEQ_AI void decode_exact(__m512i m, __m512i* u) const { decode(m, u); }
};

struct LutTables {
    alignas(64) uint8_t tab[5][256];
    constexpr LutTables() : tab{} {
        for (unsigned v = 0; v < 256; ++v) {
            unsigned m = v;
            for (int k = 0; k < 5; ++k) {
                tab[k][v] = uint8_t((m * 3u) >> 8);  // the spec's decode (every byte decodes to something)
                m = (m * 3u) & 0xFFu;
            }
        }
    }
};
constexpr LutTables kLut;

struct LutDecoder {
    static constexpr int kScaleShift[5] = {};
    __m512i t[5][4];
    LutDecoder() {
        for (int k = 0; k < 5; ++k)
            for (int q = 0; q < 4; ++q) t[k][q] = _mm512_load_si512(kLut.tab[k] + 64 * q);
    }
    PLANEQ_AI void decode(__m512i v, __m512i* u) const {
        const __mmask64 top = _mm512_movepi8_mask(v);
#pragma GCC unroll 5
        for (int k = 0; k < 5; ++k) {
            const __m512i lo = _mm512_permutex2var_epi8(t[k][0], v, t[k][1]);
            const __m512i hi = _mm512_permutex2var_epi8(t[k][2], v, t[k][3]);
            u[k] = _mm512_mask_blend_epi8(top, lo, hi);
        }
    }
    PLANEQ_AI void decode_exact(__m512i v, __m512i* u) const { decode(v, u); }
};

// Digits of the Lut7 code (tritplane_recode.hpp): digits 0 and 1 are functions of the low 7 bits of c, 2 and 3
// of c >> 1 (vpsrlw moves bit 0 of the next byte into bit 7, which vpermi2b ignores), 4 of avg(c, 0) =
// (c + 1) >> 1. One 128-entry vpermi2b per index, not per digit: the first two tables hold u₀ + 4·u₁ and
// u₂ + 4·u₃, and an AND keeps one digit in place — digits 1 and 3 arrive as 4·u (kScaleShift), which the
// kernel removes exactly from their int32 sums. Three lookups and six ALU ops per 64 bytes instead of five
// lookups and two: on Zen 5 vpermi2b and vpdpbusd share two pipes, the ANDs have four (1.18× L2-hot,
// docs/formats.md).
struct Lut7PairTables {
    alignas(64) uint8_t tab[3][128];
    constexpr Lut7PairTables() : tab{} {
        for (int i = 0; i < 128; ++i) {
            tab[0][i] = uint8_t(kTritLut7.tab[0][i] | kTritLut7.tab[1][i] << 2);
            tab[1][i] = uint8_t(kTritLut7.tab[2][i] | kTritLut7.tab[3][i] << 2);
            tab[2][i] = kTritLut7.tab[4][i];
        }
    }
};
constexpr Lut7PairTables kLut7Pair;

struct Lut7Decoder {
    static constexpr int kScaleShift[5] = {0, 2, 0, 2, 0};  // digit k arrives as u·2^shift
    __m512i t[3][2];
    Lut7Decoder() {
        for (int k = 0; k < 3; ++k)
            for (int q = 0; q < 2; ++q) t[k][q] = _mm512_load_si512(kLut7Pair.tab[k] + 64 * q);
    }
    PLANEQ_AI void decode(__m512i c, __m512i* u) const {
        const __m512i lo = _mm512_set1_epi8(3), hi = _mm512_set1_epi8(12);
        const __m512i d01 = _mm512_permutex2var_epi8(t[0][0], c, t[0][1]);
        const __m512i d23 = _mm512_permutex2var_epi8(t[1][0], _mm512_srli_epi16(c, 1), t[1][1]);
        u[0] = _mm512_and_si512(d01, lo);
        u[1] = _mm512_and_si512(d01, hi);
        u[2] = _mm512_and_si512(d23, lo);
        u[3] = _mm512_and_si512(d23, hi);
        u[4] = _mm512_permutex2var_epi8(t[2][0], _mm512_avg_epu8(c, _mm512_setzero_si512()), t[2][1]);
    }
    // The digits themselves (for the extra words at g32/g64, added after the fold): 4·u >> 2 per 16-bit
    // lane cannot take a bit from the neighbouring byte, whose low two bits are zero after the AND.
    PLANEQ_AI void decode_exact(__m512i c, __m512i* u) const {
        decode(c, u);
        u[1] = _mm512_srli_epi16(u[1], 2);
        u[3] = _mm512_srli_epi16(u[3], 2);
    }
};

template <int G, class Dec>
void block(const TritBlocks& w, const TritBlockAct& a, const Dec& dec, int64_t blk, float* y) {
    using Q = TritBlockGeo<G>;
    const uint8_t* p = w.bytes.data() + blk * w.block_bytes();
    alignas(64) __m512 o[16];
    for (auto& v : o) v = _mm512_setzero_ps();
    for (int64_t t = 0; t < w.nunits; ++t, p += Q::unit_bytes) {
        for (int64_t l = 0; l < Q::unit_bytes; l += 64) prefetch_block_line(p + l);
        __m512i seg[Q::S];
        // Main vectors: digit k of vector v is trits M·k + 4v … M·k + 4v + 3 of the segment's group. The two
        // planes of a group (segments 2h, 2h + 1) meet the same activation quads and go together: ten
        // independent vpdpbusd chains, not five (one plane at a time was bound by their latency).
        const int32_t* xe = a.xext + t * Q::W * 5 * Q::S;
#pragma GCC unroll 2
        for (int h = 0; h < Q::U; ++h) {
            const int64_t j = t * Q::U + h;
            if (j >= w.ngroups) {
                seg[2 * h] = seg[2 * h + 1] = _mm512_setzero_si512();
                continue;
            }
            const int8_t* xg = a.xq + j * G;
            __m512i acc[2][5], u[2][5];
            for (auto& pl : acc)
                for (auto& v : pl) v = _mm512_setzero_si512();
#pragma GCC unroll 12
            for (int v = 0; v < Q::M4; ++v) {
                dec.decode(_mm512_loadu_si512(p + (2 * h * Q::M4 + v) * 64), u[0]);
                dec.decode(_mm512_loadu_si512(p + ((2 * h + 1) * Q::M4 + v) * 64), u[1]);
                for (int k = 0; k < 5; ++k) {
                    const __m512i xq = bcast_quad(xg + Q::M * k + 4 * v);
                    acc[0][k] = _mm512_dpbusd_epi32(acc[0][k], u[0][k], xq);
                    acc[1][k] = _mm512_dpbusd_epi32(acc[1][k], u[1][k], xq);
                }
            }
            if constexpr (Q::U == 1) {
                // Extra words (activation quads zero outside the segment they are for) into the same chains,
                // with the digits as decode() scales them.
#pragma GCC unroll 3
                for (int wd = 0; wd < Q::W; ++wd) {
                    __m512i e[5];
                    dec.decode(_mm512_loadu_si512(p + (Q::S * Q::M4 + wd) * 64), e);
                    for (int k = 0; k < 5; ++k)
                        for (int sg = 0; sg < 2; ++sg)
                            if (Q::touches(wd, sg)) acc[sg][k] = _mm512_dpbusd_epi32(acc[sg][k], e[k], _mm512_set1_epi32(xe[(wd * 5 + k) * Q::S + sg]));
                }
            }
            // Σ over digits of acc[k] / 2^shift (exact: acc[k] is a multiple of it), then −Σxq for t = u − 1.
            for (int pl = 0; pl < 2; ++pl) {
                __m512i sum = _mm512_set1_epi32(-a.sx[j]), scaled = _mm512_setzero_si512();
                for (int k = 0; k < 5; ++k)
                    if (Dec::kScaleShift[k] == 0) sum = _mm512_add_epi32(sum, acc[pl][k]);
                    else scaled = _mm512_add_epi32(scaled, acc[pl][k]);
                static_assert(Dec::kScaleShift[0] == 0 && Dec::kScaleShift[2] == 0 && Dec::kScaleShift[4] == 0 && Dec::kScaleShift[1] == Dec::kScaleShift[3]);
                seg[2 * h + pl] = _mm512_add_epi32(sum, _mm512_srai_epi32(scaled, Dec::kScaleShift[1]));
            }
        }
        if constexpr (Q::U == 2) {
            // Extra words of two groups (odd E): a lane can feed two segments, added after the fold, odd digits
            // into a second accumulator per segment (two chains, not one of up to 15).
            __m512i odd[Q::S];
            for (auto& v : odd) v = _mm512_setzero_si512();
#pragma GCC unroll 3
            for (int wd = 0; wd < Q::W; ++wd) {
                __m512i e[5];
                dec.decode_exact(_mm512_loadu_si512(p + (Q::S * Q::M4 + wd) * 64), e);
                for (int k = 0; k < 5; ++k)
                    for (int sg = 0; sg < Q::S; ++sg)
                        if (Q::touches(wd, sg)) {
                            __m512i& acc = k % 2 ? odd[sg] : seg[sg];
                            acc = _mm512_dpbusd_epi32(acc, e[k], _mm512_set1_epi32(xe[(wd * 5 + k) * Q::S + sg]));
                        }
            }
            for (int sg = 0; sg < Q::S; ++sg) seg[sg] = _mm512_add_epi32(seg[sg], odd[sg]);
        }
        const uint8_t* sc = p + (Q::S * Q::M4 + Q::W) * 64;
        for (int s = 0; s < Q::S; ++s) {
            const int64_t j = t * Q::U + s / 2;
            if (j >= w.ngroups) break;
            const __m512 scale = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + 32 * s))),
                                               _mm512_set1_ps(a.d[j]));
            __m512& out = o[2 * (j % 8) + s % 2];
            out = _mm512_fmadd_ps(_mm512_cvtepi32_ps(seg[s]), scale, out);
        }
    }
    // tritplane_reduce16, 16 rows at a time.
    for (int i = 0; i < 8; ++i) o[i] = _mm512_add_ps(o[i], o[i + 8]);
    for (int i = 0; i < 4; ++i) o[i] = _mm512_add_ps(o[i], o[i + 4]);
    for (int i = 0; i < 2; ++i) o[i] = _mm512_add_ps(o[i], o[i + 2]);
    const int64_t r0 = 16 * blk, nr = std::min<int64_t>(16, w.rows - r0);
    _mm512_mask_storeu_ps(y + r0, __mmask16((1u << nr) - 1), _mm512_add_ps(o[0], o[1]));
}

template <class Dec>
void run(const TritBlocks& w, const TritBlockAct& a, int64_t b0, int64_t b1, float* y) {
    const Dec dec;
    for_each_block(w.group, b0, b1, [&]<int G>(int64_t b) { block<G, Dec>(w, a, dec, b, y); });
}

}  // namespace

void tritplane_gemv_blocks_cmp_avx512(const TritBlocks& w, const TritBlockAct& a, int64_t b0, int64_t b1, float* y) {
    run<CmpDecoder>(w, a, b0, b1, y);
}
void tritplane_gemv_blocks_lut_avx512(const TritBlocks& w, const TritBlockAct& a, int64_t b0, int64_t b1, float* y) {
    run<LutDecoder>(w, a, b0, b1, y);
}
void tritplane_gemv_blocks_lut7_avx512(const TritBlocks& w, const TritBlockAct& a, int64_t b0, int64_t b1, float* y) {
    run<Lut7Decoder>(w, a, b0, b1, y);
}

}  // namespace planeq::cpu
