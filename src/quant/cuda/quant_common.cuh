// Internal to src/quant/cuda: error checks, the cuBLAS/cuSOLVER handles, the device twins of the CPU's
// scalar helpers (core/half.hpp, quant/uniform_grid.hpp, std::min/max/clamp) written to perform the same
// IEEE operations, and step 0 shared by GPTQ and BPDQ (factor_cuda.cu).
//
// These files compile with --fmad=false (CMakeLists.txt): like the CPU build (ISO C++, no FMA contraction),
// every a·b + c rounds twice, so a row's column loop gives the CPU's bits from the CPU's inputs.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "quant/cuda/quant_cuda.hpp"
#include "quant/gptq.hpp"

#define QCK(expr)                                                                                          \
    do {                                                                                                   \
        cudaError_t e_ = (expr);                                                                           \
        if (e_ != cudaSuccess) ::planeq::fail(std::string("CUDA: ") + cudaGetErrorString(e_) + " (" #expr ")"); \
    } while (0)
#define QCB(expr)                                                                                               \
    do {                                                                                                        \
        cublasStatus_t s_ = (expr);                                                                             \
        if (s_ != CUBLAS_STATUS_SUCCESS) ::planeq::fail(std::string("cuBLAS: status ") + std::to_string(int(s_)) + " (" #expr ")"); \
    } while (0)
#define QCS(expr)                                                                                                    \
    do {                                                                                                             \
        cusolverStatus_t s_ = (expr);                                                                                \
        if (s_ != CUSOLVER_STATUS_SUCCESS) ::planeq::fail(std::string("cuSOLVER: status ") + std::to_string(int(s_)) + " (" #expr ")"); \
    } while (0)

namespace planeq::cuda::quant {

// One cuBLAS and one cuSOLVER handle per host thread, on the default stream, cuBLAS in its default math
// mode (no TF32: f32 GEMMs are f32).
cublasHandle_t blas();
cusolverDnHandle_t solver();

inline unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }
// Launch check (a bad launch configuration surfaces here, not at the next synchronizing call).
inline void check_launch(const char* what) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) fail(std::string("CUDA: ") + cudaGetErrorString(e) + " (" + what + ")");
}

// ---- device twins of the CPU's scalar helpers ----

__device__ __forceinline__ float dmin(float a, float b) { return b < a ? b : a; }          // std::min
__device__ __forceinline__ float dmax(float a, float b) { return a < b ? b : a; }          // std::max
__device__ __forceinline__ float dclamp(float v, float lo, float hi) { return v < lo ? lo : hi < v ? hi : v; }  // std::clamp

__device__ __forceinline__ uint16_t d_f32_to_f16(float f) {  // core/half.hpp f32_to_f16, bit for bit
    const uint32_t u = __float_as_uint(f);
    const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;
    if (a >= 0x477ff000u) return sign | 0x7c00u;
    if (a < 0x38800000u) {
        if (a < 0x33000000u) return sign;
        const uint32_t shift = 126 - (a >> 23);
        const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
        uint32_t half = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1);
        const uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
        return sign | uint16_t(half);
    }
    const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
    return sign | uint16_t(((r >> 13) - ((127 - 15) << 10)) & 0x7fffu);
}
__device__ __forceinline__ float d_f16_to_f32(uint16_t h) {  // exact
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else {
            int e = -1;
            do {
                ++e;
                mant <<= 1;
            } while (!(mant & 0x400u));
            u = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | mant << 13;
    } else {
        u = sign | (exp + 127 - 15) << 23 | mant << 13;
    }
    return __uint_as_float(u);
}
__device__ __forceinline__ float d_round_to_f16(float f) { return d_f16_to_f32(d_f32_to_f16(f)); }
__device__ __forceinline__ float d_round_to_bf16(float f) {  // core/half.hpp round_to_bf16
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __uint_as_float(((u >> 16) | 0x40u) << 16);
    u += 0x7fffu + ((u >> 16) & 1u);
    return __uint_as_float((u >> 16) << 16);
}

