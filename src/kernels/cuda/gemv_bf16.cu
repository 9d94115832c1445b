// Dense bf16 on the GPU: our own GEMV (CUDA cores, fp32 activations, so it meets the 1e-3 bar), the cuBLAS
// baseline, random bf16 fill, and the public gemv()/gemv_multi() dispatch.
//
// bf16 is 8× the bytes of a 2-bit weight, so the CUDA cores have ample time per byte: a warp owns two rows,
// each lane streams 16-byte loads (8 weights) with several in flight, and a shuffle reduction finishes.
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <mutex>

#include "kernels/cuda/cuda_gemv.hpp"
#include "kernels/cuda/gpu_weight.hpp"
#include "kernels/cuda/launch.cuh"

namespace planeq::cuda {

void gemv_planes(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, int batch, cudaStream_t s);

namespace {

constexpr int kRowsPerWarp = 2;

__device__ __forceinline__ void bf16x8(const uint4 u, float* f) {
    const uint32_t v[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        f[2 * i] = __uint_as_float(v[i] << 16);
        f[2 * i + 1] = __uint_as_float(v[i] & 0xffff0000u);
    }
}

template <int NB>
__global__ void __launch_bounds__(256) bf16_gemv_kernel(const uint4* __restrict__ W, const float* __restrict__ x,
                                                         float* __restrict__ y, int rows, int cols) {
    const int lane = threadIdx.x & 31;
    const int r0 = (blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32) * kRowsPerWarp;
    pdl_launch_dependents();
    pdl_wait();  // x is the previous kernel's output (launch_pdl's contract)
    if (r0 >= rows) return;
    const int vecs = cols / 8;  // 16-byte vectors per row
    float acc[kRowsPerWarp][NB] = {};
    const uint4* wr[kRowsPerWarp];
#pragma unroll
    for (int k = 0; k < kRowsPerWarp; ++k) wr[k] = W + int64_t(min(r0 + k, rows - 1)) * vecs;
#pragma unroll 4
    for (int v = lane; v < vecs; v += 32) {
        uint4 u[kRowsPerWarp];
#pragma unroll
        for (int k = 0; k < kRowsPerWarp; ++k) u[k] = __ldg(wr[k] + v);
#pragma unroll
        for (int n = 0; n < NB; ++n) {
            const float4 a = __ldg(reinterpret_cast<const float4*>(x + int64_t(n) * cols) + 2 * v);
            const float4 b = __ldg(reinterpret_cast<const float4*>(x + int64_t(n) * cols) + 2 * v + 1);
            const float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
            for (int k = 0; k < kRowsPerWarp; ++k) {
                float wf[8];
                bf16x8(u[k], wf);
#pragma unroll
                for (int i = 0; i < 8; ++i) acc[k][n] = fmaf(wf[i], xv[i], acc[k][n]);
            }
        }
    }
#pragma unroll
    for (int k = 0; k < kRowsPerWarp; ++k)
#pragma unroll
        for (int n = 0; n < NB; ++n) {
            float s = acc[k][n];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
            if (lane == 0 && r0 + k < rows) y[int64_t(n) * rows + r0 + k] = s;
        }
}

template <int NB>
void launch_bf16(const GpuWeight& w, const float* x, float* y, cudaStream_t s) {
    const int warps = int((w.rows + kRowsPerWarp - 1) / kRowsPerWarp);
    launch_pdl(bf16_gemv_kernel<NB>, dim3((warps + 7) / 8), dim3(256), 0, s, static_cast<const uint4*>(w.bf16), x, y,
               int(w.rows), int(w.cols));
}

template <int... NB>
void dispatch_bf16(int batch, const GpuWeight& w, const float* x, float* y, cudaStream_t s, std::integer_sequence<int, NB...>) {
    ((batch == NB + 1 ? launch_bf16<NB + 1>(w, x, y, s) : void()), ...);
}

__global__ void to_bf16_kernel(const float* __restrict__ x, __nv_bfloat16* __restrict__ o, int64_t n) {
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i < n) o[i] = __float2bfloat16_rn(x[i]);
}

__global__ void random_bf16_kernel(uint16_t* o, int64_t n, float amp, uint64_t seed) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        uint64_t z = seed * 0x9e3779b97f4a7c15ull + uint64_t(i);  // splitmix64: cheap, decorrelated per index
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        const float u = float(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
        o[i] = __bfloat16_as_ushort(__float2bfloat16_rn(u * amp));
    }
}

