// Internal to src/kernels/cuda: the code → fp16 decode shared by the plane GEMV (decode) and the plane
// GEMM (prefill), and the coefficient unpack of both GEMV paths (fp16 and int8).
// All read the same GPU layout (gpu_weight.hpp, docs/cuda.md).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/gpu_weight.hpp"

namespace planeq::cuda {

__device__ __forceinline__ uint32_t h2_sub(uint32_t a, uint32_t b) {
    half2 r = __hsub2(*reinterpret_cast<half2*>(&a), *reinterpret_cast<half2*>(&b));
    return *reinterpret_cast<uint32_t*>(&r);
}

// Codes of bit width B at bit position POS of both 16-bit halves → an fp16 pair of their exact values.
// OR-ing the exponent of 2^(10−P) above a code at bit P makes the half equal 2^(10−P) + code exactly;
// subtracting 2^(10−P) leaves the code. Positions past the mantissa (P + B > 10) use the word shifted
// right by SH, computed once per word.
// `expo[p]` holds the exponent pattern for bit position p as a kernel parameter, not an immediate: LOP3 takes
// one immediate, so with both constants immediate the compiler splits (w & m) | e into two LOP3s (seen in
// the SASS); with e in a register it is one.
template <int B>
__device__ __forceinline__ uint32_t decode_pair(uint32_t w, uint32_t wsh, int pos, const uint32_t* expo) {
    constexpr int SH = B == 4 ? 8 : 10;
    const bool direct = pos + B <= 10;
    const int p = direct ? pos : pos - SH;
    const uint32_t m = ((1u << B) - 1u) << p;
    const uint32_t e = uint32_t(25 - p) << 10;
    const uint32_t v = ((direct ? w : wsh) & (m | (m << 16))) | expo[p];
    return h2_sub(v, e | (e << 16));
}

// Coefficients of (group gs of the superchunk, row half h) from the lane's prefetched coefficient words
// (layout: coef_block_bytes in gpu_weight.hpp). All indices are compile-time after unrolling.
template <int F, int CW>
__device__ __forceinline__ void unpack_coefs(const uint32_t (&c)[CW], int gs, int h, float* cf, float& bias) {
    if constexpr (F == kInt2 || F == kInt3 || F == kInt4) {
        const uint32_t v = c[gs * 2 + h];
        const float s = __half2float(__ushort_as_half(uint16_t(v & 0xffffu)));
        cf[0] = s;
        if constexpr (F == kInt3) cf[1] = 4.0f * s;
        bias = -s * float(v >> 16);
    } else if constexpr (F == kTrit) {
        const uint32_t v = c[gs * 2 + h];
        cf[0] = __half2float(__ushort_as_half(uint16_t(v & 0xffffu)));
        cf[1] = __half2float(__ushort_as_half(uint16_t(v >> 16)));
        bias = -(cf[0] + cf[1]);
    } else {
        constexpr int K1 = plane_count(F) + 1;
        const int base = (gs * 2 + h) * K1;
        auto bf = [&](int i) { return __uint_as_float((i & 1) ? (c[i >> 1] & 0xffff0000u) : (c[i >> 1] << 16)); };
        bias = bf(base);
#pragma unroll
        for (int m = 0; m < plane_count(F); ++m) cf[m] = bf(base + 1 + m);
    }
}

}  // namespace planeq::cuda
