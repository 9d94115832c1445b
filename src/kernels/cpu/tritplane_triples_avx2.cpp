// AVX2 lookup GEMV of the tritplane triple layout (tritplane_kernels.hpp, "triples"): three trits a lookup in
// per-call tables of the activation triples, as bitnet.cpp's TL2 kernel, on our P5 planes repacked at load.
//
// Per triple τ of a group and plane, for 32 rows (one 32-byte index vector holds two triples):
//     i = index nibbles                                  (AND, or shift + AND: 1.5 a triple)
//     l, h = vpshufb(l bytes of table τ, i), vpshufb(h bytes, i)     (v = 32·h + l, split so that both are small)
//     s = sign bytes doubled (bit 7 = the sign of this triple)
//     Σl += vpsignb(l, s); Σh += vpsignb(h, s)            (int8 sums: 7 triples of |l| ≤ 16, 10 of |h| ≤ 12)
//     every 7 (Σl) or 10 (Σh) triples: widen into the int16 row sums E (even rows) and O (odd rows), h × 32
// ~9.7 instructions for 96 trits, of them ~3.1 shuffles and shifts, where int16 lookups (two vpshufb, two unpacks,
// vpsignw on words) took 11.5, of them 4.5. The two tables are broadcast loads shared by both planes. An int16
// lane takes a whole group: ⌈g/3⌉·381 ≤ 86·381 = 32766 at g = 256. Then per (group, plane) the int32 row sums meet α·d_j in
// the row kernels' f32 order (lane L = 2·(j mod 8) + plane, tritplane_reduce16): same bits.
#include <immintrin.h>
#include <omp.h>

#include <utility>

#include "kernels/cpu/tritplane_kernels.hpp"
#include "kernels/cpu/tritplane_reduce_avx2.hpp"
#include "kernels/cpu/group_dispatch.hpp"

namespace planeq::cpu {

namespace {

#define PLANEQ_AI inline __attribute__((always_inline))

// Every line of the group 4 KB ahead, into L2 (prefetcht2): prefetcht0's burst of 30 lines into L1 stalled the
// loop (cold GEMV 64–72% of the read bandwidth next to it, against 77–85% with L2; docs/formats.md).
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
    constexpr int NT = TritTriples::triples(G), NP = TritTriples::index_vectors(G);
    constexpr int64_t plane_bytes = TritTriples::plane_bytes_for(G), group_bytes = TritTriples::group_bytes_for(G);
    static_assert(NT * 381 < 32768, "a group's sum fits an int16 lane");
    static_assert(G % 3 != 0, "the last triple is partial (unsigned)");
    const uint8_t* p = w.bytes.data() + blk * w.block_bytes();
    const __m256i nib = _mm256_set1_epi8(0x0F), odd_bytes = _mm256_set1_epi16(int16_t(0xFF00));
    alignas(32) float o[16][32] = {};  // [lane L][row]
    for (int64_t j = 0; j < w.ngroups; ++j, p += group_bytes) {
        for (int64_t l = 0; l < group_bytes; l += 64)
            _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes + l), _MM_HINT_T2);
        const uint8_t* tab = lut + j * NT * 32;
        __m256i acc[2][2];  // [plane][rows 0–7 and 16–23, rows 8–15 and 24–31]
        for (int pl = 0; pl < 2; ++pl) {  // one plane at a time: both at once need more than 16 registers
            const uint8_t* pp = p + pl * plane_bytes;
            const uint8_t* tb = tab;
            __asm__("" : "+r"(tb));  // else GCC hoists the tables' broadcasts out of the plane loop and spills them
            __m256i sl = _mm256_setzero_si256(), sh = sl, E = sl, O = sl, idx, s;
            unrolled<NT>([&]<int T>() __attribute__((always_inline)) {
                __m256i i;
                if constexpr (T % 2 == 0) {
                    idx = load32(pp + (T / 2) * 32);
                    i = _mm256_and_si256(idx, nib);
                } else {
                    i = _mm256_and_si256(_mm256_srli_epi16(idx, 4), nib);
                }
                __m256i l = _mm256_shuffle_epi8(bcast128(tb + T * 32), i), h = _mm256_shuffle_epi8(bcast128(tb + T * 32 + 16), i);
                if constexpr (T < NT - 1) {  // the last triple is unsigned
                    // The sign of triple k of a byte is bit 7 after k doublings (an add: any ALU pipe).
                    if constexpr (T % 7 == 0) s = load32(pp + NP * 32 + (T / 7) * 32);
                    else s = _mm256_add_epi8(s, s);
                    l = _mm256_sign_epi8(l, s);
                    h = _mm256_sign_epi8(h, s);
                }
                sl = _mm256_add_epi8(sl, l);
                sh = _mm256_add_epi8(sh, h);
                if constexpr (T % 7 == 6 || T == NT - 1) {  // |Σl| ≤ 7·16: widen, even bytes and odd bytes
                    E = _mm256_add_epi16(E, _mm256_srai_epi16(_mm256_slli_epi16(sl, 8), 8));
                    O = _mm256_add_epi16(O, _mm256_srai_epi16(sl, 8));
                    sl = _mm256_setzero_si256();
                }
                if constexpr (T % 10 == 9 || T == NT - 1) {  // |Σh| ≤ 10·12: widen times 32 (256·h >> 3)
                    E = _mm256_add_epi16(E, _mm256_srai_epi16(_mm256_slli_epi16(sh, 8), 3));
                    O = _mm256_add_epi16(O, _mm256_srai_epi16(_mm256_and_si256(sh, odd_bytes), 3));
                    sh = _mm256_setzero_si256();
                }
                // Keep the sums and the doublings running chains: GCC otherwise reassociates the unrolled
                // additions into a tree, or runs the doublings ahead, and spills.
                __asm__("" : "+x"(sl), "+x"(sh), "+x"(s), "+x"(E), "+x"(O));
            });
            // Rows back in order within each 128-bit half: even/odd words interleaved.
            acc[pl][0] = _mm256_unpacklo_epi16(E, O);
            acc[pl][1] = _mm256_unpackhi_epi16(E, O);
        }
        // int16 lanes → int32 rows: acc[·][0] holds rows 0–7 (low half) and 16–23, acc[·][1] rows 8–15 and 24–31.
        const uint8_t* sc = p + 2 * plane_bytes;
        const __m256 dj = _mm256_set1_ps(d[j]);
        for (int pl = 0; pl < 2; ++pl) {
            float* out = o[2 * (j % 8) + pl];
            for (int q = 0; q < 4; ++q) {  // rows 8q … 8q + 7
                const __m256i v = acc[pl][q % 2];
                const __m128i hv = q < 2 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1);
                const __m256 sum = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(hv));
                const __m256 alpha = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + pl * 64 + 16 * q)));
                _mm256_store_ps(out + 8 * q, _mm256_fmadd_ps(sum, _mm256_mul_ps(alpha, dj), _mm256_load_ps(out + 8 * q)));
            }
        }
    }
    tritplane_reduce16_store_avx2(o, 32 * blk, w.rows, y);
}

}  // namespace

