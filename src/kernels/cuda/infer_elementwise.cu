// The small kernels of the GPU forward (infer_ops.hpp): embedding gather, residual add + RMSNorm, the q/k
// norm + RoPE + KV store, bias add, argmax, position bookkeeping. Each is memory- or latency-bound; one
// block per row (token or head) keeps them simple and deterministic (fixed reduction order). The two of
// every layer (add + RMSNorm, q/k norm + RoPE + store) are launched with PDL (launch.cuh) and wait at their
// first instruction, so they and the GEMVs around them overlap their launches.
#include <cuda_bf16.h>

#include <cfloat>

#include "kernels/cuda/gpu_weight.hpp"
#include "kernels/cuda/infer_ops.hpp"
#include "kernels/cuda/launch.cuh"

namespace planeq::cuda {

namespace {

__device__ __forceinline__ int pos_of(const Pos& p) { return p.dev ? *p.dev : p.host; }

// Sum over the block (blockDim.x a multiple of 32, ≤ 1024); every thread gets the result.
__device__ float block_sum(float v, float* red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    __syncthreads();  // red may still be read by a previous call
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = 0;
    for (int i = 0; i < warps; ++i) t += red[i];
    return t;
}

__global__ void embed_kernel(const void* table, bool bf16, const int32_t* tokens, int hidden, float* x) {
    const int t = blockIdx.x;
    const int64_t id = tokens[t];
    float* o = x + int64_t(t) * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        o[i] = bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(table)[id * hidden + i])
                    : static_cast<const float*>(table)[id * hidden + i];
}

__global__ void add_rmsnorm_kernel(float* x, const float* delta, const float* w, int dim, float eps, float* out) {
    __shared__ float red[32];
    pdl_launch_dependents();  // the next GEMV's blocks may start streaming their weights now
    pdl_wait();
    const int64_t t = blockIdx.x;
    float* xt = x + t * dim;
    float ss = 0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = xt[i];
        if (delta) xt[i] = v = v + delta[t * dim + i];
        ss += v * v;
    }
    const float inv = 1.0f / sqrtf(block_sum(ss, red) / float(dim) + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) out[t * dim + i] = w[i] * (xt[i] * inv);
}

__global__ void add_kernel(float* x, const float* d, int64_t n) {
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i < n) x[i] += d[i];
}

__global__ void bias_kernel(float* y, const float* b, int rows, int64_t n) {
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i < n) y[i] += b[i % rows];
}

// One block per (token, head slot): slots [0, n_heads) are q heads, [n_heads, n_heads + n_kv) k heads,
// [n_heads + n_kv, n_heads + 2·n_kv) v heads. hd threads (rounded up to a warp multiple).
__global__ void qkv_kernel(QkvArgs a) {
    __shared__ float red[32];
    extern __shared__ float v[];  // hd
    pdl_launch_dependents();
    pdl_wait();  // before pos_of: the position may be written by the previous step's advance_kernel
    const int t = blockIdx.x, slot = blockIdx.y, hd = a.hd, half = hd / 2;
    const int kv_dim = a.n_kv * hd, pos = pos_of(a.pos) + t;
    const bool is_q = slot < a.n_heads, is_v = slot >= a.n_heads + a.n_kv;
    const int head = is_q ? slot : is_v ? slot - a.n_heads - a.n_kv : slot - a.n_heads;
    const float* src = is_q ? a.q + (int64_t(t) * a.n_heads + head) * hd
                            : (is_v ? a.v : a.k) + int64_t(t) * kv_dim + int64_t(head) * hd;
    const int i = threadIdx.x;
    if (is_v) {
        if (i < hd) a.vc[int64_t(pos) * kv_dim + int64_t(head) * hd + i] = src[i];
        return;
    }
    float x = i < hd ? src[i] : 0.0f;
    // The rotation's cos/sin (and the norm's weights) requested beside x, not after the norm's reduction: one round
    // trip, not two.
    const int j = i < half ? i : i - half;
    const float c = i < hd ? a.cos[int64_t(pos) * half + j] : 0.0f, sn = i < hd ? a.sin[int64_t(pos) * half + j] : 0.0f;
    const float* norm = is_q ? a.q_norm : a.k_norm;
    const float nw = norm && i < hd ? norm[i] : 0.0f;
    if (norm) {  // uniform per block: every thread takes this branch or none
        const float inv = 1.0f / sqrtf(block_sum(x * x, red) / float(hd) + a.eps);
        if (i < hd) x = nw * (x * inv);
    }
    if (i < hd) v[i] = x;
    __syncthreads();
    if (i < hd) {
        // rotate_half: (a, b) → (a·c − b·s, b·c + a·s) for the pair (j, j + half)
        const float r = i < half ? v[i] * c - v[i + half] * sn : v[i] * c + v[i - half] * sn;
        if (is_q) a.q[(int64_t(t) * a.n_heads + head) * hd + i] = r;
        else a.kc[int64_t(pos) * kv_dim + int64_t(head) * hd + i] = r;
    }
}

