// Internal to src/kernels/cuda: the device pieces of the batch-1 bandwidth-first GEMV (gemv_bw.cu) that the
// persistent decode stack (decode_stack.cu) shares: the activation quantizer (h, l int8 halves per group), the
// record loads, and one 256-column iteration of a lane's row (the dp4a loop and its per-group application).
// gemv_bw.cu's header comment explains the code layout and the arithmetic.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/gpu_weight.hpp"

namespace planeq::cuda::bw {

constexpr float kMagic = 12582912.0f;  // 1.5 · 2^23: x + kMagic rounds x to an integer (RN) in the low mantissa bits
constexpr int kMagicBits = 0x4B400000;

// d = Σ a.u8[i] · b.s8[i] + c (the masked codes are unsigned up to 192).
__device__ __forceinline__ int dp4a_us(uint32_t a, uint32_t b, int c) {
    int d;
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

// Record bytes and records per (row, group): int2 one 4-byte (f16 s | u16 z), bitplane three 2-byte (c0, c1, c2).
template <int F>
struct BwFmt {
    static constexpr int NREC = F == kBit2 ? 3 : 1, RB = F == kBit2 ? 2 : 4;
};

// Loads N bytes (2 … 32, a power of two) at p into 32-bit registers.
template <int N>
struct Bytes {
    static constexpr int W = N >= 4 ? N / 4 : 1;
    uint32_t r[W];
    __device__ __forceinline__ void load(const uint8_t* p) {
        if constexpr (N == 2) r[0] = __ldg(reinterpret_cast<const unsigned short*>(p));
        else if constexpr (N == 4) r[0] = __ldg(reinterpret_cast<const unsigned*>(p));
        else if constexpr (N == 8) {
            const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
            r[0] = v.x, r[1] = v.y;
        } else {
#pragma unroll
            for (int i = 0; i < N / 16; ++i) {
                const uint4 v = __ldg(reinterpret_cast<const uint4*>(p) + i);
                r[4 * i] = v.x, r[4 * i + 1] = v.y, r[4 * i + 2] = v.z, r[4 * i + 3] = v.w;
            }
        }
    }
    // The same from shared memory (the persistent stack's ring).
    __device__ __forceinline__ void lds(const uint8_t* p) {
        if constexpr (N == 2) r[0] = *reinterpret_cast<const unsigned short*>(p);
        else if constexpr (N == 4) r[0] = *reinterpret_cast<const unsigned*>(p);
        else if constexpr (N == 8) {
            const uint2 v = *reinterpret_cast<const uint2*>(p);
            r[0] = v.x, r[1] = v.y;
        } else {
#pragma unroll
            for (int i = 0; i < N / 16; ++i) {
                const uint4 v = reinterpret_cast<const uint4*>(p)[i];
                r[4 * i] = v.x, r[4 * i + 1] = v.y, r[4 * i + 2] = v.z, r[4 * i + 3] = v.w;
            }
        }
    }
    // Record i of RB bytes.
    template <int RB>
    __device__ __forceinline__ uint32_t rec(int i) const {
        if constexpr (RB == 4) return r[i];
        else return (r[i >> 1] >> (16 * (i & 1))) & 0xffffu;
    }
};

// Σ_c t_c / 4^c: each class sum carries 4^c exactly (the masked code sits at bit 2c of its byte).
__device__ __forceinline__ int fold_classes(const int* t) { return t[0] + (t[1] >> 2) + (t[2] >> 4) + (t[3] >> 6); }
// The same over hi/lo class sums 254·h + l.
__device__ __forceinline__ int fold4(const int* h, const int* l) {
    int t[4];
#pragma unroll
    for (int c = 0; c < 4; ++c) t[c] = h[c] * 254 + l[c];  // < 2^31 for groups ≤ 256 (192 · 127 · 256 · 254)
    return fold_classes(t);
}

// a / b rounded to nearest-even in f32 for finite a and b > 0, as an IEEE division (the CPU's), without the slow-path
// call of div.rn.f32, which costs the weight-holding kernels ~10 registers of spills: the quotient in f64 by a
// reciprocal estimate, two Newton steps and one residual correction (error far below half an f32 ulp), rounded to f32.
// It differs from the IEEE result only if a / b lies within ~1e-15 relative of an f32 rounding boundary.
__device__ __forceinline__ float div_rn_f32(float a, float b) {
    const double bd = b, ad = a;
    double y;
    asm("rcp.approx.ftz.f64 %0, %1;" : "=d"(y) : "d"(bd));
    y = fma(y, fma(-bd, y, 1.0), y);
    y = fma(y, fma(-bd, y, 1.0), y);
    double q = ad * y;
    q = fma(fma(-q, bd, ad), y, q);
    return __double2float_rn(q);
}

// Quantizes V values a lane holds, a group being `LANES` consecutive lanes (32, or 16 = half a warp), as
// x ≈ s·(h + l/254) with s = max|x|/127: h, l packed 4 a word, X = Σ(254h + l) over the group, amax.
// A8 (DecodeOptions::bw_act8): x ≈ s·h only, X = Σh, l left zero, with the CPU kernels' quantizer to the bit
// (int_group_quantize_act_*: 127/amax and the products rounded as IEEE f32, ties to even), so that the GPU's int
// sums equal the CPU's.
template <int V, int LANES, bool A8 = false>
__device__ __forceinline__ void quant_lanes(const float (&a)[V], uint32_t (&ph)[(V + 3) / 4], uint32_t (&pl)[(V + 3) / 4], int& X,
                                            float& amax) {
    amax = 0.0f;
#pragma unroll
    for (int i = 0; i < V; ++i) amax = fmaxf(amax, fabsf(a[i]));
    // REDUX for a whole warp (non-negative floats order as their bits); a shuffle tree inside half warps.
    if constexpr (LANES == 32) amax = __uint_as_float(__reduce_max_sync(0xffffffffu, __float_as_uint(amax)));
    else
#pragma unroll
        for (int o = LANES / 2; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float inv = amax > 0.0f ? (A8 ? div_rn_f32(127.0f, amax) : __fdividef(127.0f, amax)) : 0.0f;  // hi/lo: inv need not be exactly 1/s
    X = 0;
#pragma unroll
    for (int i = 0; i < (V + 3) / 4; ++i) ph[i] = pl[i] = 0;
#pragma unroll
    for (int i = 0; i < V; ++i) {
        // h = rint(u), l = rint((u − h)·254), both in [−127, 127] (|u| ≤ 127, |u − h| ≤ 1/2)
        const float u = __fmul_rn(a[i], inv);
        const float t = __fadd_rn(u, kMagic);
        const float hf = __fsub_rn(t, kMagic);
        const int h = __float_as_int(t) - kMagicBits;
        ph[i / 4] |= uint32_t(h & 0xff) << (8 * (i % 4));
        if constexpr (A8) {
            X += h;
            (void)hf;
        } else {
            const int l = __float_as_int(__fmaf_rn(__fsub_rn(u, hf), 254.0f, kMagic)) - kMagicBits;
            X += 254 * h + l;
            pl[i / 4] |= uint32_t(l & 0xff) << (8 * (i % 4));
        }
    }
    if constexpr (LANES == 32) X = __reduce_add_sync(0xffffffffu, X);
    else
#pragma unroll
        for (int o = LANES / 2; o > 0; o >>= 1) X += __shfl_xor_sync(0xffffffffu, X, o);
}

// A group's record (s_x, X): the int sums times s_x are the group's dot product. hi/lo: s/254 with X = Σ(254h + l);
// A8: s = amax/127 as the CPU computes it, X = Σh.
template <bool A8>
__device__ __forceinline__ float2 act_record(float amax, int X) {
    return make_float2(A8 ? div_rn_f32(amax, 127.0f) : amax * (1.0f / (127.0f * 254.0f)), __int_as_float(X));
}

// One 256-column iteration of a lane's row: the 4 code chunks `w` (64 columns each), the iteration's records `c`, its
// activation bytes xh, xl [256] and records gsc [256 / GA] (shared memory, read by broadcast). Adds the iteration's
// dot product to yacc. GA: the activation's group (G, or 64 for a pre-quantized input). NW < 4: only the first NW
// chunks of a part of the iteration whose first weight group is record gs0 (xh, xl, gsc already at the part).
template <int F, int G, int GA, bool A8, int NW = 4>
__device__ __forceinline__ void iteration(const uint4 (&w)[NW], const Bytes<(256 / G) * BwFmt<F>::RB> (&c)[BwFmt<F>::NREC],
                                          const int8_t* xh, const int8_t* xl, const float2* gsc, float& yacc, int gs0 = 0) {
    constexpr int RB = BwFmt<F>::RB;
    constexpr bool BIT = F == kBit2;
    int ah[4] = {0, 0, 0, 0}, al[4] = {0, 0, 0, 0}, bh[4] = {0, 0, 0, 0}, bl[4] = {0, 0, 0, 0};
#pragma unroll
    for (int i = 0; i < NW; ++i) {
        const uint32_t wv[4] = {w[i].x, w[i].y, w[i].z, w[i].w};
#pragma unroll
        for (int wi = 0; wi < 4; ++wi) {
            const int col = i * 64 + wi * 16;
            const uint4 hv = *reinterpret_cast<const uint4*>(xh + col);
            uint4 lv = make_uint4(0, 0, 0, 0);
            if constexpr (!A8) lv = *reinterpret_cast<const uint4*>(xl + col);
            const uint32_t hs[4] = {hv.x, hv.y, hv.z, hv.w}, ls[4] = {lv.x, lv.y, lv.z, lv.w};
#pragma unroll
            for (int cc = 0; cc < 4; ++cc) {
                if constexpr (!BIT) {  // class accumulators: the 4^c goes at the group end (fold4)
                    const uint32_t m = wv[wi] & (0x03030303u << (2 * cc));
                    ah[cc] = dp4a_us(m, hs[cc], ah[cc]);
                    if constexpr (!A8) al[cc] = dp4a_us(m, ls[cc], al[cc]);
                } else if constexpr (A8) {  // class accumulators as int2's (8 registers, as hi/lo's 4 below)
                    ah[cc] = dp4a_us(wv[wi] & (0x03030303u << (2 * cc)), hs[cc], ah[cc]);
                    bh[cc] = dp4a_us(wv[wi] & (0x02020202u << (2 * cc)), hs[cc], bh[cc]);
                } else {  // a shift per class instead: 4 accumulators, not 16 (≤ 64 registers without spills)
                    const uint32_t wc = wv[wi] >> (2 * cc);
                    ah[0] = dp4a_us(wc & 0x03030303u, hs[cc], ah[0]);
                    al[0] = dp4a_us(wc & 0x03030303u, ls[cc], al[0]);
                    bh[0] = dp4a_us(wc & 0x02020202u, hs[cc], bh[0]);
                    bl[0] = dp4a_us(wc & 0x02020202u, ls[cc], bl[0]);
                }
            }
            const int k = i * 4 + wi + 1;  // 16-column words done in this iteration
            if (k % (GA / 16) == 0) {    // end of an activation group: apply it with its weight group's coefficients
                const int ga = k / (GA / 16) - 1, gs = gs0 + ga * GA / G;
                const float2 g = gsc[ga];
                const int X = __float_as_int(g.y);
                if constexpr (!BIT) {
                    const int D = A8 ? fold_classes(ah) : fold4(ah, al);
                    const uint32_t r = c[0].template rec<RB>(gs);
                    const float s = __half2float(__ushort_as_half(uint16_t(r & 0xffffu)));
                    yacc = fmaf(s * g.x, float(D - int(r >> 16) * X), yacc);
                } else {
                    // Σ v x̂, Σ 2·b2 x̂ (b1: D − D2); A8: the class sums carry 4^c exactly, as int2's
                    const int D = A8 ? fold_classes(ah) : ah[0] * 254 + al[0], D2 = A8 ? fold_classes(bh) : bh[0] * 254 + bl[0];
                    auto bf = [](uint32_t v) { return __uint_as_float(v << 16); };
                    const float c0 = bf(c[0].template rec<RB>(gs)), c1 = bf(c[1].template rec<RB>(gs)),
                                c2 = bf(c[2].template rec<RB>(gs));
                    const float v = fmaf(c0, float(X), fmaf(c1, float(D - D2), 0.5f * c2 * float(D2)));
                    yacc = fmaf(g.x, v, yacc);
                }
#pragma unroll
                for (int cc = 0; cc < 4; ++cc) ah[cc] = al[cc] = bh[cc] = bl[cc] = 0;
            }
        }
    }
}

}  // namespace planeq::cuda::bw
