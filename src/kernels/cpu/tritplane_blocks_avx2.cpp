// AVX2 (+F16C/FMA) GEMV of the tritplane 16-row block layout in P5 bytes (tritplane_kernels.hpp, "row blocks"),
// for CPUs without AVX-512 (no vpdpbusd, no 128-entry byte lookups). A 64-byte block vector is two ymm halves,
// rows 0–7 and 8–15, one int32 lane a row, so the activation quad of a digit is one broadcast for all of them.
//
// Per 32 bytes and digit k (P5 in the offset domain t = m − 128, where the spec's m ← 3m mod 256 is t ← 3t):
//     u = 0 − [t > −43] − [t > 42]          (= [m ≥ 86] + [m ≥ 171] ∈ {0, 1, 2}: two compares, two subtractions)
//     s16 += vpmaddubsw(u, quad)            (u ∈ {0, 1, 2} times int8 xq: additions; a pair ≤ 2·2·127 = 508)
//     t ← t + t + t
// Six ALU ops a digit plus two for the recurrence: 39 for 160 trits. The int16 sums of a (group, plane) take
// up to 64 products (64·508 < 2^15) before vpmaddwd widens them to the row's int32 lane: once per group at
// g ≤ 128, twice at g = 256. The float combination is the other variants' (16 f32 sums a row, kept in memory
// here: AVX2 has 16 registers), so every level gives the scalar model's bits.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/tritplane_kernels.hpp"
#include "kernels/cpu/tritplane_reduce_avx2.hpp"
#include "kernels/cpu/group_dispatch.hpp"

