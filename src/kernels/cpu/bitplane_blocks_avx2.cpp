// AVX2 (+FMA) GEMV of the bitplane 16-row block layout at k = 2 and 4 (the "bit slots" of
// bitplane_kernels.hpp), for CPUs without AVX-512: a 64-byte vector is two ymm halves (rows 0–7, 8–15), each
// byte 8 (quad, plane) bits of one row's column. Slot i is (v >> i) & 1 — one shift and one AND, the shift
// chained from the slot before (a 16-bit shift moves the high byte's bits into bits the AND drops) — and
// vpmaddubsw of those 0/1 bytes against quad u's broadcast int8 x adds Σ_{b=1} xq of 4 columns as int16
// pairs (≤ 254 a pair: a group's ≤ 32 products per slot never overflow), widened once per group. The
// combination per group is the AVX-512 kernel's: y += c0·d·Σxq + Σ_m c_m·d·S_m for 8 rows at a time.
// Four instructions per 32 plane bits (the bit-serial row kernel, bitplane_avx2.cpp, spends eight).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/bitplane_kernels.hpp"
#include "kernels/cpu/group_dispatch.hpp"

namespace planeq::cpu {

namespace {

#define PLANEQ_AI inline __attribute__((always_inline))

constexpr int64_t kPrefetchBytes = 4096;  // as the AVX-512 block kernel

PLANEQ_AI __m256 bf16x8(const uint8_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}

// One half (8 rows) of one group's block_slots (bitplane_blocks_avx512.cpp) at a time: 8 slot sums fit the
// 16 registers with the quads; the other half re-reads the group's bytes from L1.
template <int K, int G>
void block_slots(const BitplaneBlocks& w, const BitplaneAct& a, int64_t blk, float* y) {
    constexpr int Q = 8 / K;
    constexpr int64_t STEPS = G / 4 / Q, GB = STEPS * 64 + (K + 1) * 32;
    static_assert(STEPS * 254 <= 32767, "a slot's int16 pair sums over a group");
    const uint8_t* p = w.bytes.data() + blk * w.block_bytes();
    const __m256i one = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t j = 0; j < w.ngroups; ++j, p += GB) {
        const int32_t* xq = reinterpret_cast<const int32_t*>(a.xq + j * G);
        for (int64_t st = 0; st < STEPS; st += 2) _mm_prefetch(reinterpret_cast<const char*>(p + st * 64 + kPrefetchBytes), _MM_HINT_T0);
        const uint8_t* cf = p + STEPS * 64;
        const __m256 d = _mm256_set1_ps(a.d[j]);
        for (int h = 0; h < 2; ++h) {
            __m256i s[8];
            for (auto& v : s) v = _mm256_setzero_si256();
            for (int64_t st = 0; st < STEPS; ++st) {
                __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + st * 64 + 32 * h));
                for (int u = 0; u < Q; ++u) {
                    const __m256i xb = _mm256_set1_epi32(xq[st * Q + u]);
                    for (int m = 0; m < K; ++m) {
                        s[u * K + m] = _mm256_add_epi16(s[u * K + m], _mm256_maddubs_epi16(_mm256_and_si256(v, one), xb));
                        v = _mm256_srli_epi16(v, 1);
                    }
                }
            }
            acc[h] = _mm256_fmadd_ps(_mm256_mul_ps(bf16x8(cf + 16 * h), d), _mm256_set1_ps(float(a.sx[j])), acc[h]);
            for (int m = 0; m < K; ++m) {
                __m256i s32 = _mm256_madd_epi16(s[m], ones16);  // plane m's slots are u·K + m
                for (int u = 1; u < Q; ++u) s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(s[u * K + m], ones16));
                acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), _mm256_mul_ps(bf16x8(cf + 32 * (m + 1) + 16 * h), d), acc[h]);
            }
        }
    }
    alignas(32) float r[16];
    _mm256_store_ps(r, acc[0]);
    _mm256_store_ps(r + 8, acc[1]);
    const int64_t r0 = 16 * blk, nr = std::min<int64_t>(16, w.rows - r0);
    std::memcpy(y + r0, r, size_t(nr) * sizeof(float));
}

template <int K>
void run_g(const BitplaneBlocks& w, const BitplaneAct& a, int64_t b0, int64_t b1, float* y) {
    for_each_block(w.group, b0, b1, [&]<int G>(int64_t b) { block_slots<K, G>(w, a, b, y); });
}

}  // namespace

void bitplane_gemv_blocks_avx2(const BitplaneBlocks& w, const BitplaneAct& a, int64_t b0, int64_t b1, float* y) {
    if (w.k == 4) return run_g<4>(w, a, b0, b1, y);
    return run_g<2>(w, a, b0, b1, y);
}

}  // namespace planeq::cpu
