// Vectorized exp-based reductions for the forward pass and the evaluators (chosen at run time).
#pragma once

#include <cstdint>

namespace planeq::cpu {

// x[i] ← exp(x[i] − shift) for i in [0, n); returns Σ of the results accumulated in f64.
double exp_shift_sum(float* x, int64_t n, float shift);
// ln Σ_i exp(x[i]) without modifying x, in f64 throughout (agrees with the naive fp64 loop to ~1e-15).
double log_sum_exp(const float* x, int64_t n);
// SwiGLU's gate: g[i] ← silu(g[i])·up[i] = g / (1 + exp(−g)) · up (one decode step has 14336 of them a layer;
// libm's expf per element was ~0.8% of an 8B-shape decode token).
void silu_mul(float* g, const float* up, int64_t n);

// Per-ISA implementations (exposed for tests).
double exp_shift_sum_avx512(float* x, int64_t n, float shift);
double log_sum_exp_avx512(const float* x, int64_t n);
double exp_shift_sum_avx2(float* x, int64_t n, float shift);
double log_sum_exp_avx2(const float* x, int64_t n);
double exp_shift_sum_scalar(float* x, int64_t n, float shift);
double log_sum_exp_scalar(const float* x, int64_t n);
void silu_mul_avx512(float* g, const float* up, int64_t n);
void silu_mul_avx2(float* g, const float* up, int64_t n);
void silu_mul_scalar(float* g, const float* up, int64_t n);

}  // namespace planeq::cpu
