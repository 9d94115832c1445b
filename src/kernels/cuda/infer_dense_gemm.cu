// Dense bf16 prefill for the forward pass (infer_ops.hpp): y = x · Wᵀ through cuBLAS with x split into two
// bf16 terms, hi = bf16(x) and lo = bf16(x − hi), and two GEMMs accumulating in fp32 (beta = 1 for the
// second). One bf16 rounding of x (the cuBLAS baseline of gemv_bf16.cu) costs ~4e-3 relative per product;
// hi + lo keeps ~16 significant bits, so prefill logits match the fp32 CPU forward to ~1e-5.
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <mutex>

#include "kernels/cuda/gpu_weight.hpp"
#include "kernels/cuda/infer_ops.hpp"

namespace planeq::cuda {

namespace {

__global__ void split_kernel(const float* __restrict__ x, __nv_bfloat16* __restrict__ hi, __nv_bfloat16* __restrict__ lo, int64_t n) {
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const float v = x[i];
    const __nv_bfloat16 h = __float2bfloat16_rn(v);
    hi[i] = h;
    lo[i] = __float2bfloat16_rn(v - __bfloat162float(h));
}

cublasHandle_t handle() {  // our own handle (gemv_bf16.cu's is private to the baseline)
    static cublasHandle_t h = nullptr;
    static std::once_flag once;
    std::call_once(once, [] {
        if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) fail("cuBLAS: cublasCreate failed");
        cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    });
    return h;
}

}  // namespace

void gemm_bf16_split(const void* w, int64_t rows, int64_t cols, const float* x, int n, uint16_t* scratch, float* y, cudaStream_t s) {
    if (!w) fail("cuda gemm_bf16_split: not a dense bf16 weight");
    const int64_t total = int64_t(n) * cols;
    auto* hi = reinterpret_cast<__nv_bfloat16*>(scratch);
    auto* lo = hi + total;
    split_kernel<<<int((total + 255) / 256), 256, 0, s>>>(x, hi, lo, total);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
    cublasHandle_t h = handle();
    cublasSetStream(h, s);
    const float one = 1.0f, zero = 0.0f;
    // Row-major W[rows × cols] is column-major Wᵀ (lda = cols): Y(rows × n, col-major) = op_T(W) · X.
    for (int part = 0; part < 2; ++part) {
        const cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), n, int(cols), &one, w, CUDA_R_16BF, int(cols),
                                               part == 0 ? hi : lo, CUDA_R_16BF, int(cols), part == 0 ? &zero : &one, y, CUDA_R_32F,
                                               int(rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS) fail("cuBLAS: cublasGemmEx failed (status " + std::to_string(int(st)) + ")");
    }
}

}  // namespace planeq::cuda
