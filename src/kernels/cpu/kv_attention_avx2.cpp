// AVX2 slot-cache attention: the AVX-512 kernels' scheme (kv_attention_avx512.cpp) at 8 channels a vector, for
// machines without AVX-512. A key is loaded (or dequantized) as its two rotate_half halves, rotated by its slot
// position and dotted with the query in registers; values accumulate into head_dim/8 vectors across slots.
#include <immintrin.h>

#include "kernels/cpu/kv_attention.hpp"
#include "kernels/cpu/kv_dispatch.hpp"

namespace planeq::cpu {

namespace {

constexpr int kMaxVecs = 32;  // head_dim ≤ 256, the AVX-512 kernels' bound (no register array here needs it)

// 8 consecutive codes starting at element i (a multiple of 8) of a packed row (kvq::code_at's bit order), as f32.
template <int Bits>
inline __m256 codes8(const uint8_t* row, int64_t i) {
    if constexpr (Bits == 8) {
        return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + i))));
    } else if constexpr (Bits == 4) {
        uint32_t w;
        __builtin_memcpy(&w, row + i / 2, 4);
        const __m256i sh = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
        return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(w)), sh), _mm256_set1_epi32(15)));
    } else {
        uint16_t w;
        __builtin_memcpy(&w, row + i / 4, 2);
        const __m256i sh = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
        return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(w)), sh), _mm256_set1_epi32(3)));
    }
}

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// Channels [i, i + 8) of slot j.
template <KvStore Kind, int Bits>
inline __m256 load8(const void* base, const uint16_t* prm, int group, int64_t i) {
    if constexpr (Kind == KvStore::F32) {
        return _mm256_loadu_ps(static_cast<const float*>(base) + i);
    } else if constexpr (Kind == KvStore::F16) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i)));
    } else {
        const uint16_t* g = prm + 2 * (i / group);
        return _mm256_fmadd_ps(_mm256_set1_ps(f16(g[0])), codes8<Bits>(static_cast<const uint8_t*>(base), i), _mm256_set1_ps(f16(g[1])));
    }
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// Rotate: the keys are pre-RoPE (slot caches) and are rotated here; otherwise they are stored rotated.
// Two accumulators (the halves) keep the FMA chains short.
template <KvStore Kind, int Bits, bool Rotate>
void scores(const KvAttnParams& p, const float* q, const KvRun& r, float* out) {
    const int64_t half = p.head_dim / 2, nv = half / 8;
    const size_t esize = Kind == KvStore::F32 ? 4 : Kind == KvStore::F16 ? 2 : 1;
    for (int64_t j = 0; j < r.count; ++j) {
        const void* kj = static_cast<const char*>(r.k) + size_t(j * r.stride) * esize;
        const uint16_t* pj = Kind == KvStore::Quant ? r.kp + j * r.pstride : nullptr;
        __m256 acc_a = _mm256_setzero_ps(), acc_b = _mm256_setzero_ps();
        for (int64_t v = 0; v < nv; ++v) {
            __m256 a = load8<Kind, Bits>(kj, pj, p.group, 8 * v);
            __m256 b = load8<Kind, Bits>(kj, pj, p.group, half + 8 * v);
            if constexpr (Rotate) {
                const __m256 cv = _mm256_loadu_ps(p.cos + (r.pos0 + j) * half + 8 * v);
                const __m256 sv = _mm256_loadu_ps(p.sin + (r.pos0 + j) * half + 8 * v);
                const __m256 ra = _mm256_fmsub_ps(a, cv, _mm256_mul_ps(b, sv));  // a·cos − b·sin
                b = _mm256_fmadd_ps(b, cv, _mm256_mul_ps(a, sv));                // b·cos + a·sin
                a = ra;
            }
            acc_a = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * v), a, acc_a);
            acc_b = _mm256_fmadd_ps(_mm256_loadu_ps(q + half + 8 * v), b, acc_b);
        }
        out[j] = hsum(_mm256_add_ps(acc_a, acc_b)) * p.scale;
    }
}

// Values: the accumulators of 8 vectors (64 channels) stay in registers for a pass over the run's slots (16 ymm
// registers: all of head_dim 128's would leave none for the loads); head_dim 128 takes two passes, each over its
// own channels of every slot.
template <KvStore Kind, int Bits>
void values(const KvAttnParams& p, const float* probs, const KvRun& r, float* out) {
    const int64_t nv = p.head_dim / 8;
    const size_t esize = Kind == KvStore::F32 ? 4 : Kind == KvStore::F16 ? 2 : 1;
    constexpr int64_t kPass = 8;  // vectors a pass: 8 accumulators, the rest of the 16 registers for loads
    for (int64_t v0 = 0; v0 < nv; v0 += kPass) {
        const int64_t n = nv - v0 < kPass ? nv - v0 : kPass;
        __m256 acc[kPass];
        for (int64_t v = 0; v < n; ++v) acc[v] = _mm256_loadu_ps(out + 8 * (v0 + v));
        for (int64_t j = 0; j < r.count; ++j) {
            const void* vj = static_cast<const char*>(r.v) + size_t(j * r.stride) * esize;
            const uint16_t* pj = Kind == KvStore::Quant ? r.vp + j * r.pstride : nullptr;
            const __m256 pr = _mm256_set1_ps(probs[j]);
            for (int64_t v = 0; v < n; ++v) acc[v] = _mm256_fmadd_ps(pr, load8<Kind, Bits>(vj, pj, p.group, 8 * (v0 + v)), acc[v]);
        }
        for (int64_t v = 0; v < n; ++v) _mm256_storeu_ps(out + 8 * (v0 + v), acc[v]);
    }
}

}  // namespace

bool kv_avx2_supports(const KvAttnParams& p) {
    return p.head_dim % 16 == 0 && p.head_dim <= 8 * kMaxVecs && (p.bits == 0 || p.group % 8 == 0);
}

void kv_scores_avx2(const KvAttnParams& p, const float* q, const KvRun& r, float* out) {
    kv_dispatch_scores(p, r.kind, [&]<KvStore Kind, int Bits, bool Rotate>() { scores<Kind, Bits, Rotate>(p, q, r, out); });
}

void kv_values_avx2(const KvAttnParams& p, const float* probs, const KvRun& r, float* out) {
    kv_dispatch(p, r.kind, [&]<KvStore Kind, int Bits>() { values<Kind, Bits>(p, probs, r, out); });
}

}  // namespace planeq::cpu
