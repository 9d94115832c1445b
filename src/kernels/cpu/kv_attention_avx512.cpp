// AVX-512 slot-cache attention: 16 channels per vector. A key is loaded (or dequantized) as its two
// rotate_half halves, rotated by its slot position and dotted with the query in registers, so pre-RoPE
// keys cost no extra memory traffic; values accumulate into head_dim/16 registers across slots.
#include <immintrin.h>

#include "kernels/cpu/kv_attention.hpp"
#include "kernels/cpu/kv_dispatch.hpp"

namespace planeq::cpu {

namespace {

constexpr int kMaxVecs = 16;  // head_dim ≤ 256

// 16 consecutive codes starting at element i (a multiple of 16) of a packed row, as f32.
template <int Bits>
inline __m512 codes16(const uint8_t* row, int64_t i) {
    if constexpr (Bits == 8) {
        return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + i))));
    } else if constexpr (Bits == 4) {
        uint64_t w;
        __builtin_memcpy(&w, row + i / 2, 8);
        const __m512i words = _mm512_permutexvar_epi32(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                                                       _mm512_castsi128_si512(_mm_cvtsi64_si128(int64_t(w))));
        const __m512i sh = _mm512_set_epi32(28, 24, 20, 16, 12, 8, 4, 0, 28, 24, 20, 16, 12, 8, 4, 0);
        return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(words, sh), _mm512_set1_epi32(15)));
    } else {
        uint32_t w;
        __builtin_memcpy(&w, row + i / 4, 4);
        const __m512i sh = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(int(w)), sh), _mm512_set1_epi32(3)));
    }
}

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// Channels [i, i + 16) of slot j.
template <KvStore Kind, int Bits>
inline __m512 load16(const void* base, const uint16_t* prm, int64_t stride, int group, int64_t i) {
    if constexpr (Kind == KvStore::F32) {
        return _mm512_loadu_ps(static_cast<const float*>(base) + i);
    } else if constexpr (Kind == KvStore::F16) {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i)));
    } else {
        const uint16_t* g = prm + 2 * (i / group);
        return _mm512_fmadd_ps(_mm512_set1_ps(f16(g[0])), codes16<Bits>(static_cast<const uint8_t*>(base), i), _mm512_set1_ps(f16(g[1])));
    }
}

// Rotate: the keys are pre-RoPE (slot caches) and are rotated here; otherwise they are stored rotated.
template <KvStore Kind, int Bits, bool Rotate>
void scores(const KvAttnParams& p, const float* q, const KvRun& r, float* out) {
    const int64_t half = p.head_dim / 2, nv = half / 16;
    const size_t esize = Kind == KvStore::F32 ? 4 : Kind == KvStore::F16 ? 2 : 1;
    __m512 qa[kMaxVecs / 2], qb[kMaxVecs / 2];
    for (int64_t v = 0; v < nv; ++v) qa[v] = _mm512_loadu_ps(q + 16 * v), qb[v] = _mm512_loadu_ps(q + half + 16 * v);
    for (int64_t j = 0; j < r.count; ++j) {
        const void* kj = static_cast<const char*>(r.k) + size_t(j * r.stride) * esize;
        const uint16_t* pj = Kind == KvStore::Quant ? r.kp + j * r.pstride : nullptr;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t v = 0; v < nv; ++v) {
            __m512 a = load16<Kind, Bits>(kj, pj, r.stride, p.group, 16 * v);
            __m512 b = load16<Kind, Bits>(kj, pj, r.stride, p.group, half + 16 * v);
            if constexpr (Rotate) {
                const __m512 cv = _mm512_loadu_ps(p.cos + (r.pos0 + j) * half + 16 * v);
                const __m512 sv = _mm512_loadu_ps(p.sin + (r.pos0 + j) * half + 16 * v);
                const __m512 ra = _mm512_fmsub_ps(a, cv, _mm512_mul_ps(b, sv));  // a·cos − b·sin
                b = _mm512_fmadd_ps(b, cv, _mm512_mul_ps(a, sv));                // b·cos + a·sin
                a = ra;
            }
            acc = _mm512_fmadd_ps(qa[v], a, acc);
            acc = _mm512_fmadd_ps(qb[v], b, acc);
        }
        out[j] = _mm512_reduce_add_ps(acc) * p.scale;
    }
}

template <KvStore Kind, int Bits>
void values(const KvAttnParams& p, const float* probs, const KvRun& r, float* out) {
    const int64_t nv = p.head_dim / 16;
    const size_t esize = Kind == KvStore::F32 ? 4 : Kind == KvStore::F16 ? 2 : 1;
    __m512 acc[kMaxVecs];
    for (int64_t v = 0; v < nv; ++v) acc[v] = _mm512_loadu_ps(out + 16 * v);
    for (int64_t j = 0; j < r.count; ++j) {
        const void* vj = static_cast<const char*>(r.v) + size_t(j * r.stride) * esize;
        const uint16_t* pj = Kind == KvStore::Quant ? r.vp + j * r.pstride : nullptr;
        const __m512 pr = _mm512_set1_ps(probs[j]);
        for (int64_t v = 0; v < nv; ++v) acc[v] = _mm512_fmadd_ps(pr, load16<Kind, Bits>(vj, pj, r.stride, p.group, 16 * v), acc[v]);
    }
    for (int64_t v = 0; v < nv; ++v) _mm512_storeu_ps(out + 16 * v, acc[v]);
}

}  // namespace

bool kv_avx512_supports(const KvAttnParams& p) {
    return p.head_dim % 32 == 0 && p.head_dim <= 16 * kMaxVecs && (p.bits == 0 || p.group % 16 == 0);
}

void kv_scores_avx512(const KvAttnParams& p, const float* q, const KvRun& r, float* out) {
    kv_dispatch_scores(p, r.kind, [&]<KvStore Kind, int Bits, bool Rotate>() { scores<Kind, Bits, Rotate>(p, q, r, out); });
}

void kv_values_avx512(const KvAttnParams& p, const float* probs, const KvRun& r, float* out) {
    kv_dispatch(p, r.kind, [&]<KvStore Kind, int Bits>() { values<Kind, Bits>(p, probs, r, out); });
}

}  // namespace planeq::cpu