__global__ void silu_mul_kernel(const float* __restrict__ g, const float* __restrict__ u, float* __restrict__ o, int64_t n) {
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i < n) o[i] = g[i] / (1.0f + __expf(-g[i])) * u[i];
}

struct Cublas {
    cublasHandle_t h = nullptr;
    void* workspace = nullptr;
};
Cublas& cublas() {  // one handle with a fixed workspace, so that calls can be captured in a CUDA graph
    static Cublas c;
    static std::once_flag once;
    std::call_once(once, [] {
        if (cublasCreate(&c.h) != CUBLAS_STATUS_SUCCESS) fail("cuBLAS: cublasCreate failed");
        const size_t bytes = size_t(32) << 20;
        PLANEQ_CUDA_CHECK(cudaMalloc(&c.workspace, bytes));
        cublasSetWorkspace(c.h, c.workspace, bytes);
        cublasSetMathMode(c.h, CUBLAS_DEFAULT_MATH);
    });
    return c;
}

}  // namespace

void silu_mul(const float* g, const float* u, float* out, int64_t n, cudaStream_t s) {
    silu_mul_kernel<<<int((n + 255) / 256), 256, 0, s>>>(g, u, out, n);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

bool device_available(std::string* why) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        if (why) *why = e != cudaSuccess ? std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e) : "no CUDA device";
        cudaGetLastError();  // clear the sticky-free error so later checks start clean
        return false;
    }
    return true;
}

GpuWeightPtr random_bf16(int64_t rows, int64_t cols, float sigma, uint64_t seed) {
    if (cols % 8 != 0) fail("cuda: bf16 weights need a multiple of 8 columns");
    GpuWeightPtr w(new GpuWeight);
    w->dense = true, w->rows = rows, w->cols = cols;
    PLANEQ_CUDA_CHECK(cudaMalloc(&w->bf16, size_t(rows * cols) * 2));
    random_bf16_kernel<<<132 * 16, 256>>>(static_cast<uint16_t*>(w->bf16), rows * cols, sigma * 1.7320508f, seed);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
    PLANEQ_CUDA_CHECK(cudaDeviceSynchronize());
    w->desc = "bf16 (random, on GPU)";
    return w;
}

void gemv(const GpuWeight& w, const ActBuffer* act, const float* x, int batch, float* y, cudaStream_t s) {
    const GpuWeight* ws[1] = {&w};
    float* ys[1] = {y};
    gemv_multi(ws, ys, 1, act, x, batch, s);
}

void gemv_multi(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, const float* x, int batch,
                cudaStream_t s) {
    if (batch < 1 || batch > 16) fail("cuda gemv: batch must be 1 … 16 (got " + std::to_string(batch) + ")");
    if (!w[0]->dense) return gemv_planes(w, y, n, act, batch, s);
    for (int i = 0; i < n; ++i) {
        if (!w[i]->dense) fail("cuda gemv_multi: cannot mix bf16 and quantized weights in one launch");
        dispatch_bf16(batch, *w[i], x, y[i], s, std::make_integer_sequence<int, 16>{});
        PLANEQ_CUDA_CHECK(cudaGetLastError());
    }
}

void gemv_cublas_bf16(const GpuWeight& w, const float* x, uint16_t* xbf16, int batch, float* y, cudaStream_t s) {
    if (!w.dense) fail("cuBLAS baseline: bf16 weights only");
    const int64_t n = int64_t(batch) * w.cols;
    to_bf16_kernel<<<int((n + 255) / 256), 256, 0, s>>>(x, reinterpret_cast<__nv_bfloat16*>(xbf16), n);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
    Cublas& c = cublas();
    cublasSetStream(c.h, s);
    const float alpha = 1.0f, beta = 0.0f;
    // Row-major W[rows × cols] is column-major Wᵀ (lda = cols): Y(rows × batch, col-major) = op_T(W) · X.
    const cublasStatus_t st = cublasGemmEx(c.h, CUBLAS_OP_T, CUBLAS_OP_N, int(w.rows), batch, int(w.cols), &alpha, w.bf16,
                                           CUDA_R_16BF, int(w.cols), xbf16, CUDA_R_16BF, int(w.cols), &beta, y, CUDA_R_32F,
                                           int(w.rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) fail("cuBLAS: cublasGemmEx failed (status " + std::to_string(int(st)) + ")");
}

}  // namespace planeq::cuda
