// The batch-1 bandwidth-first GEMV (DecodeOptions::bw): y = W x for ONE token, int b=2 and bitplane k=2, on CUDA
// cores, with the activation prep inside the kernel.
//
// Why another kernel: the int8 tensor-core path (gemv_i8.cu) measured latency-bound at 25% occupancy (122
// registers, ~10 KB of weights in flight an SM where HBM needs ~20–30 KB), its fixed costs per superchunk were ~5×
// its MMAs, and every GEMV paid a separate prep kernel (two grid handoffs). Here:
// - a lane owns one weight row and streams it with 16-byte loads: a warp reads 512 contiguous bytes per load and
//   keeps 4 loads a lane in flight plus the next iteration's 4 (double buffer), at ≤ 64 registers (32 warps an SM);
// - decode on CUDA cores without shifts: the upload puts the code of column 16w + 4c + j of a word at bit 8j + 2c,
//   so masking the word with 0x03030303 << 2c leaves 4 codes (× 4^c) in bytes, in the order of 4 consecutive
//   activation bytes: one LOP3 and two dp4a (hi and lo int8 halves of x, as in the int8 path) per 4 weights; the
//   4^c is removed exactly at the group end (shifts of the int32 sums). Bitplane k=2 stores v = b1 + 2·b2 the same
//   way and takes a second mask (0x02020202, 2·b2) for Σ b2 x: a shift, two LOP3 + four dp4a per 4 weights (the
//   shift keeps its accumulators at 4 instead of 16: with 16 it spilled at 64 registers);
// - the activation is quantized by every block into shared memory (per group s = max|x|/127, x ≈ s·(h + l/254),
//   the int8 path's scheme, |x − x̂| ≤ s/508), read back by broadcast: no prep kernel, no second handoff.
//   silu(gate)·up and the RMS scale (Σ x² of the prepared input) are applied here too.
// Work split: a block of 16 warps owns WR 32-row blocks; the 16/WR warps of one row block interleave over 256-column
// iterations and reduce through shared memory (deterministic, no atomics).
#include <cuda_fp16.h>

#include <cstdio>
#include <cstdlib>

#include "kernels/cuda/cuda_gemv.hpp"
#include "kernels/cuda/gpu_weight.hpp"
#include "kernels/cuda/launch.cuh"