namespace planeq::cpu {

namespace {

#define PLANEQ_AI inline __attribute__((always_inline))

constexpr int64_t kPrefetchBytes = 4096;  // as the AVX-512 block kernels
constexpr int kMaxProducts = 64;          // int16 products a sum can take before widening (64 · 508 < 32768)

PLANEQ_AI __m256i bcast_quad(const void* x) {
    int32_t v;
    std::memcpy(&v, x, 4);
    return _mm256_set1_epi32(v);
}

PLANEQ_AI __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// The five digits of 32 P5 bytes against their five activation quads, into the int16 pair sums s16.
// The constants live in registers the compiler cannot see into: with them visible GCC 12 rewrites t > −43 as
// t ≥ −42 and lowers that to min + compare (5 ops a digit where 4 do).
struct Consts {
    __m256i lo, hi, zero, top;
    Consts() : lo(_mm256_set1_epi8(-43)), hi(_mm256_set1_epi8(42)), zero(_mm256_setzero_si256()), top(_mm256_set1_epi8(char(0x80))) {
        __asm__("" : "+x"(lo), "+x"(hi), "+x"(zero), "+x"(top));
    }
};

// The five digits of 32 P5 bytes against N sets of five activation quads, into N int16 pair sums: the main
// bytes have one set; an extra word's lanes can feed two segments (quads zero outside each), and use[n]
// skips a segment the word holds no byte of. One decode for all N.
template <int N>
PLANEQ_AI void digits5(const Consts& c, __m256i m, const __m256i (&quad)[N][5], const bool (&use)[N], __m256i* (&s16)[N]) {
    __m256i t = _mm256_xor_si256(m, c.top);
#pragma GCC unroll 5
    for (int k = 0; k < 5; ++k) {
        if (k) t = _mm256_add_epi8(_mm256_add_epi8(t, t), t);
        const __m256i u = _mm256_sub_epi8(_mm256_sub_epi8(c.zero, _mm256_cmpgt_epi8(t, c.lo)), _mm256_cmpgt_epi8(t, c.hi));
        for (int n = 0; n < N; ++n)
            if (use[n]) *s16[n] = _mm256_add_epi16(*s16[n], _mm256_maddubs_epi16(u, quad[n][k]));
    }
}
PLANEQ_AI __m256i widen(__m256i s16) { return _mm256_madd_epi16(s16, _mm256_set1_epi16(1)); }

template <int G>
void block(const TritBlocks& w, const TritBlockAct& a, int64_t blk, float* y) {
    using Q = TritBlockGeo<G>;
    static_assert(5 * Q::M4 <= kMaxProducts && 5 * Q::W <= kMaxProducts, "a segment's main or extra products fit int16");
    constexpr bool extras_join_main = Q::U == 1 && 5 * (Q::M4 + Q::W) <= kMaxProducts;
    const uint8_t* p = w.bytes.data() + blk * w.block_bytes();
    const Consts c;
    alignas(32) float o[16][16] = {};                     // [lane L][row]
    alignas(32) int32_t seg[Q::S][16];                   // a unit's int32 row sums per segment
    for (int64_t t = 0; t < w.nunits; ++t, p += Q::unit_bytes) {
        for (int64_t l = 0; l < Q::unit_bytes; l += 64)
            _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes + l), _MM_HINT_T0);
        const int32_t* xe = a.xext + t * Q::W * 5 * Q::S;
        // Main vectors: both planes of a group (segments 2h, 2h + 1) meet the same five quads.
        for (int h = 0; h < Q::U; ++h) {
            const int64_t j = t * Q::U + h;
            if (j >= w.ngroups) {
                std::memset(seg[2 * h], 0, sizeof(seg[0]) * 2);
                continue;
            }
            const int8_t* xg = a.xq + j * G;
            __m256i s16[2][2];  // [plane][half]
            for (auto& pl : s16)
                for (auto& v : pl) v = _mm256_setzero_si256();
            for (int v = 0; v < Q::M4; ++v) {
                __m256i quad[1][5];
                for (int k = 0; k < 5; ++k) quad[0][k] = bcast_quad(xg + Q::M * k + 4 * v);
                for (int pl = 0; pl < 2; ++pl)
                    for (int half = 0; half < 2; ++half) {
                        __m256i* acc[1] = {&s16[pl][half]};
                        digits5<1>(c, load32(p + ((2 * h + pl) * Q::M4 + v) * 64 + 32 * half), quad, {true}, acc);
                    }
            }
            __m256i s32[2][2];
            if constexpr (Q::U == 1) {
                // The extra words (activation quads zero outside the segment they are for): into the same int16
                // sums where they fit (g ≤ 128), else into fresh ones widened separately (g = 256).
                __m256i e16[2][2];
                for (int pl = 0; pl < 2; ++pl)
                    for (int half = 0; half < 2; ++half) {
                        s32[pl][half] = extras_join_main ? _mm256_setzero_si256() : widen(s16[pl][half]);
                        e16[pl][half] = extras_join_main ? s16[pl][half] : _mm256_setzero_si256();
                    }
                for (int wd = 0; wd < Q::W; ++wd)
                    for (int half = 0; half < 2; ++half) {
                        __m256i quad[2][5];
                        for (int sg = 0; sg < 2; ++sg)
                            for (int k = 0; k < 5; ++k) quad[sg][k] = _mm256_set1_epi32(xe[(wd * 5 + k) * Q::S + sg]);
                        __m256i* acc[2] = {&e16[0][half], &e16[1][half]};
                        digits5<2>(c, load32(p + (Q::S * Q::M4 + wd) * 64 + 32 * half), quad, {Q::touches(wd, 0), Q::touches(wd, 1)}, acc);
                    }
                for (int pl = 0; pl < 2; ++pl)
                    for (int half = 0; half < 2; ++half) s32[pl][half] = _mm256_add_epi32(s32[pl][half], widen(e16[pl][half]));
            } else {
                for (int pl = 0; pl < 2; ++pl)
                    for (int half = 0; half < 2; ++half) s32[pl][half] = widen(s16[pl][half]);
            }
            for (int pl = 0; pl < 2; ++pl)
                for (int half = 0; half < 2; ++half) s32[pl][half] = _mm256_add_epi32(s32[pl][half], _mm256_set1_epi32(-a.sx[j]));
            for (int pl = 0; pl < 2; ++pl)
                for (int half = 0; half < 2; ++half)
                    _mm256_store_si256(reinterpret_cast<__m256i*>(seg[2 * h + pl] + 8 * half), s32[pl][half]);
        }
        if constexpr (Q::U == 2) {
            // Extra words of two groups (odd E): a lane can feed two segments; added to their int32 sums.
            for (int sg = 0; sg < Q::S; ++sg) {
                if (t * Q::U + sg / 2 >= w.ngroups) break;
                __m256i e16[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
                for (int wd = 0; wd < Q::W; ++wd)
                    if (Q::touches(wd, sg)) {
                        __m256i quad[1][5];
                        for (int k = 0; k < 5; ++k) quad[0][k] = _mm256_set1_epi32(xe[(wd * 5 + k) * Q::S + sg]);
                        for (int half = 0; half < 2; ++half) {
                            __m256i* acc[1] = {&e16[half]};
                            digits5<1>(c, load32(p + (Q::S * Q::M4 + wd) * 64 + 32 * half), quad, {true}, acc);
                        }
                    }
                for (int half = 0; half < 2; ++half) {
                    __m256i* s = reinterpret_cast<__m256i*>(seg[sg] + 8 * half);
                    _mm256_store_si256(s, _mm256_add_epi32(_mm256_load_si256(s), widen(e16[half])));
                }
            }
        }
        // Per (group, plane) one FMA by float(α)·d_j for 8 rows at a time, into lane L = 2·(j mod 8) + plane.
        const uint8_t* sc = p + (Q::S * Q::M4 + Q::W) * 64;
        for (int s = 0; s < Q::S; ++s) {
            const int64_t j = t * Q::U + s / 2;
            if (j >= w.ngroups) break;
            float* out = o[2 * (j % 8) + s % 2];
            for (int half = 0; half < 2; ++half) {
                const __m256 alpha = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + 32 * s + 16 * half)));
                const __m256 scale = _mm256_mul_ps(alpha, _mm256_set1_ps(a.d[j]));
                const __m256 acc = _mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(seg[s] + 8 * half)));
                _mm256_store_ps(out + 8 * half, _mm256_fmadd_ps(acc, scale, _mm256_load_ps(out + 8 * half)));
            }
        }
    }
    tritplane_reduce16_store_avx2(o, 16 * blk, w.rows, y);
}

}  // namespace

void tritplane_gemv_blocks_cmp_avx2(const TritBlocks& w, const TritBlockAct& a, int64_t b0, int64_t b1, float* y) {
    for_each_block(w.group, b0, b1, [&]<int G>(int64_t b) { block<G>(w, a, b, y); });
}

}  // namespace planeq::cpu