__global__ void argmax_kernel(const float* x, int n, int32_t* out) {
    __shared__ float bv[32];
    __shared__ int bi[32];
    float best = -FLT_MAX;
    int idx = 0x7fffffff;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = x[i];
        if (v > best) best = v, idx = i;  // NaN compares false: ignored
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ov > best || (ov == best && oi < idx)) best = ov, idx = oi;
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) bv[warp] = best, bi[warp] = idx;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < int(blockDim.x >> 5); ++w)
            if (bv[w] > best || (bv[w] == best && bi[w] < idx)) best = bv[w], idx = bi[w];
        *out = idx == 0x7fffffff ? 0 : idx;
    }
}

__global__ void gather_kernel(const float* x, const int32_t* perm, int cols, int64_t n, float* out) {
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i < n) out[i] = x[i - i % cols + perm[i % cols]];
}

__global__ void set_int_kernel(int* p, int v) { *p = v; }
__global__ void advance_kernel(int* p) { *p += 1; }

}  // namespace

void embed_rows(const void* table, bool bf16, const int32_t* tokens, int n, int hidden, float* x, cudaStream_t s) {
    embed_kernel<<<n, 256, 0, s>>>(table, bf16, tokens, hidden, x);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

void add_rmsnorm(float* x, const float* delta, const float* w, int n, int dim, float eps, float* out, cudaStream_t s) {
    launch_pdl(add_rmsnorm_kernel, dim3(unsigned(n)), dim3(dim >= 1024 ? 1024u : unsigned((dim + 31) / 32 * 32)), 0, s, x, delta, w,
               dim, eps, out);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

void add_inplace(float* x, const float* delta, int64_t n, cudaStream_t s) {
    add_kernel<<<int((n + 255) / 256), 256, 0, s>>>(x, delta, n);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

void add_bias(float* y, const float* bias, int n, int rows, cudaStream_t s) {
    const int64_t total = int64_t(n) * rows;
    bias_kernel<<<int((total + 255) / 256), 256, 0, s>>>(y, bias, rows, total);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

void qk_norm_rope_store(const QkvArgs& a, cudaStream_t s) {
    if (a.hd % 2 != 0 || a.hd > 1024) fail("cuda forward: head dimension " + std::to_string(a.hd) + " is not supported");
    const dim3 grid(unsigned(a.n), unsigned(a.n_heads + 2 * a.n_kv));
    launch_pdl(qkv_kernel, grid, dim3(unsigned((a.hd + 31) / 32 * 32)), size_t(a.hd) * 4, s, a);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

void argmax(const float* x, int n, int32_t* out, cudaStream_t s) {
    argmax_kernel<<<1, 1024, 0, s>>>(x, n, out);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

void gather_columns(const float* x, const int32_t* perm, int n, int cols, float* out, cudaStream_t s) {
    const int64_t total = int64_t(n) * cols;
    gather_kernel<<<int((total + 255) / 256), 256, 0, s>>>(x, perm, cols, total, out);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

void set_int(int* p, int v, cudaStream_t s) {
    set_int_kernel<<<1, 1, 0, s>>>(p, v);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

void advance_pos(int* p, cudaStream_t s) {
    advance_kernel<<<1, 1, 0, s>>>(p);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

const void* dense_bf16(const GpuWeight& w) { return w.dense ? w.bf16 : nullptr; }

}  // namespace planeq::cuda
