// AVX-512 dense GEMV. Four rows share each load of x; the weights stream once (memory bound).
#include <immintrin.h>

#include "core/half.hpp"
#include "kernels/cpu/dense_kernels.hpp"

namespace planeq::cpu {

namespace {

struct LoadF32 {
    static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
    static __m512 load_masked(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
    static float scalar(const float* p) { return *p; }
};
struct LoadBF16 {
    static __m512 load(const uint16_t* p) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
    }
    static __m512 load_masked(const uint16_t* p, __mmask16 m) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
    }
    static float scalar(const uint16_t* p) { return bf16_to_f32(*p); }
};
struct LoadF16 {
    static __m512 load(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
    static __m512 load_masked(const uint16_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
    static float scalar(const uint16_t* p) { return f16_to_f32(*p); }
};

// Software prefetch distance per row stream (4 streams of one row each, so 4 KB ahead in all). The bf16
// lm_head of Llama-3-8B (128256 × 4096, 1.05 GB), 2 threads, GEMV time against a cold read of the same
// bytes (read_frac, median of 3, two runs each): no prefetch 0.90 / 0.93, 512 B 0.97 / 0.94, 1 KB
// 1.04 / 1.06, 1.5 KB 1.01, 2 KB 1.01 / 0.95, 4 KB 0.98 (`BM_Gemv/128256/4096/16`).
constexpr int64_t kPrefetchBytes = 1024;

template <class L, class T>
void gemv_rows(const T* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y) {
    const int64_t full = cols & ~int64_t(15);
    const __mmask16 tail = __mmask16((1u << (cols - full)) - 1);
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const T* w0 = w + r * cols;
        const T* w1 = w0 + cols;
        const T* w2 = w1 + cols;
        const T* w3 = w2 + cols;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        for (int64_t c = 0; c < full; c += 16) {
            if ((c * int64_t(sizeof(T))) % 64 == 0) {  // once per 64 bytes of a row
                _mm_prefetch(reinterpret_cast<const char*>(w0 + c) + kPrefetchBytes, _MM_HINT_T0);
                _mm_prefetch(reinterpret_cast<const char*>(w1 + c) + kPrefetchBytes, _MM_HINT_T0);
                _mm_prefetch(reinterpret_cast<const char*>(w2 + c) + kPrefetchBytes, _MM_HINT_T0);
                _mm_prefetch(reinterpret_cast<const char*>(w3 + c) + kPrefetchBytes, _MM_HINT_T0);
            }
            const __m512 xv = _mm512_loadu_ps(x + c);
            a0 = _mm512_fmadd_ps(L::load(w0 + c), xv, a0);
            a1 = _mm512_fmadd_ps(L::load(w1 + c), xv, a1);
            a2 = _mm512_fmadd_ps(L::load(w2 + c), xv, a2);
            a3 = _mm512_fmadd_ps(L::load(w3 + c), xv, a3);
        }
        if (tail) {
            const __m512 xv = _mm512_maskz_loadu_ps(tail, x + full);
            a0 = _mm512_fmadd_ps(L::load_masked(w0 + full, tail), xv, a0);
            a1 = _mm512_fmadd_ps(L::load_masked(w1 + full, tail), xv, a1);
            a2 = _mm512_fmadd_ps(L::load_masked(w2 + full, tail), xv, a2);
            a3 = _mm512_fmadd_ps(L::load_masked(w3 + full, tail), xv, a3);
        }
        y[r] = _mm512_reduce_add_ps(a0);
        y[r + 1] = _mm512_reduce_add_ps(a1);
        y[r + 2] = _mm512_reduce_add_ps(a2);
        y[r + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; r < r1; ++r) {
        const T* wr = w + r * cols;
        __m512 a = _mm512_setzero_ps();
        for (int64_t c = 0; c < full; c += 16) a = _mm512_fmadd_ps(L::load(wr + c), _mm512_loadu_ps(x + c), a);
        if (tail) a = _mm512_fmadd_ps(L::load_masked(wr + full, tail), _mm512_maskz_loadu_ps(tail, x + full), a);
        y[r] = _mm512_reduce_add_ps(a);
    }
}

}  // namespace

void gemv_f32_avx512(const float* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y) {
    gemv_rows<LoadF32>(w, r0, r1, cols, x, y);
}
void gemv_bf16_avx512(const uint16_t* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y) {
    gemv_rows<LoadBF16>(w, r0, r1, cols, x, y);
}
void gemv_f16_avx512(const uint16_t* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y) {
    gemv_rows<LoadF16>(w, r0, r1, cols, x, y);
}

void bf16_to_f32_avx512(const uint16_t* in, float* out, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, LoadBF16::load(in + i));
    for (; i < n; ++i) out[i] = bf16_to_f32(in[i]);
}
void f16_to_f32_avx512(const uint16_t* in, float* out, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, LoadF16::load(in + i));
    for (; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

}  // namespace planeq::cpu
