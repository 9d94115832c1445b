// f32 GEMM for prefill and attention: C[M×N] (+)= A[M×K] · op(B), A in f32, B in f32/bf16/f16.
// The AVX-512 path is ours (OpenBLAS in Debian is pinned to its AVX2 kernels on this class of CPU and
// reaches about half the machine's f32 peak); without AVX-512 it falls back to OpenBLAS.
#pragma once

#include <cstdint>

#include "core/dtype.hpp"

namespace planeq::cpu {

struct BOperand {
    const void* data = nullptr;
    DType dtype = DType::F32;  // F32, BF16 or F16
    int64_t ld = 0;            // elements between consecutive rows of the stored matrix
    bool rows_are_n = true;    // stored [N × K] (a linear's weight, attention keys); false: stored [K × N] (values)
    // Alternatively a producer of f32 blocks (packed weight formats dequantize here, panel by panel, so no
    // f32 copy of the whole weight is ever made): columns [n0, n0 + nr) of op(B) over K range [k0, k0 + kc),
    // written row-major as out[nr × kc]. When set, data/dtype/ld/rows_are_n are ignored.
    void (*block)(const void* ctx, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* out) = nullptr;
    const void* ctx = nullptr;
};

// threads: 0 = use the OpenMP team (call from outside a parallel region); 1 = run on the calling thread.
// a_trans: A is stored transposed, [K × M] row-major (lda ≥ M), and C (+)= Aᵀ · op(B) — a Gram matrix
// XᵀX straight from the token-major activations, with no transposed copy.
void gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const BOperand& B, float* C, int64_t ldc,
              bool accumulate = false, int threads = 0, bool a_trans = false);

// The AVX-512 implementation (exposed for tests and benchmarks; requires SimdLevel::Avx512).
void gemm_f32_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const BOperand& B, float* C,
                     int64_t ldc, bool accumulate, int threads, bool a_trans = false);
// The fallback through OpenBLAS (any CPU).
void gemm_f32_openblas(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const BOperand& B, float* C,
                       int64_t ldc, bool accumulate, int threads, bool a_trans = false);

}  // namespace planeq::cpu
