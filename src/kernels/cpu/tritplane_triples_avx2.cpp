// AVX2 lookup GEMV of the tritplane triple layout (tritplane_kernels.hpp, "triples"): three trits a lookup in
// per-call int16 tables of the activation triples, as bitnet.cpp's TL2 kernel, on our P5 planes repacked at load.
//
// Per triple τ of a group and plane, for 32 rows (one 32-byte index vector holds two triples):
//     i = index nibbles                                 (AND, or shift + AND: 1.5 a triple)
//     L, H = vpshufb(low bytes of table τ, i), vpshufb(high bytes, i)
//     a, b = unpacklo/hi_epi8(L, H)                     (int16 Σ t·xq of rows 0–7, 16–23 / 8–15, 24–31)
//     acc_A += vpsignw(a, sign_A << k); acc_B += vpsignw(b, sign_B << k)
// 11.5 instructions for 96 trits; the two tables are broadcast loads shared by both planes. An int16 lane
// takes a whole group: ⌈g/3⌉·381 ≤ 86·381 = 32766 at g = 256. Then per (group, plane) the int32 row sums
// meet α·d_j in the row kernels' f32 order (lane L = 2·(j mod 8) + plane, tritplane_reduce16): same bits.
#include <immintrin.h>

#include <utility>

#include "kernels/cpu/tritplane_kernels.hpp"
#include "kernels/cpu/tritplane_reduce_avx2.hpp"
#include "kernels/cpu/group_dispatch.hpp"

namespace planeq::cpu {

namespace {

#define PLANEQ_AI inline __attribute__((always_inline))

constexpr int64_t kPrefetchBytes = 4096;

PLANEQ_AI __m256i bcast128(const uint8_t* p) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
PLANEQ_AI __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// Calls f.template operator()<I>() for I = 0 … N − 1, unrolled at compile time.
template <int N, class F>
PLANEQ_AI void unrolled(F&& f) {
    [&]<int... I>(std::integer_sequence<int, I...>) __attribute__((always_inline)) {
        (f.template operator()<I>(), ...);
    }(std::make_integer_sequence<int, N>{});
}

template <int G>
void block(const TritTriples& w, const uint8_t* lut, const float* d, int64_t blk, float* y) {
    constexpr int NT = (G + 2) / 3, NP = (NT + 1) / 2, NSW = (NT + 14) / 15;
    constexpr int64_t plane_bytes = NP * 32 + NSW * 64, group_bytes = 2 * plane_bytes + 128;
    static_assert(NT * 381 < 32768, "a group's sum fits an int16 lane");
    const uint8_t* p = w.bytes.data() + blk * w.block_bytes();
    const __m256i nib = _mm256_set1_epi8(0x0F);
    alignas(32) float o[16][32] = {};  // [lane L][row]
    for (int64_t j = 0; j < w.ngroups; ++j, p += group_bytes) {
        for (int64_t l = 0; l < group_bytes; l += 64)
            _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes + l), _MM_HINT_T0);
        const uint8_t* tab = lut + j * NT * 32;
        __m256i acc[2][2];  // [plane][A, B]
        for (int pl = 0; pl < 2; ++pl) {  // one plane at a time: both at once need more than 16 registers
            const uint8_t* pp = p + pl * plane_bytes;
            const uint8_t* tb = tab;
            __asm__("" : "+r"(tb));  // else GCC hoists the tables' broadcasts out of the plane loop and spills them
            __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256(), idx, sa, sb;
            unrolled<NT>([&]<int T>() __attribute__((always_inline)) {
                // The sign of triple k of a word is bit 15 after k doublings (an add: any ALU pipe, where a
                // shift by k would compete with the shuffles).
                if constexpr (T % 15 == 0) {
                    sa = load32(pp + NP * 32 + (T / 15) * 64);
                    sb = load32(pp + NP * 32 + (T / 15) * 64 + 32);
                } else {
                    sa = _mm256_add_epi16(sa, sa);
                    sb = _mm256_add_epi16(sb, sb);
                }
                __m256i i;
                if constexpr (T % 2 == 0) {
                    idx = load32(pp + (T / 2) * 32);
                    i = _mm256_and_si256(idx, nib);
                } else {
                    i = _mm256_and_si256(_mm256_srli_epi16(idx, 4), nib);
                }
                const __m256i L = _mm256_shuffle_epi8(bcast128(tb + T * 32), i), H = _mm256_shuffle_epi8(bcast128(tb + T * 32 + 16), i);
                a = _mm256_add_epi16(a, _mm256_sign_epi16(_mm256_unpacklo_epi8(L, H), sa));
                b = _mm256_add_epi16(b, _mm256_sign_epi16(_mm256_unpackhi_epi8(L, H), sb));
                // Keep the sums and the doublings running chains: GCC otherwise reassociates the unrolled
                // additions into a tree, or runs the doublings ahead, and spills.
                __asm__("" : "+x"(a), "+x"(b), "+x"(sa), "+x"(sb));
            });
            acc[pl][0] = a;
            acc[pl][1] = b;
        }
        // int16 lanes → int32 rows: A holds rows 0–7 (low half) and 16–23, B rows 8–15 and 24–31.
        const uint8_t* sc = p + 2 * plane_bytes;
        const __m256 dj = _mm256_set1_ps(d[j]);
        for (int pl = 0; pl < 2; ++pl) {
            float* out = o[2 * (j % 8) + pl];
            for (int q = 0; q < 4; ++q) {  // rows 8q … 8q + 7
                const __m256i v = acc[pl][q % 2];
                const __m128i h = q < 2 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1);
                const __m256 s = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(h));
                const __m256 alpha = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + pl * 64 + 16 * q)));
                _mm256_store_ps(out + 8 * q, _mm256_fmadd_ps(s, _mm256_mul_ps(alpha, dj), _mm256_load_ps(out + 8 * q)));
            }
        }
    }
    tritplane_reduce16_store_avx2(o, 32 * blk, w.rows, y);
}

}  // namespace