void tritplane_build_triple_lut_avx2(const TritTriples& t, const int8_t* xq, uint8_t* lut) {
    // Entry c' (0 … 13) of a signed table: trits t_i = digit i of c' in base 3, minus 1; entries 14, 15 zero.
    // The last (partial) triple's table: entry c (0 … 8, or 0 … 2) = its real trits, digits of c, minus 1.
    alignas(32) int16_t tv[3][16] = {}, tl[2][16] = {};
    for (int c = 0; c < 14; ++c)
        for (int i = 0, n = c; i < 3; ++i, n /= 3) tv[i][c] = int16_t(n % 3 - 1);
    const int g = t.group, last = t.NT - 1, real_last = g - 3 * last;  // 1 or 2 trits
    for (int c = 0; c < (real_last == 2 ? 9 : 3); ++c)
        for (int i = 0, n = c; i < real_last; ++i, n /= 3) tl[i][c] = int16_t(n % 3 - 1);
    __m256i T[3], TL[2];
    for (int i = 0; i < 3; ++i) T[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(tv[i]));
    for (int i = 0; i < 2; ++i) TL[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(tl[i]));
    // v = 32·h + l, l = ((v + 16) mod 32) − 16: l as the low byte of int16 (l, h) words, h as the high byte.
    const __m256i sixteen = _mm256_set1_epi16(16), low5 = _mm256_set1_epi16(31), byte = _mm256_set1_epi16(0xFF);
    // int16 words → per 128-bit lane [8 low bytes, 8 high bytes] → [16 low bytes, 16 high bytes].
    const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1,
                                           3, 5, 7, 9, 11, 13, 15);
    // Both threads build (perf: the tables were 0.5% of a decode's samples, one thread building while the other waited).
#pragma omp parallel for schedule(static) if (t.ngroups >= 16 && !omp_in_parallel())
    for (int64_t j = 0; j < t.ngroups; ++j) {
        const int8_t* x = xq + j * g;
        for (int tau = 0; tau < t.NT; ++tau) {
            __m256i v = _mm256_setzero_si256();
            if (tau < last) {
                for (int i = 0; i < 3; ++i) v = _mm256_add_epi16(v, _mm256_sign_epi16(_mm256_set1_epi16(x[3 * tau + i]), T[i]));
            } else {
                for (int i = 0; i < real_last; ++i) v = _mm256_add_epi16(v, _mm256_sign_epi16(_mm256_set1_epi16(x[3 * tau + i]), TL[i]));
            }
            const __m256i l = _mm256_sub_epi16(_mm256_and_si256(_mm256_add_epi16(v, sixteen), low5), sixteen);
            const __m256i h = _mm256_srai_epi16(_mm256_sub_epi16(v, l), 5);
            const __m256i w = _mm256_or_si256(_mm256_and_si256(l, byte), _mm256_slli_epi16(h, 8));
            const __m256i out = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(w, split), 0xD8);  // quads 0, 2, 1, 3
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(lut + (j * t.NT + tau) * 32), out);
        }
    }
}

void tritplane_gemv_triples_avx2(const TritTriples& w, const uint8_t* lut, const float* d, int64_t b0, int64_t b1, float* y) {
    for_each_block(w.group, b0, b1, [&]<int G>(int64_t b) { block<G>(w, lut, d, b, y); });
}

}  // namespace planeq::cpu