namespace planeq::cuda {

namespace {

constexpr int kBwWarps = 16;
constexpr float kMagic = 12582912.0f;  // 1.5 · 2^23: x + kMagic rounds x to an integer (RN) in the low mantissa bits
constexpr int kMagicBits = 0x4B400000;

struct BwProblem {
    const uint4* codes;
    const uint8_t* coefs;
    float* y;
    int rows, rbs, block_begin;  // rbs: 32-row blocks
};

struct BwLaunch {
    BwProblem prob[3];
    int nprob, cols, cols_pad, iters;  // iters: 256-column iterations (cols_pad / 256)
    const float* x;
    const float* up;  // silu(x) · up when set
    int rms, vec;     // rms: y = W x / rms(x); vec: x (and up) 16-byte aligned with cols % 4 == 0
    int l2pf;         // DecodeOptions::bw_l2: request the warp's later iterations from L2 at the start
    int skip;         // measurement only (PLANEQ_BW_SKIP, wrong results): 1 skips the quantization, 2 the weights
};

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
    // Record i of RB bytes.
    template <int RB>
    __device__ __forceinline__ uint32_t rec(int i) const {
        if constexpr (RB == 4) return r[i];
        else return (r[i >> 1] >> (16 * (i & 1))) & 0xffffu;
    }
};

// Σ_c tot_c / 4^c: each class sum carries 4^c exactly (the masked code sits at bit 2c of its byte).
__device__ __forceinline__ int fold4(const int* h, const int* l) {
    int t[4];
#pragma unroll
    for (int c = 0; c < 4; ++c) t[c] = h[c] * 254 + l[c];  // < 2^31 for groups ≤ 256 (192 · 127 · 256 · 254)
    return t[0] + (t[1] >> 2) + (t[2] >> 4) + (t[3] >> 6);
}

// G: group size (32 … 256). WR: 32-row blocks per CTA (the 16/WR warps of each split its columns). 2 CTAs of 512
// threads an SM caps a thread at 64 registers: 32 warps an SM, each lane with up to 8 16-byte loads in flight.
template <int F, int G, int WR>
__global__ void __launch_bounds__(kBwWarps * 32, 2) bw_gemv_kernel(const BwLaunch L) {
    constexpr int WK = kBwWarps / WR, GPI = 256 / G, V = G / 32;
    constexpr int NREC = BwFmt<F>::NREC, RB = BwFmt<F>::RB, LB = GPI * RB;
    constexpr bool BIT = F == kBit2;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wr = warp % WR, wk = warp / WR;
    pdl_launch_dependents();

    int q = 0;
#pragma unroll
    for (int i = 1; i < 3; ++i)
        if (i < L.nprob && int(blockIdx.x) >= L.prob[i].block_begin) q = i;
    const BwProblem& pr = L.prob[q];
    const int rb = (int(blockIdx.x) - pr.block_begin) * WR + wr;  // this warp's 32-row block
    const bool rows_ok = rb < pr.rbs;

    // Shared memory: x (and up) as f32 [cols_pad] each, then h, l [cols_pad] int8, then the per-group scales.
    extern __shared__ __align__(16) uint8_t sm[];
    float* xf = reinterpret_cast<float*>(sm);
    float* uf = xf + L.cols_pad;  // only with up
    int8_t* xh = reinterpret_cast<int8_t*>(uf + (L.up ? L.cols_pad : 0));
    int8_t* xl = xh + L.cols_pad;
    float2* gsc = reinterpret_cast<float2*>(xl + L.cols_pad);  // per group: (s / 254, X = 254·Σh + Σl as int bits)
    __shared__ float red[WK][WR * 32];
    __shared__ float s2w[kBwWarps];

    struct Buf {
        uint4 w[4];
        Bytes<LB> c[NREC];
    };
    const int kcs = L.iters * 4;
    const uint4* cbase = pr.codes + (int64_t(rb) * kcs * 32 + lane);
    const uint8_t* fbase = pr.coefs + (int64_t(rb) * L.iters * NREC * 32 + lane) * LB;
    auto load = [&](Buf& b, int it) {
#pragma unroll
        for (int i = 0; i < 4; ++i) b.w[i] = __ldg(cbase + (it * 4 + i) * 32);
#pragma unroll
        for (int p = 0; p < NREC; ++p) b.c[p].load(fbase + (int64_t(it) * NREC + p) * 32 * LB);
    };

    Buf b0, b1;
    // Weights (no kernel writes them, so before the wait): the warp's first two iterations, in flight during the
    // wait and the activation's quantization.
    if (rows_ok && wk < L.iters) load(b0, wk);
    if (rows_ok && wk + WK < L.iters) load(b1, wk + WK);
    // The warp's later iterations (codes 2 KB, coefficients NREC·32·LB bytes each, contiguous) requested from L2 now,
    // one bulk prefetch per chunk, a lane per iteration: with one iteration in registers ahead, 16–32 warps an SM
    // keep too few bytes in flight for HBM's latency, so the rest of the warp's share should already be on its way.
    if (L.l2pf && rows_ok)
        for (int it = wk + (lane + 1) * WK; it < L.iters; it += 32 * WK) {
            asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(cbase - lane + it * 4 * 32), "r"(2048) : "memory");
            asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(fbase - lane * LB + int64_t(it) * NREC * 32 * LB),
                         "r"(NREC * 32 * LB) : "memory");
        }
    pdl_wait();

    float s2 = 0.0f;
    if (L.skip != 1) {
    // ---- the activation: every block quantizes all groups into shared memory ----
    // First x (and up) into shared memory as f32 with all of a thread's loads in flight at once (a warp per group
    // straight from global memory paid one L2 round trip per group), then a warp per group from shared memory.
    {
        constexpr int U = 4;  // loads a thread keeps in flight (8 spilled with two weight iterations in registers)
        const int n4 = L.cols_pad / 4, total = L.up ? 2 * n4 : n4;
        if (L.vec) {  // 16-byte loads; cols % 4 == 0
            const int c4 = L.cols / 4;
            for (int i0 = int(threadIdx.x); i0 < total; i0 += U * kBwWarps * 32) {
                float4 v[U];
#pragma unroll
                for (int k = 0; k < U; ++k) {
                    const int i = i0 + k * kBwWarps * 32, c = i < n4 ? i : i - n4;  // i ≥ n4: up
                    v[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                    if (i < total && c < c4) v[k] = __ldcg(reinterpret_cast<const float4*>(i < n4 ? L.x : L.up) + c);
                }
#pragma unroll
                for (int k = 0; k < U; ++k)
                    if (i0 + k * kBwWarps * 32 < total) reinterpret_cast<float4*>(xf)[i0 + k * kBwWarps * 32] = v[k];
            }
        } else {
            const int n = L.up ? 2 * L.cols_pad : L.cols_pad;
            for (int i0 = int(threadIdx.x); i0 < n; i0 += U * kBwWarps * 32) {
                float v[U];
#pragma unroll
                for (int k = 0; k < U; ++k) {
                    const int i = i0 + k * kBwWarps * 32, c = i < L.cols_pad ? i : i - L.cols_pad;
                    v[k] = i < n && c < L.cols ? __ldcg((i < L.cols_pad ? L.x : L.up) + c) : 0.0f;
                }
#pragma unroll
                for (int k = 0; k < U; ++k)
                    if (i0 + k * kBwWarps * 32 < n) xf[i0 + k * kBwWarps * 32] = v[k];
            }
        }
    }
    }  // skip
    __syncthreads();
    // Quantizes group j (a warp): h, l into xh, xl, (s/254, X) into gsc, Σ a² into s2.
    auto quant_group = [&](int j) {
        const int c0 = j * G + lane * V;
        float a[V];
        if constexpr (V >= 4) {
#pragma unroll
            for (int i = 0; i < V / 4; ++i) {
                const float4 v = reinterpret_cast<const float4*>(xf + c0)[i];
                a[4 * i] = v.x, a[4 * i + 1] = v.y, a[4 * i + 2] = v.z, a[4 * i + 3] = v.w;
            }
        } else {
#pragma unroll
            for (int i = 0; i < V; ++i) a[i] = xf[c0 + i];
        }
        if (L.up) {
#pragma unroll
            for (int i = 0; i < V; ++i) a[i] = __fdividef(a[i], 1.0f + __expf(-a[i])) * uf[c0 + i];
        }
        float amax = 0.0f;
#pragma unroll
        for (int i = 0; i < V; ++i) amax = fmaxf(amax, fabsf(a[i])), s2 = fmaf(a[i], a[i], s2);
        // One REDUX each for the group's max |x| (non-negative floats order as their bits) and Σ(254h + l): the
        // shuffle trees (5 dependent SHFL + op) and IEEE divisions made this phase ~half of the kernel's
        // instructions at 14336 columns (Nsight: stalled on MIO, 16 warps an SM). inv need not be exactly 1/s.
        amax = __uint_as_float(__reduce_max_sync(0xffffffffu, __float_as_uint(amax)));
        const float inv = amax > 0.0f ? __fdividef(127.0f, amax) : 0.0f;
        int X = 0;
        uint32_t ph[(V + 3) / 4] = {}, pl[(V + 3) / 4] = {};
#pragma unroll
        for (int i = 0; i < V; ++i) {
            // h = rint(u), l = rint((u − h)·254), both in [−127, 127] (|u| ≤ 127, |u − h| ≤ 1/2)
            const float u = __fmul_rn(a[i], inv);
            const float t = __fadd_rn(u, kMagic);
            const float hf = __fsub_rn(t, kMagic);
            const int h = __float_as_int(t) - kMagicBits;
            const int l = __float_as_int(__fmaf_rn(__fsub_rn(u, hf), 254.0f, kMagic)) - kMagicBits;
            X += 254 * h + l;
            ph[i / 4] |= uint32_t(h & 0xff) << (8 * (i % 4));
            pl[i / 4] |= uint32_t(l & 0xff) << (8 * (i % 4));
        }
        X = __reduce_add_sync(0xffffffffu, X);
        if constexpr (V == 1) {
            xh[c0] = int8_t(ph[0]), xl[c0] = int8_t(pl[0]);
        } else if constexpr (V == 2) {
            *reinterpret_cast<uint16_t*>(xh + c0) = uint16_t(ph[0]), *reinterpret_cast<uint16_t*>(xl + c0) = uint16_t(pl[0]);
        } else {
#pragma unroll
            for (int i = 0; i < V / 4; ++i)
                reinterpret_cast<uint32_t*>(xh + c0)[i] = ph[i], reinterpret_cast<uint32_t*>(xl + c0)[i] = pl[i];
        }
        if (lane == 0) gsc[j] = make_float2(amax * (1.0f / (127.0f * 254.0f)), __int_as_float(X));
    };
    // All groups first, a warp per group, then one barrier. (Tried: with one 32-row block a CTA its warps own disjoint
    // iterations, so each could quantize its own groups just before using them, no barrier: the stack got 3% slower,
    // int2 777.5 against 799.6 tokens/s, down 12.8 against 11.8 µs; the loop then holds both weight buffers and the
    // quantizer's registers at once and spills.)
    if (L.skip != 1) {
        for (int j = warp; j < L.cols_pad / G; j += kBwWarps) quant_group(j);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s2 += __shfl_xor_sync(0xffffffffu, s2, o);
        if (lane == 0) s2w[warp] = s2;
        __syncthreads();
    }

    // ---- the weights ----
    float yacc = 0.0f;
    auto compute = [&](const Buf& b, int it) {
        int ah[4] = {0, 0, 0, 0}, al[4] = {0, 0, 0, 0}, bh[4] = {0, 0, 0, 0}, bl[4] = {0, 0, 0, 0};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t wv[4] = {b.w[i].x, b.w[i].y, b.w[i].z, b.w[i].w};
#pragma unroll
            for (int wi = 0; wi < 4; ++wi) {
                const int col = it * 256 + i * 64 + wi * 16;
                const uint4 hv = *reinterpret_cast<const uint4*>(xh + col);
                const uint4 lv = *reinterpret_cast<const uint4*>(xl + col);
                const uint32_t hs[4] = {hv.x, hv.y, hv.z, hv.w}, ls[4] = {lv.x, lv.y, lv.z, lv.w};
#pragma unroll
                for (int c = 0; c < 4; ++c) {
                    if constexpr (!BIT) {  // class accumulators: the 4^c goes at the group end (fold4)
                        const uint32_t m = wv[wi] & (0x03030303u << (2 * c));
                        ah[c] = dp4a_us(m, hs[c], ah[c]);
                        al[c] = dp4a_us(m, ls[c], al[c]);
                    } else {  // a shift per class instead: 4 accumulators, not 16 (≤ 64 registers without spills)
                        const uint32_t wc = wv[wi] >> (2 * c);
                        ah[0] = dp4a_us(wc & 0x03030303u, hs[c], ah[0]);
                        al[0] = dp4a_us(wc & 0x03030303u, ls[c], al[0]);
                        bh[0] = dp4a_us(wc & 0x02020202u, hs[c], bh[0]);
                        bl[0] = dp4a_us(wc & 0x02020202u, ls[c], bl[0]);
                    }
                }
                const int k = i * 4 + wi + 1;  // 16-column words done in this iteration
                if (k % (G / 16) == 0) {     // end of a group: apply its coefficients
                    const int gs = k / (G / 16) - 1;
                    const float2 g = gsc[it * GPI + gs];
                    const int X = __float_as_int(g.y);
                    if constexpr (!BIT) {
                        const int D = fold4(ah, al);
                        const uint32_t r = b.c[0].template rec<RB>(gs);
                        const float s = __half2float(__ushort_as_half(uint16_t(r & 0xffffu)));
                        yacc = fmaf(s * g.x, float(D - int(r >> 16) * X), yacc);
                    } else {
                        const int D = ah[0] * 254 + al[0], D2 = bh[0] * 254 + bl[0];  // Σ v x̂, Σ 2·b2 x̂ (b1: D − D2)
                        auto bf = [](uint32_t v) { return __uint_as_float(v << 16); };
                        const float c0 = bf(b.c[0].template rec<RB>(gs)), c1 = bf(b.c[1].template rec<RB>(gs)),
                                    c2 = bf(b.c[2].template rec<RB>(gs));
                        const float v = fmaf(c0, float(X), fmaf(c1, float(D - D2), 0.5f * c2 * float(D2)));
                        yacc = fmaf(g.x, v, yacc);
                        bh[0] = bl[0] = 0;
                    }
#pragma unroll
                    for (int c = 0; c < 4; ++c) ah[c] = al[c] = 0;
                }
            }
        }
    };
    if (rows_ok && L.skip != 2) {
        // Two buffers, the loop unrolled by two so that neither is copied: a buffer is refilled (two iterations
        // ahead) as soon as it has been used, so one iteration's loads are in flight while the other computes.
        for (int it = wk; it < L.iters; it += 2 * WK) {
            compute(b0, it);
            if (it + 2 * WK < L.iters) load(b0, it + 2 * WK);
            if (it + WK < L.iters) {
                compute(b1, it + WK);
                if (it + 3 * WK < L.iters) load(b1, it + 3 * WK);
            }
        }
    }

    red[wk][wr * 32 + lane] = yacc;
    __syncthreads();
    if (threadIdx.x < WR * 32) {
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < WK; ++k) s += red[k][threadIdx.x];
        const int row = ((int(blockIdx.x) - pr.block_begin) * WR) * 32 + int(threadIdx.x);
        if (L.rms) {
            float t = 0.0f;
#pragma unroll
            for (int w = 0; w < kBwWarps; ++w) t += s2w[w];
            s *= rsqrtf(t / float(L.cols) + 1e-5f);
        }
        if (row < pr.rows) pr.y[row] = s;
    }
}

