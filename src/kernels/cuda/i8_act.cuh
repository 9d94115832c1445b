// Internal to src/kernels/cuda: the int8 decode path's activation quantizer for one (token, group), shared by
// the standalone prep kernel (gemv_i8.cu: i8_prep_kernel) and the GEMV epilogue that prepares the NEXT GEMV's
// input from its own outputs (DecodeOptions::fuse_prep), so both write bit-identical layouts.
//
// Per (token n, group j): s = max|x|/127, h = round(x/s), l = round((x/s − h)·254), both int8, scattered into the
// permuted B-fragment order of plane_layout.hpp (i8_col_byte) for planes of BITS bits; xsc = (s, Σ x̂) and
// xsq = Σ x² (RMSNorm's scale) per (token, group).
#pragma once

#include <cstdint>

#include "kernels/cuda/gpu_weight.hpp"
#include "kernels/cuda/plane_layout.hpp"

namespace planeq::cuda {

// COHERENT: read x through L2 only (ld.global.cg). The GEMV epilogue reads outputs that other blocks of the
// same launch wrote (ordered by __threadfence + a counter), which this SM's L1 must not serve stale.
template <bool COHERENT>
__device__ __forceinline__ float i8_load_act(const float* p) {
    if constexpr (COHERENT) return __ldcg(p);
    else return *p;
}

template <int BITS, bool COHERENT>
__device__ __forceinline__ void i8_quantize_group(const float* __restrict__ x, const float* __restrict__ up, int cols,
                                                  int batch, int group, int groups_pad, int n, int j, int lane,
                                                  int8_t* __restrict__ xq8, float2* __restrict__ xsc, float* __restrict__ xsq) {
    const int per = group / 32;
    float a[8], amax = 0.0f, s2 = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        a[i] = 0.0f;
        const int c = j * group + i * 32 + lane;
        if (i < per && c < cols) {
            const int64_t k = int64_t(n) * cols + c;
            const float v = i8_load_act<COHERENT>(x + k);
            a[i] = up ? v / (1.0f + __expf(-v)) * i8_load_act<COHERENT>(up + k) : v;
        }
        amax = fmaxf(amax, fabsf(a[i]));
        s2 += a[i] * a[i];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float s = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    float sh = 0.0f, sl = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        if (i >= per) break;
        const float u = a[i] * inv;
        const float hq = fminf(fmaxf(rintf(u), -127.0f), 127.0f);
        const float lq = fminf(fmaxf(rintf((u - hq) * 254.0f), -127.0f), 127.0f);
        sh += hq, sl += lq;
        const int c = j * group + i * 32 + lane;
        int8_t* dst = xq8 + i8_act_byte(BITS, c, batch, n);
        dst[0] = int8_t(hq);
        dst[kI8LoBytes] = int8_t(lq);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        sh += __shfl_xor_sync(0xffffffffu, sh, o);
        sl += __shfl_xor_sync(0xffffffffu, sl, o);
        s2 += __shfl_xor_sync(0xffffffffu, s2, o);
    }
    const int w = n * groups_pad + j;
    if (lane == 0) xsc[w] = make_float2(s, s * (sh + sl * (1.0f / 254.0f))), xsq[w] = s2;
}

}  // namespace planeq::cuda
