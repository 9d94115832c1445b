// SIMD kernels for dense weights (f32 / bf16 / f16 rows). Each computes y[r] = W[r,:]·x for rows
// [r0, r1); callers split rows across threads. Compiled per instruction set, chosen at run time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace planeq::cpu {

void gemv_f32_avx512(const float* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y);
void gemv_bf16_avx512(const uint16_t* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y);
void gemv_f16_avx512(const uint16_t* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y);
void bf16_to_f32_avx512(const uint16_t* in, float* out, size_t n);
void f16_to_f32_avx512(const uint16_t* in, float* out, size_t n);

void gemv_f32_avx2(const float* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y);
void gemv_bf16_avx2(const uint16_t* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y);
void gemv_f16_avx2(const uint16_t* w, int64_t r0, int64_t r1, int64_t cols, const float* x, float* y);
void bf16_to_f32_avx2(const uint16_t* in, float* out, size_t n);
void f16_to_f32_avx2(const uint16_t* in, float* out, size_t n);

}  // namespace planeq::cpu
