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

template <class L, class T>
void gemv_rows(const T* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y) {
    const int64_t full = cols & ~int64_t(7);
    for (int64_t r = r0; r < r1; ++r) {
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
