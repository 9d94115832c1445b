// Internal to src/kernels/cuda: the code → fp16 decode shared by the plane GEMV (decode) and the plane
// GEMM (prefill). Both read the same GPU layout (gpu_weight.hpp, docs/cuda.md).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

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

}  // namespace planeq::cuda
