// AVX2 dense GEMV (for processors without AVX-512). Same shape as the AVX-512 kernel, 8 lanes.
#include <immintrin.h>

#include "core/half.hpp"
#include "kernels/cpu/dense_kernels.hpp"

namespace planeq::cpu {

namespace {

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

struct LoadF32 {
    static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
    static float scalar(const float* p) { return *p; }
};
struct LoadBF16 {
    static __m256 load(const uint16_t* p) {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
    }
    static float scalar(const uint16_t* p) { return bf16_to_f32(*p); }
};
struct LoadF16 {
    static __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
    static float scalar(const uint16_t* p) { return f16_to_f32(*p); }
};

// Four rows at a time (the AVX-512 kernel's shape): one x load feeds four FMAs, and four independent
// accumulator chains hide the FMA latency. The bf16 lm_head of Llama-3-8B (`BM_Gemv/128256/4096/16`, 2 threads,
// Zen 3), GEMV time against a cold read of the same bytes (read_frac), alternated: one row at a time
// 0.87-1.00, four rows 1.04-1.11. Prefetch into L2 (prefetcht2, as the tritplane triples kernel), into L1, or
// none were alike within this host's noise (47-65 ms each); L2 is kept because on the AVX-512 kernel a
// software prefetch measured better than none.
constexpr int64_t kPrefetchBytes = 1024;

template <class L, class T>
void gemv_rows(const T* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y) {
    const int64_t full = cols & ~int64_t(7);
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const T* w0 = w + r * cols;
        const T* w1 = w0 + cols;
        const T* w2 = w1 + cols;
        const T* w3 = w2 + cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        int64_t c = 0;
        for (; c < full; c += 8) {
            if ((c * int64_t(sizeof(T))) % 64 == 0) {  // once per 64 bytes of a row
                _mm_prefetch(reinterpret_cast<const char*>(w0 + c) + kPrefetchBytes, _MM_HINT_T2);
                _mm_prefetch(reinterpret_cast<const char*>(w1 + c) + kPrefetchBytes, _MM_HINT_T2);
                _mm_prefetch(reinterpret_cast<const char*>(w2 + c) + kPrefetchBytes, _MM_HINT_T2);
                _mm_prefetch(reinterpret_cast<const char*>(w3 + c) + kPrefetchBytes, _MM_HINT_T2);
            }
            const __m256 xv = _mm256_loadu_ps(x + c);
            a0 = _mm256_fmadd_ps(L::load(w0 + c), xv, a0);
            a1 = _mm256_fmadd_ps(L::load(w1 + c), xv, a1);
            a2 = _mm256_fmadd_ps(L::load(w2 + c), xv, a2);
            a3 = _mm256_fmadd_ps(L::load(w3 + c), xv, a3);
        }
        float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
        for (; c < cols; ++c) {
            s0 += L::scalar(w0 + c) * x[c];
            s1 += L::scalar(w1 + c) * x[c];
            s2 += L::scalar(w2 + c) * x[c];
            s3 += L::scalar(w3 + c) * x[c];
        }
        y[r] = s0, y[r + 1] = s1, y[r + 2] = s2, y[r + 3] = s3;
    }
    for (; r < r1; ++r) {  // the last rows, one at a time
        const T* wr = w + r * cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int64_t c = 0;
        for (; c + 16 <= full; c += 16) {
            a0 = _mm256_fmadd_ps(L::load(wr + c), _mm256_loadu_ps(x + c), a0);
            a1 = _mm256_fmadd_ps(L::load(wr + c + 8), _mm256_loadu_ps(x + c + 8), a1);
        }
        for (; c < full; c += 8) a0 = _mm256_fmadd_ps(L::load(wr + c), _mm256_loadu_ps(x + c), a0);
        float acc = hsum(_mm256_add_ps(a0, a1));
        for (; c < cols; ++c) acc += L::scalar(wr + c) * x[c];
        y[r] = acc;
    }
}

}  // namespace

void gemv_f32_avx2(const float* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y) {
    gemv_rows<LoadF32>(w, r0, r1, cols, x, y);
}
void gemv_bf16_avx2(const uint16_t* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y) {
    gemv_rows<LoadBF16>(w, r0, r1, cols, x, y);
}
void gemv_f16_avx2(const uint16_t* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y) {
    gemv_rows<LoadF16>(w, r0, r1, cols, x, y);
}

void bf16_to_f32_avx2(const uint16_t* in, float* out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, LoadBF16::load(in + i));
    for (; i < n; ++i) out[i] = bf16_to_f32(in[i]);
}
void f16_to_f32_avx2(const uint16_t* in, float* out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, LoadF16::load(in + i));
    for (; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

}  // namespace planeq::cpu
