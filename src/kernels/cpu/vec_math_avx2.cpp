// AVX2 exp reductions: the AVX-512 file's math (vec_math_avx512.cpp) on 8 f32 / 4 f64 lanes. AVX2 has no
// scalef, so 2^k is built in the exponent field, in two halves (2^⌊k/2⌋ · 2^(k − ⌊k/2⌋)) so that neither
// factor leaves the normal range where the product is still finite, or becomes a denormal.
// On a Zen 3 without AVX-512, libm's exp per element was ~25% of the tiny model's perplexity run.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/vec_math.hpp"

namespace planeq::cpu {

namespace {

// 2^k for integer-valued k in [−252, 254] (f32): two normal factors.
inline __m256 pow2_split(__m256 k) {
    const __m256i ki = _mm256_cvtps_epi32(k);
    const __m256i k1 = _mm256_srai_epi32(ki, 1), k2 = _mm256_sub_epi32(ki, k1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 a = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    const __m256 b = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
    return _mm256_mul_ps(a, b);
}

// exp with |error| < 1 ulp of the polynomial on |r| ≤ ln2/2; below −87.3 the result is 0, above 88.4 it
// saturates at exp(88.4) (softmax shifts never get there; silu's quotient is then ~0 either way).
inline __m256 exp256(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.37626f);
    const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), xc);  // ln2 high part (exact product)
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);      // ln2 low part
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256 result = _mm256_mul_ps(p, pow2_split(k));
    return _mm256_and_ps(result, _mm256_cmp_ps(x, lo, _CMP_GT_OQ));
}

// f64 exp for x ≤ 0 (x − max in log-sum-exp): the degree-12 Taylor polynomial of the AVX-512 file; below −745
// the result is 0. 2^k (k ≥ −1075) in two halves, so results in the denormal range come out of the product.
inline __m256d exp256d(__m256d x) {
    const __m256d lo = _mm256_set1_pd(-745.0);
    const __m256d xc = _mm256_max_pd(x, lo);
    const __m256d k = _mm256_round_pd(_mm256_mul_pd(xc, _mm256_set1_pd(1.4426950408889634)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(6.93147180369123816490e-01), xc);  // ln2 high (exact product)
    r = _mm256_fnmadd_pd(k, _mm256_set1_pd(1.90821492927058770002e-10), r);          // ln2 low
    double c[13];
    c[0] = 1.0;
    for (int i = 1; i <= 12; ++i) c[i] = c[i - 1] / i;
    __m256d p = _mm256_set1_pd(c[12]);
    for (int i = 11; i >= 0; --i) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(c[i]));
    const __m256i ki = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k));
    const __m256i k1 = _mm256_sub_epi64(_mm256_setzero_si256(), _mm256_srli_epi64(_mm256_sub_epi64(_mm256_setzero_si256(), ki), 1));
    const __m256i k2 = _mm256_sub_epi64(ki, k1);  // k ≤ 0 here: k1 = −⌊−k/2⌋, both in [−538, 0]
    const __m256i bias = _mm256_set1_epi64x(1023);
    const __m256d a = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(k1, bias), 52));
    const __m256d b = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(k2, bias), 52));
    return _mm256_and_pd(_mm256_mul_pd(_mm256_mul_pd(p, a), b), _mm256_cmp_pd(x, lo, _CMP_GT_OQ));
}

// The first m (< 8) lanes set.
inline __m256i head_mask(int64_t m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(m)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline __m256d widen_lo(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
inline __m256d widen_hi(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }

inline double hsum(__m256d v) {
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

}  // namespace

double exp_shift_sum_avx2(float* x, int64_t n, float shift) {
    const __m256 s = _mm256_set1_ps(shift);
    __m256d acc = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_pd(acc, _mm256_add_pd(widen_lo(e), widen_hi(e)));
    }
    if (i < n) {
        const __m256i m = head_mask(n - i);
        const __m256 e = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), s)), _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(x + i, m, e);
        acc = _mm256_add_pd(acc, _mm256_add_pd(widen_lo(e), widen_hi(e)));
    }
    return hsum(acc);
}

double log_sum_exp_avx2(const float* x, int64_t n) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, mv);
    float mx = *std::max_element(lanes, lanes + 8);
    for (int64_t j = i; j < n; ++j) mx = std::max(mx, x[j]);
    // x − max is exact in f64 (a difference of two floats), exp in f64: the naive fp64 result to ~1e-15.
    const __m256d s = _mm256_set1_pd(double(mx));
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        acc0 = _mm256_add_pd(acc0, exp256d(_mm256_sub_pd(widen_lo(v), s)));
        acc1 = _mm256_add_pd(acc1, exp256d(_mm256_sub_pd(widen_hi(v), s)));
    }
    double total = hsum(_mm256_add_pd(acc0, acc1));
    for (; i < n; ++i) total += std::exp(double(x[i]) - mx);
    return double(mx) + std::log(total);
}

void silu_mul_avx2(float* g, const float* up, int64_t n) {
    auto silu = [](__m256 x) { return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp256(_mm256_sub_ps(_mm256_setzero_ps(), x)))); };
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(g + i, _mm256_mul_ps(silu(_mm256_loadu_ps(g + i)), _mm256_loadu_ps(up + i)));
    if (i < n) {
        const __m256i m = head_mask(n - i);
        _mm256_maskstore_ps(g + i, m, _mm256_mul_ps(silu(_mm256_maskload_ps(g + i, m)), _mm256_maskload_ps(up + i, m)));
    }
}

}  // namespace planeq::cpu
