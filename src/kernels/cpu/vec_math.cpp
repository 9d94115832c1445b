#include "kernels/cpu/vec_math.hpp"

#include <algorithm>
#include <cmath>

#include "core/cpu_features.hpp"

namespace planeq::cpu {

double exp_shift_sum_scalar(float* x, int64_t n, float shift) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += x[i] = std::exp(x[i] - shift);
    return s;
}

double log_sum_exp_scalar(const float* x, int64_t n) {
    float mx = x[0];
    for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::exp(double(x[i]) - mx);
    return double(mx) + std::log(s);
}

void silu_mul_scalar(float* g, const float* up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * up[i];
}

void silu_mul(float* g, const float* up, int64_t n) {
    switch (simd_level()) {
        case SimdLevel::Avx512: return silu_mul_avx512(g, up, n);
        case SimdLevel::Avx2: return silu_mul_avx2(g, up, n);
        default: return silu_mul_scalar(g, up, n);
    }
}

double exp_shift_sum(float* x, int64_t n, float shift) {
    switch (simd_level()) {
        case SimdLevel::Avx512: return exp_shift_sum_avx512(x, n, shift);
        case SimdLevel::Avx2: return exp_shift_sum_avx2(x, n, shift);
        default: return exp_shift_sum_scalar(x, n, shift);
    }
}

double log_sum_exp(const float* x, int64_t n) {
    switch (simd_level()) {
        case SimdLevel::Avx512: return log_sum_exp_avx512(x, n);
        case SimdLevel::Avx2: return log_sum_exp_avx2(x, n);
        default: return log_sum_exp_scalar(x, n);
    }
}

}  // namespace planeq::cpu