template <int F, int G, int WR>
void launch_bw(const BwLaunch& L, int blocks, cudaStream_t s) {
    const size_t smem = size_t(L.cols_pad) * (L.up ? 10 : 6) + size_t(L.cols_pad / G) * sizeof(float2);
    static const bool raised = [] {  // above 48 KB a kernel must opt in (once per instantiation): > 8K columns
        PLANEQ_CUDA_CHECK(cudaFuncSetAttribute(bw_gemv_kernel<F, G, WR>, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
        return true;
    }();
    (void)raised;
    launch_pdl(bw_gemv_kernel<F, G, WR>, dim3(blocks), dim3(kBwWarps * 32), smem, s, L);
}

template <int F, int G>
void launch_bw_wr(BwLaunch L, int wr, cudaStream_t s) {
    int blocks = 0;
    for (int i = 0; i < L.nprob; ++i) L.prob[i].block_begin = blocks, blocks += (L.prob[i].rbs + wr - 1) / wr;
    if (wr == 4) launch_bw<F, G, 4>(L, blocks, s);
    else if (wr == 2) launch_bw<F, G, 2>(L, blocks, s);
    else launch_bw<F, G, 1>(L, blocks, s);
}

template <int F>
void launch_bw_g(const BwLaunch& L, int group, int wr, cudaStream_t s) {
    switch (group) {
        case 32: return launch_bw_wr<F, 32>(L, wr, s);
        case 64: return launch_bw_wr<F, 64>(L, wr, s);
        case 128: return launch_bw_wr<F, 128>(L, wr, s);
        case 256: return launch_bw_wr<F, 256>(L, wr, s);
    }
    fail("cuda gemv (bw): bad group size");
}

}  // namespace

bool bw_decode_path(const GpuWeight& w, int batch) {
    // ≤ 16384 columns: x and up are staged in shared memory as f32 (10 bytes a column with h and l)
    return batch == 1 && !w.dense && w.bw_codes != nullptr && w.supers * kSuperCols <= 16384 && decode_options().bw;
}

// Called by gemv_planes (gemv_planes.cu) for a buffer prepare_act marked bw.
void gemv_bw(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, cudaStream_t s) {
    const GpuWeight& w0 = *w[0];
    BwLaunch L{};
    L.nprob = n, L.cols = int(act->cols), L.cols_pad = int(act->cols_pad), L.iters = int(w0.supers);
    L.x = act->bw_x, L.up = act->bw_up, L.rms = act->rms_norm ? 1 : 0;
    auto aligned = [](const float* p) { return p == nullptr || (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
    L.vec = aligned(L.x) && aligned(L.up) && L.cols % 4 == 0;
    L.l2pf = decode_options().bw_l2 ? 1 : 0;
    static const int skip = [] {
        const char* v = std::getenv("PLANEQ_BW_SKIP");
        const int k = v ? std::atoi(v) : 0;
        // A timing knob that makes every result wrong: say so once, loudly, rather than let it pass silently.
        if (k != 0) std::fprintf(stderr, "warning: PLANEQ_BW_SKIP=%d: the bw GEMV skips work, outputs are WRONG (timing only)\n", k);
        return k;
    }();
    L.skip = skip;
    int64_t rbs = 0;
    for (int i = 0; i < n; ++i) {
        const GpuWeight& wi = *w[i];
        if (!bw_decode_path(wi, 1) || wi.fmt != w0.fmt || wi.group != w0.group || wi.supers != w0.supers)
            fail("cuda gemv_multi (bw): weights of one launch must share format, group and width");
        BwProblem& p = L.prob[i];
        p.codes = static_cast<const uint4*>(wi.bw_codes), p.coefs = static_cast<const uint8_t*>(wi.bw_coefs);
        p.y = y[i], p.rows = int(wi.rows), p.rbs = int((wi.rows + 31) / 32);
        rbs += p.rbs;
    }
    // 32-row blocks per CTA: the most that still gives ≥ 1.5 CTAs an SM (gate/up: 4, 224 CTAs; q/k/v, o, down: 1,
    // 128–192 CTAs); more rows per CTA share one quantization of x among more weights.
    static const int sms = [] {
        int dev = 0, m = 0;
        PLANEQ_CUDA_CHECK(cudaGetDevice(&dev));
        PLANEQ_CUDA_CHECK(cudaDeviceGetAttribute(&m, cudaDevAttrMultiProcessorCount, dev));
        return m;
    }();
    const int forced = decode_options().bw_rows;
    const int wr = forced == 1 || forced == 2 || forced == 4 ? forced : rbs >= 4 * 3 * sms / 2 ? 4 : rbs >= 2 * 3 * sms / 2 ? 2 : 1;
    if (w0.fmt == kInt2) launch_bw_g<kInt2>(L, w0.group, wr, s);
    else if (w0.fmt == kBit2) launch_bw_g<kBit2>(L, w0.group, wr, s);
    else fail("cuda gemv (bw): format without a bw kernel");
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

}  // namespace planeq::cuda
