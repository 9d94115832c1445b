// AVX-512 (F/BW/VNNI) GEMV of the 16-row block layout (kernel (d) in bitplane_kernels.hpp).
#include <immintrin.h>

#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's AVX-512 headers (see bitplane_avx512.cpp)

#include <algorithm>
#include <cstring>

#include "kernels/cpu/bitplane_kernels.hpp"
#include "kernels/cpu/block_prefetch.hpp"

namespace planeq::cpu {

namespace {

#define PLANEQ_AI inline __attribute__((always_inline))

PLANEQ_AI __mmask64 mask_at(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return _cvtu64_mask64(v);
}

PLANEQ_AI __m512 bf16x16(const uint8_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}


// Four column quads per step, each with its own accumulators: vpdpbusd's latency would otherwise chain
// every step of a plane.
template <int K, int G>
void block(const BitplaneBlocks& w, const BitplaneAct& a, int64_t blk, float* y) {
    constexpr int64_t QB = 8 * K, QUADS = G / 4, GB = QUADS * QB + (K + 1) * 32;
    const uint8_t* p = w.bytes.data() + blk * w.block_bytes();
    const __m512i ones = _mm512_set1_epi8(1);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = 0; j < w.ngroups; ++j, p += GB) {
        const int32_t* xq = reinterpret_cast<const int32_t*>(a.xq + j * G);
        __m512i s[K][4];
        for (int m = 0; m < K; ++m)
            for (int u = 0; u < 4; ++u) s[m][u] = _mm512_setzero_si512();
        for (int64_t q = 0; q < QUADS; q += 4) {
            const uint8_t* pq = p + q * QB;
            prefetch_block_line(pq);
            if constexpr (K > 2) prefetch_block_line(pq + 64);
            for (int u = 0; u < 4; ++u) {
                const __m512i xb = _mm512_set1_epi32(xq[q + u]);
                for (int m = 0; m < K; ++m)
                    s[m][u] = _mm512_dpbusd_epi32(s[m][u], _mm512_maskz_mov_epi8(mask_at(pq + u * QB + 8 * m), ones), xb);
            }
        }
        const uint8_t* cf = p + QUADS * QB;
        const __m512 d = _mm512_set1_ps(a.d[j]);
        acc = _mm512_fmadd_ps(_mm512_mul_ps(bf16x16(cf), d), _mm512_set1_ps(float(a.sx[j])), acc);
        for (int m = 0; m < K; ++m) {
            const __m512i sm = _mm512_add_epi32(_mm512_add_epi32(s[m][0], s[m][1]), _mm512_add_epi32(s[m][2], s[m][3]));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sm), _mm512_mul_ps(bf16x16(cf + 32 * (m + 1)), d), acc);
        }
    }
    const int64_t r0 = 16 * blk, nr = std::min<int64_t>(16, w.rows - r0);
    _mm512_mask_storeu_ps(y + r0, __mmask16((1u << nr) - 1), acc);
}

// The bit-slot layout (k = 2, 4; BitplaneBlocks::slot_bytes): one 64-byte vector per step of Q = 8/K
// quads, each of its 8 bits one (quad, plane) slot; an AND isolates a slot in place and vpdpbusd sums
// 2^slot · Σ_{b=1} xq into that slot's accumulator; per group each plane's slots are shifted back
// (exact: every term is a multiple of 2^slot) and summed.
template <int K, int G>
void block_slots(const BitplaneBlocks& w, const BitplaneAct& a, int64_t blk, float* y) {
    constexpr int Q = 8 / K;
    constexpr int64_t STEPS = G / 4 / Q, GB = STEPS * 64 + (K + 1) * 32;
    const uint8_t* p = w.bytes.data() + blk * w.block_bytes();
    __m512i bit[8];
    for (int i = 0; i < 8; ++i) bit[i] = _mm512_set1_epi8(char(1 << i));
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = 0; j < w.ngroups; ++j, p += GB) {
        const int32_t* xq = reinterpret_cast<const int32_t*>(a.xq + j * G);
        __m512i s[8];
        for (int i = 0; i < 8; ++i) s[i] = _mm512_setzero_si512();
        for (int64_t st = 0; st < STEPS; ++st) {
            const uint8_t* pv = p + st * 64;
            prefetch_block_line(pv);
            const __m512i v = _mm512_loadu_si512(pv);
            for (int u = 0; u < Q; ++u) {
                const __m512i xb = _mm512_set1_epi32(xq[st * Q + u]);
                for (int m = 0; m < K; ++m) s[u * K + m] = _mm512_dpbusd_epi32(s[u * K + m], _mm512_and_si512(v, bit[u * K + m]), xb);
            }
        }
        const uint8_t* cf = p + STEPS * 64;
        const __m512 d = _mm512_set1_ps(a.d[j]);
        acc = _mm512_fmadd_ps(_mm512_mul_ps(bf16x16(cf), d), _mm512_set1_ps(float(a.sx[j])), acc);
        for (int m = 0; m < K; ++m) {
            __m512i sm = _mm512_srai_epi32(s[m], m);  // plane m's slots are u·K + m
            for (int u = 1; u < Q; ++u) sm = _mm512_add_epi32(sm, _mm512_srai_epi32(s[u * K + m], u * K + m));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sm), _mm512_mul_ps(bf16x16(cf + 32 * (m + 1)), d), acc);
        }
    }
    const int64_t r0 = 16 * blk, nr = std::min<int64_t>(16, w.rows - r0);
    _mm512_mask_storeu_ps(y + r0, __mmask16((1u << nr) - 1), acc);
}

template <int K, int G>
void run(const BitplaneBlocks& w, const BitplaneAct& a, int64_t b0, int64_t b1, float* y) {
    if constexpr (K == 2 || K == 4) {
        for (int64_t b = b0; b < b1; ++b) block_slots<K, G>(w, a, b, y);
    } else {
        for (int64_t b = b0; b < b1; ++b) block<K, G>(w, a, b, y);
    }
}

template <int K>
void run_g(const BitplaneBlocks& w, const BitplaneAct& a, int64_t b0, int64_t b1, float* y) {
    switch (w.group) {
        case 32: return run<K, 32>(w, a, b0, b1, y);
        case 64: return run<K, 64>(w, a, b0, b1, y);
        case 128: return run<K, 128>(w, a, b0, b1, y);
        default: return run<K, 256>(w, a, b0, b1, y);
    }
}

}  // namespace

void bitplane_gemv_blocks_avx512(const BitplaneBlocks& w, const BitplaneAct& a, int64_t b0, int64_t b1, float* y) {
    switch (w.k) {
        case 2: return run_g<2>(w, a, b0, b1, y);
        case 3: return run_g<3>(w, a, b0, b1, y);
        default: return run_g<4>(w, a, b0, b1, y);
    }
}

}  // namespace planeq::cpu