// quant/uniform_grid.hpp's UniformGrid (fit, code, value) with the same operations.
struct DGrid {
    int bits;
    bool sym;
    __device__ __forceinline__ int maxq() const { return (1 << bits) - 1; }
    __device__ __forceinline__ void fit(float vmin, float vmax, float& scale, uint8_t& zero) const {
        float xmin = dmin(vmin, 0.0f), xmax = dmax(vmax, 0.0f);
        if (sym) {
            xmax = dmax(-xmin, xmax);
            xmin = -xmax;
        }
        if (xmin == 0.0f && xmax == 0.0f) {
            xmin = -1.0f;
            xmax = 1.0f;
        }
        scale = d_round_to_f16(__fdiv_rn(__fsub_rn(xmax, xmin), float(maxq())));
        if (scale == 0.0f) scale = d_f16_to_f32(1);
        if (sym) zero = uint8_t((maxq() + 1) / 2);
        else zero = uint8_t(dclamp(rintf(__fdiv_rn(-xmin, scale)), 0.0f, float(maxq())));
    }
    __device__ __forceinline__ uint8_t code(float w, float scale, uint8_t zero) const {
        return uint8_t(dclamp(__fadd_rn(rintf(__fdiv_rn(w, scale)), float(zero)), 0.0f, float(maxq())));
    }
    __device__ __forceinline__ static float value(uint8_t q, float scale, uint8_t zero) {
        return __fmul_rn(scale, float(int(q) - int(zero)));
    }
};

// ---- step 0 (GPTQ.md steps 2–4), factor_cuda.cu ----

struct PreparedLayer {
    std::vector<int64_t> perm;  // perm[t] = original column at position t
    std::vector<char> dead;     // H_ii = 0
    DeviceArray<int64_t> dperm;
    DeviceArray<float> Wt;      // [C][R]: Wt[t][r] = W[r][perm[t]] (0 for dead columns)
    DeviceArray<float> U;       // [C][C] f32 upper factor of (H_p + λI)⁻¹ (when factored)
    DeviceArray<double> Ud;     // [C][C] its f64 original (when asked to keep it)
    double damp_used = 0;
};

// dH may be null (no Hessian: natural order, no factor). factor: compute U with GPTQ.md §5's retry policy
// (quant/gptq.cpp damped_inverse_cholesky, log lines identical).
PreparedLayer prepare_layer(const float* dW, int64_t R, int64_t C, const double* dH, int64_t group, ColumnOrder order, bool factor,
                            double damp, bool keep_f64, std::vector<std::string>& log, const std::string& what);

// The lazy-block global update W[:, i2:] −= Err1·U[i1:i2, i2:] with negerr = −Err1 ([i2 − i1][R]):
// Wt[i2:] += Uᵀ[i2:, i1:i2]·negerr, one f32 cuBLAS GEMM.
void trailing_update(float* Wt, const float* negerr, const float* U, int64_t R, int64_t C, int64_t i1, int64_t i2);

// The output back in the original order: X[r][perm[t]] = Xt[t][r] ([C][R] → [R][C]), through a 32 × 32
// shared tile, then downloaded.
template <class T>
__global__ void unpermute_kernel(const T* Xt, int64_t R, int64_t C, const int64_t* perm, T* X) {
    __shared__ T tile[32][33];
    const int64_t t0 = blockIdx.x * 32, r0 = blockIdx.y * 32;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        const int64_t t = t0 + i, r = r0 + threadIdx.x;
        if (t < C && r < R) tile[i][threadIdx.x] = Xt[t * R + r];
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        const int64_t r = r0 + i, t = t0 + threadIdx.x;
        if (t < C && r < R) X[r * C + perm[t]] = tile[threadIdx.x][i];
    }
}
template <class T>
std::vector<T> unpermute_download(const DeviceArray<T>& Xt, int64_t R, int64_t C, const int64_t* dperm) {
    DeviceArray<T> X(size_t(R * C));
    unpermute_kernel<T><<<dim3(blocks_for(C, 32), blocks_for(R, 32)), dim3(32, 8)>>>(Xt.data(), R, C, dperm, X.data());
    check_launch("unpermute");
    return X.download();
}

// The working-column tile of a column loop: shared memory [columns][blockDim] when it fits, else global.
constexpr int kRowsPerBlock = 32;
constexpr size_t kMaxTileBytes = 64 * 1024;
inline bool tile_fits(int64_t ncols) { return size_t(ncols) * kRowsPerBlock * sizeof(float) <= kMaxTileBytes; }

}  // namespace planeq::cuda::quant