void tritplane_build_triple_lut_avx2(const TritTriples& t, const int8_t* xq, uint8_t* lut) {
    // Entry c' (0 … 13) of a table: trits t_i = digit i of c' in base 3, minus 1; entries 14, 15 zero.
    alignas(32) int16_t tv[3][16] = {};
    for (int c = 0; c < 14; ++c)
        for (int i = 0, n = c; i < 3; ++i, n /= 3) tv[i][c] = int16_t(n % 3 - 1);
    __m256i T[3];
    for (int i = 0; i < 3; ++i) T[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(tv[i]));
    // int16 entries → per 128-bit lane [8 low bytes, 8 high bytes] → [16 low bytes, 16 high bytes].
    const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1,
                                           3, 5, 7, 9, 11, 13, 15);
    const int g = t.group;
    for (int64_t j = 0; j < t.ngroups; ++j) {
        const int8_t* x = xq + j * g;
        for (int tau = 0; tau < t.NT; ++tau) {
            __m256i v = _mm256_setzero_si256();
            for (int i = 0; i < 3; ++i)
                if (3 * tau + i < g) v = _mm256_add_epi16(v, _mm256_sign_epi16(_mm256_set1_epi16(x[3 * tau + i]), T[i]));
            v = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, split), 0xD8);  // quads 0, 2, 1, 3
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(lut + (j * t.NT + tau) * 32), v);
        }
    }
}

void tritplane_gemv_triples_avx2(const TritTriples& w, const uint8_t* lut, const float* d, int64_t b0, int64_t b1, float* y) {
    for_each_block(w.group, b0, b1, [&]<int G>(int64_t b) { block<G>(w, lut, d, b, y); });
}

}  // namespace planeq::cpu
