// AVX-512 exp: x = k·ln2 + r with |r| ≤ ln2/2 (Cody–Waite split of ln2), exp(r) by a degree-7
// polynomial (Taylor coefficients; error < 1 ulp on the reduced range), 2^k by exponent arithmetic.
// Inputs below −87.3 flush to 0, as softmax wants.
#include <immintrin.h>

#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's AVX-512 headers (see bitplane_avx512.cpp)

#include <algorithm>
#include <cmath>

#include "kernels/cpu/vec_math.hpp"

namespace planeq::cpu {

namespace {

inline __m512 exp512(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.33654f), hi = _mm512_set1_ps(88.37626f);
    x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);      // ln2 high part (exact product)
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);          // ln2 low part
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    const __m512 result = _mm512_scalef_ps(p, k);  // p · 2^k
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_GT_OQ), result);
}

// f64 exp for log-sum-exp (so perplexity and KLD keep fp64 accuracy, ~1e-15 relative): the same
// reduction with a double ln2 split and a degree-12 Taylor polynomial on |r| ≤ ln2/2 (truncation
// < 2e-16). Inputs are ≤ 0 here (x − max); below −745 the result flushes to 0.
inline __m512d exp512d(__m512d x) {
    const __m512d lo = _mm512_set1_pd(-745.0);
    x = _mm512_max_pd(x, lo);
    const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)), _MM_FROUND_TO_NEAREST_INT);
    __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(6.93147180369123816490e-01), x);  // ln2 high (exact product)
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(1.90821492927058770002e-10), r);         // ln2 low
    double c[13];
    c[0] = 1.0;
    for (int i = 1; i <= 12; ++i) c[i] = c[i - 1] / i;
    __m512d p = _mm512_set1_pd(c[12]);
    for (int i = 11; i >= 0; --i) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c[i]));
    return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(x, lo, _CMP_GT_OQ), _mm512_scalef_pd(p, k));
}

// Sum of 16 lanes in f64.
inline double sum_f64(__m512 v) {
    const __m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d b = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
    return _mm512_reduce_add_pd(_mm512_add_pd(a, b));
}

}  // namespace

double exp_shift_sum_avx512(float* x, int64_t n, float shift) {
    const __m512 s = _mm512_set1_ps(shift);
    __m512d acc = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_pd(acc, _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(e)),
                                               _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1))));
    }
    if (i < n) {
        const __mmask16 m = __mmask16((1u << (n - i)) - 1);
        const __m512 e = _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s)));
        _mm512_mask_storeu_ps(x + i, m, e);
        return _mm512_reduce_add_pd(acc) + sum_f64(e);
    }
    return _mm512_reduce_add_pd(acc);
}

double log_sum_exp_avx512(const float* x, int64_t n) {
    __m512 mv = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(x + i));
    float mx = _mm512_reduce_max_ps(mv);
    for (int64_t j = i; j < n; ++j) mx = std::max(mx, x[j]);
    // x − max is exact in f64 (a difference of two floats), exp in f64: the naive fp64 result to ~1e-15.
    const __m512d s = _mm512_set1_pd(double(mx));
    __m512d acc = _mm512_setzero_pd();
    for (i = 0; i + 8 <= n; i += 8) acc = _mm512_add_pd(acc, exp512d(_mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), s)));
    double total = _mm512_reduce_add_pd(acc);
    for (; i < n; ++i) total += std::exp(double(x[i]) - mx);
    return double(mx) + std::log(total);
}

// exp512 clamps −g to [−87.3, 88.4]: for g > 87.3 the exp is 0 and the result g·up, for g < −88.4 the
// quotient is below 1e-36 (libm's is 0 or a denormal): both agree with the scalar loop to its rounding.
void silu_mul_avx512(float* g, const float* up, int64_t n) {
    auto silu = [](__m512 x) { return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), x)))); };
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(g + i, _mm512_mul_ps(silu(_mm512_loadu_ps(g + i)), _mm512_loadu_ps(up + i)));
    if (i < n) {
        const __mmask16 m = __mmask16((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(silu(_mm512_maskz_loadu_ps(m, g + i)), _mm512_maskz_loadu_ps(m, up + i)));
    }
}

}  // namespace planeq::cpu
