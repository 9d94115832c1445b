// The int8 decode path: y = W x for batch 1 … 4 on mma.sync.m16n8k32 (u8 codes × s8 activations → s32).
//
// Why: the fp16 path (gemv_planes.cu) spends a LOP3 + an HSUB2 per two codes and one HMMA per 256 weights,
// and measured instruction-bound (Nsight: 74% of cycles issuing, DRAM 27%). Here the same code words are
// masked with a per-byte field mask: one LOP3 gives 4 codes (times 2^(c·b)) in int8 A-fragment form, and one
// IMMA takes 512 weights: 1/4 of the decode instructions. The scale of a mask class is uniform per MMA row
// and removed exactly at the group end (plane_layout.hpp has the layout and why the k order works).
//
// Activations: per (token, group) x ≈ s·(h + l/254), h = round(x/s), l = round((x/s − h)·254), s = max|x|/127,
// both int8. For ≤ 4 tokens h and l are B columns 2n and 2n + 1 of one MMA, as in the fp16 path, so lane
// (g, t) ends with token t's two partial sums; |x − x̂| ≤ s/508, ~2e-5 relative on Gaussian x (bar 1e-3). The
// group sums Σ x̂ (what the tensor cores saw) carry the bias term.
//
// Work split as in the fp16 path: a block of 8 warps per 16-row tile, warps interleaved over 256-column
// superchunks, everything a superchunk needs loaded one superchunk ahead (activations straight into registers:
// 64 bytes a lane), the block's whole weight tile requested from L2 at start (DecodeOptions::l2_prefetch), and
// with PDL the weights are requested before waiting on the previous kernel.
#include <cuda_fp16.h>

#include "kernels/cuda/cuda_gemv.hpp"
#include "kernels/cuda/gpu_weight.hpp"
#include "kernels/cuda/i8_act.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/plane_decode.cuh"
#include "kernels/cuda/plane_layout.hpp"

namespace planeq::cuda {

namespace {

constexpr int kI8MaxBatch = 4;
constexpr int kI8DefaultStages = 0;  // DecodeOptions::i8_stages < 0: registers (the ring measured slower, docs/cuda.md)

__device__ __forceinline__ void imma16832(int* c, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

struct I8Problem {
    const uint4* planes[4];
    const uint4* coefs;
    float* y;
    int rows, tiles, block_begin;
};

// The next GEMV's input, prepared by this launch's blocks from their outputs (DecodeOptions::fuse_prep): the
// last block to finish a group of `group` output rows (tiles_per_group tiles of problem `src`, and as many of
// `up_src` for silu(gate)·up) quantizes that group, as i8_prep_kernel would. Saves a kernel (and its launch
// dependency) per GEMV.
struct I8Next {
    int8_t* xq8;
    float2* xsc;
    float* xsq;
    int* counters;  // [groups]: arrivals so far; the last arrival resets it to 0
    int src, up_src;  // problem indices; src < 0: nothing to prepare
    int bits, group, groups_pad, tiles_per_group, arrivals;
};

struct I8Launch {
    I8Problem prob[3];
    int nprob, supers, groups_pad, batch, cols;
    int l2_prefetch;
    const uint4* xq8;
    const float2* xsc;
    const float* xsq;  // per-(token, group) Σ x², or null: with it, y = W x / rms(x)
    I8Next next;
};

// Words a lane stages per superchunk (weights only): the code words of every plane, then its coefficients.
template <int F, int GP>
struct I8Shape {
    static constexpr int P = plane_count(F), B = plane_bits(F, 0), T = 4 / B, NP = 2 * B, GS = NP / GP;
    static constexpr int CW = coef_block_bytes(F, GS) / 4;
    static constexpr int U = P * B + CW / 4;  // 16-byte chunks per lane per superchunk
};

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    const unsigned a = unsigned(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// GP: word pairs per group (group = GP · 128/b columns). WARPS: warps per block (one 16-row tile); fewer warps
// per tile give each warp more superchunks, so its fixed costs (setup, the first load's latency, the
// block reduction) are spread over more weights (DecodeOptions::i8_warps).
// S: weight pipeline depth. 0 (the default): codes and coefficients loaded into registers one superchunk ahead.
// S ≥ 2 (a switch, DecodeOptions::i8_stages): each lane cp.async's them into a per-warp ring of S shared-memory
// stages, S − 1 superchunks ahead. Tried because the 2-bit kernels seemed short of bytes in flight (~1.1 KB a
// warp, 16 warps an SM); measured 25–70% SLOWER at every depth (3, 4, 6; docs/cuda.md), so bytes in flight are
// not what limits them.
// AGP: word pairs per activation group (a scale and sum each): GP when the prep quantized x in the weight's groups,
// 1 for int b=2 when a paired gate/up launch quantized down's input in its epilogue in groups of 64 columns
// (ActBuffer::i8_ga, gemv_bw.cu: gemv_bw_pair), so the int sums are applied once a word pair.
template <int F, int GP, int WARPS, int S, int AGP = GP>
__global__ void __launch_bounds__(WARPS * 32) i8_gemv_kernel(const I8Launch L) {
    using Sh = I8Shape<F, GP>;
    constexpr int P = Sh::P, B = Sh::B, T = Sh::T, NP = Sh::NP, GS = Sh::GS, CW = Sh::CW, U = Sh::U, AS = NP / AGP;
    static_assert(GS * GP == NP, "a group is a whole number of word pairs");
    static_assert(GP % AGP == 0, "an activation group divides the weight group");
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    pdl_launch_dependents();

    int q = 0;
#pragma unroll
    for (int i = 1; i < 3; ++i)
        if (i < L.nprob && int(blockIdx.x) >= L.prob[i].block_begin) q = i;
    const I8Problem& pr = L.prob[q];
    const int T0 = int(blockIdx.x) - pr.block_begin;  // the block's row tile
    if (L.l2_prefetch) {  // weights only: no earlier kernel writes them, so this may precede pdl_wait
#pragma unroll
        for (int p = 0; p < P; ++p)
            prefetch_l2_block(pr.planes[p] + int64_t(T0) * L.supers * 32 * B, (long long)L.supers * 512 * B);
        prefetch_l2_block(pr.coefs + int64_t(T0) * L.supers * 8 * (CW / 4), (long long)L.supers * 8 * CW * 4);
    }

    struct WBuf {
        uint32_t w[P][4 * B];
        uint32_t c[CW];
    };
    struct XBuf {
        uint32_t xb[16];  // this lane's B fragments for the superchunk's 8 MMAs (b0, b1 each)
        float2 xs[AS];    // token t: (s, Σ x̂) per activation group
    };
    // Item it of this warp is superchunk warp + WARPS·it: base pointers once, then constant strides (the
    // per-item 64-bit index arithmetic was half of the loop's instructions in the first version's SASS).
    const uint4* wbase[P];
#pragma unroll
    for (int p = 0; p < P; ++p) wbase[p] = pr.planes[p] + ((int64_t(T0) * L.supers + warp) * 32 + lane) * B;
    const uint4* cbase = pr.coefs + ((int64_t(T0) * L.supers + warp) * 8 + g) * (CW / 4);
    auto unpack = [](uint32_t* d, const uint4 u) { d[0] = u.x, d[1] = u.y, d[2] = u.z, d[3] = u.w; };
    auto load_w = [&](WBuf& d, int it) {
#pragma unroll
        for (int p = 0; p < P; ++p)
#pragma unroll
            for (int v = 0; v < B; ++v) unpack(&d.w[p][4 * v], __ldg(wbase[p] + it * (WARPS * 32 * B) + v));
#pragma unroll
        for (int v = 0; v < CW / 4; ++v) unpack(&d.c[4 * v], __ldg(cbase + it * (WARPS * 8 * (CW / 4)) + v));
    };
    // The staged pipeline: this warp's ring [S][U][32 lanes] of 16-byte chunks; each lane reads back only what it
    // copied, so cp.async.wait_group alone orders it (no barrier).
    extern __shared__ uint4 wstage[];
    uint4* ring = wstage + warp * (S > 0 ? S : 1) * U * 32 + lane;
    auto issue_w = [&](int it) {
        uint4* dst = ring + (it % (S > 0 ? S : 1)) * (U * 32);
#pragma unroll
        for (int p = 0; p < P; ++p)
#pragma unroll
            for (int v = 0; v < B; ++v) cp_async16(dst + (p * B + v) * 32, wbase[p] + it * (WARPS * 32 * B) + v);
#pragma unroll
        for (int v = 0; v < CW / 4; ++v) cp_async16(dst + (P * B + v) * 32, cbase + it * (WARPS * 8 * (CW / 4)) + v);
    };
    auto read_w = [&](WBuf& d, int it) {
        const uint4* src = ring + (it % (S > 0 ? S : 1)) * (U * 32);
#pragma unroll
        for (int p = 0; p < P; ++p)
#pragma unroll
            for (int v = 0; v < B; ++v) unpack(&d.w[p][4 * v], src[(p * B + v) * 32]);
#pragma unroll
        for (int v = 0; v < CW / 4; ++v) unpack(&d.c[4 * v], src[(P * B + v) * 32]);
    };
    // Lanes past the batch's B columns (g ≥ 2·batch) and tokens (t ≥ batch) hold zeros.
    const bool bvalid = g < 2 * L.batch, tvalid = t < L.batch;
    const uint4* xbase = L.xq8 + ((int64_t(warp) * 2 * L.batch + g) * 4 + t) * (kI8LaneBytes / 16);
    const int xstride = WARPS * 2 * L.batch * 4 * (kI8LaneBytes / 16);
    const float2* sbase = L.xsc + int64_t(t) * L.groups_pad + warp * AS;
    auto load_x = [&](XBuf& d, int it) {
        const uint4* src = xbase + it * xstride;
#pragma unroll
        for (int v = 0; v < 4; ++v) unpack(&d.xb[4 * v], bvalid ? __ldg(src + v) : make_uint4(0, 0, 0, 0));
        const float2* xs = sbase + it * (WARPS * AS);
#pragma unroll
        for (int gs = 0; gs < AS; ++gs) d.xs[gs] = tvalid ? __ldg(xs + gs) : make_float2(0.0f, 0.0f);
    };

    float yacc[2] = {0.0f, 0.0f};  // rows g and g + 8, token t
    auto compute = [&](const WBuf& d, const XBuf& x) {
        int acc[P][T][4];
#pragma unroll
        for (int pp = 0; pp < NP; ++pp) {
            if (pp % AGP == 0) {
#pragma unroll
                for (int p = 0; p < P; ++p)
#pragma unroll
                    for (int tau = 0; tau < T; ++tau) acc[p][tau][0] = acc[p][tau][1] = acc[p][tau][2] = acc[p][tau][3] = 0;
            }
#pragma unroll
            for (int p = 0; p < P; ++p) {
                const uint32_t w0 = d.w[p][2 * pp], w1 = d.w[p][2 * pp + 1];
#pragma unroll
                for (int tau = 0; tau < T; ++tau) {
                    const int m = pp * T + tau;
                    constexpr uint32_t M = i8_class_mask(B, 0);
                    const uint32_t mg = M << (2 * tau * B), mg8 = M << ((2 * tau + 1) * B);
                    imma16832(acc[p][tau], w0 & mg, w0 & mg8, w1 & mg, w1 & mg8, x.xb[2 * m], x.xb[2 * m + 1]);
                }
            }
            if (pp % AGP == AGP - 1) {  // end of an activation group: combine the MMA types, apply the coefficients
                const int gs = pp / GP;
                float cf[2][4], bias[2];
                unpack_coefs<F, CW>(d.c, gs, 0, cf[0], bias[0]);
                unpack_coefs<F, CW>(d.c, gs, 1, cf[1], bias[1]);
                const float2 xs = x.xs[pp / AGP];
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    // Horner over the types gives 2^(8−2b) (row g) or 2^(8−b) (row g + 8) times the sum; h and l
                    // combine in int32 (254·h + l: < 2^31 for every supported plane width and group ≤ 256) before
                    // the one conversion.
                    const float sc = xs.x * (h == 0 ? 1.0f / float(254 << (8 - 2 * B)) : 1.0f / float(254 << (8 - B)));
                    float v = fmaf(bias[h], xs.y, yacc[h]);
#pragma unroll
                    for (int p = 0; p < P; ++p) {
                        int vh = 0, vl = 0;
#pragma unroll
                        for (int tau = 0; tau < T; ++tau) {
                            vh = vh * (1 << (2 * B)) + acc[p][tau][2 * h];
                            vl = vl * (1 << (2 * B)) + acc[p][tau][2 * h + 1];
                        }
                        v = fmaf(cf[h][p] * sc, float(vh * 254 + vl), v);
                    }
                    yacc[h] = v;
                }
            }
        }
    };

    auto ok = [&](int it) { return warp + WARPS * it < L.supers; };
    __shared__ float inv_rms[kI8MaxBatch];
    __shared__ float red[WARPS][2][32];
    auto rms_scales = [&] {
        if (L.xsq) {
            for (int n = warp; n < L.batch; n += WARPS) {
                float s2 = 0;
                for (int j = lane; j < L.groups_pad; j += 32) s2 += __ldg(L.xsq + int64_t(n) * L.groups_pad + j);
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) s2 += __shfl_xor_sync(0xffffffffu, s2, o);
                if (lane == 0) inv_rms[n] = rsqrtf(s2 / float(L.cols) + 1e-5f);
            }
        }
    };
    XBuf x0, x1;
    if constexpr (S == 0) {
        WBuf b0, b1;
        if (ok(0)) load_w(b0, 0);
        pdl_wait();  // from here on: activations (an earlier kernel's output) and y
        if (ok(0)) load_x(x0, 0);
        rms_scales();
        // Two buffers, the loop unrolled by two so that neither is copied.
        for (int it = 0; ok(it); it += 2) {
            if (ok(it + 1)) load_w(b1, it + 1), load_x(x1, it + 1);
            compute(b0, x0);
            if (ok(it + 2)) load_w(b0, it + 2), load_x(x0, it + 2);
            if (ok(it + 1)) compute(b1, x1);
        }
    } else {
        // Prologue: the first S − 1 superchunks' weights in flight before the wait (no kernel writes weights).
#pragma unroll
        for (int i = 0; i < S - 1; ++i) {
            if (ok(i)) issue_w(i);
            cp_async_commit();
        }
        pdl_wait();
        if (ok(0)) load_x(x0, 0);
        rms_scales();
        auto step = [&](int it, const XBuf& x) {
            if (ok(it + S - 1)) issue_w(it + S - 1);  // into the slot read one step ago
            cp_async_commit();                        // (an empty group past the end keeps the count uniform)
            cp_async_wait<S - 1>();                   // superchunk it has landed
            WBuf d;
            read_w(d, it);
            compute(d, x);
        };
        for (int it = 0; ok(it); it += 2) {
            if (ok(it + 1)) load_x(x1, it + 1);
            step(it, x0);
            if (ok(it + 2)) load_x(x0, it + 2);
            if (ok(it + 1)) step(it + 1, x1);
        }
    }

    red[warp][0][lane] = yacc[0];
    red[warp][1][lane] = yacc[1];
    __syncthreads();
    if (threadIdx.x < 64) {
        const int l = threadIdx.x & 31, h = threadIdx.x >> 5;
        float s = 0;
#pragma unroll
        for (int w = 0; w < WARPS; ++w) s += red[w][h][l];
        const int row = T0 * 16 + (l >> 2) + 8 * h, n = l & 3;
        if (row < pr.rows && n < L.batch) pr.y[int64_t(n) * pr.rows + row] = L.xsq ? s * inv_rms[n] : s;
    }

    // The fused prep of the next GEMV's input (I8Next): the classic last-block pattern (writes, fence, counter).
    const I8Next& nx = L.next;
    if (nx.src >= 0 && (q == nx.src || q == nx.up_src)) {
        __shared__ int last;
        const int j = T0 / nx.tiles_per_group;
        if (threadIdx.x < 64) __threadfence();  // this block's y before its arrival
        __syncthreads();
        if (threadIdx.x == 0) last = atomicAdd(nx.counters + j, 1) == nx.arrivals - 1;
        __syncthreads();
        if (last) {
            __threadfence();  // the other blocks' y (their arrivals are ordered before ours)
            const I8Problem& ps = L.prob[nx.src];
            const float* up = nx.up_src >= 0 ? L.prob[nx.up_src].y : nullptr;
            for (int n = warp; n < L.batch; n += WARPS) {
                if (nx.bits == 1)
                    i8_quantize_group<1, true>(ps.y, up, ps.rows, L.batch, nx.group, nx.groups_pad, n, j, lane, nx.xq8, nx.xsc, nx.xsq);
                else if (nx.bits == 2)
                    i8_quantize_group<2, true>(ps.y, up, ps.rows, L.batch, nx.group, nx.groups_pad, n, j, lane, nx.xq8, nx.xsc, nx.xsq);
                else
                    i8_quantize_group<4, true>(ps.y, up, ps.rows, L.batch, nx.group, nx.groups_pad, n, j, lane, nx.xq8, nx.xsc, nx.xsq);
            }
            if (threadIdx.x == 0) nx.counters[j] = 0;  // ready for the next launch that prepares into this buffer
        }
    }
}

// One warp per (token, group): the group's scale, h and l scattered into the permuted B order, the sums.
template <int BITS>
__global__ void i8_prep_kernel(const float* __restrict__ x, const float* __restrict__ up, int cols, int batch, int group,
                               int groups_pad, int8_t* __restrict__ xq8, float2* __restrict__ xsc, float* __restrict__ xsq) {
    pdl_launch_dependents();
    pdl_wait();  // x is the previous kernel's output, and xq8 may still be read by the previous GEMV
    const int wid = int(blockIdx.x) * (blockDim.x / 32) + int(threadIdx.x / 32), lane = threadIdx.x & 31;
    if (wid >= batch * groups_pad) return;
    i8_quantize_group<BITS, false>(x, up, cols, batch, group, groups_pad, wid / groups_pad, wid % groups_pad, lane, xq8, xsc, xsq);
}

template <int F, int GP, int WARPS, int S, int AGP = GP>
void launch_i8_staged(const I8Launch& l, int blocks, cudaStream_t s) {
    const int smem = S > 0 ? WARPS * S * I8Shape<F, GP>::U * 32 * 16 : 0;
    static const bool raised = [smem] {  // above 48 KB a kernel must opt in (once per instantiation)
        PLANEQ_CUDA_CHECK(cudaFuncSetAttribute(i8_gemv_kernel<F, GP, WARPS, S, AGP>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        return true;
    }();
    (void)raised;
    launch_pdl(i8_gemv_kernel<F, GP, WARPS, S, AGP>, dim3(blocks), dim3(WARPS * 32), size_t(smem), s, l);
}

// Weight pipeline depth (DecodeOptions::i8_stages): 0 = registers, one superchunk ahead; else a ring of 4 stages.
// a64: int b=2 with activation groups of 64 columns (one word pair; registers only).
template <int F, int GP, int WARPS>
void launch_i8_depth(const I8Launch& l, int blocks, int stages, bool a64, cudaStream_t s) {
    if constexpr (F == kInt2)
        if (a64) return launch_i8_staged<F, GP, WARPS, 0, 1>(l, blocks, s);
    if (a64) fail("cuda gemv (int8): 64-column activation groups are for int b=2");
    if (stages == 0) launch_i8_staged<F, GP, WARPS, 0>(l, blocks, s);
    else launch_i8_staged<F, GP, WARPS, 4>(l, blocks, s);
}

template <int F, int GP>
void launch_i8(const I8Launch& L, bool a64, cudaStream_t s) {
    int blocks = 0;
    I8Launch l = L;
    for (int i = 0; i < l.nprob; ++i) l.prob[i].block_begin = blocks, blocks += l.prob[i].tiles;
    // Automatic: 4 warps per tile when the launch has enough tiles to fill the GPU several times over at
    // 4 warps (gate/up: 1792 tiles), else 8 (q/o, q/k/v, down: 256–384 tiles, where 4 warps leave SMs short of
    // warps). Measured per shape at K = 4096: gate/up 7.8 µs at 4 warps vs 8.8 at 8; q/o 4.1 vs 3.1; down
    // (K = 14336) 10.9 vs 7.0 (docs/cuda.md).
    const int sms = sm_count();
    const DecodeOptions o = decode_options();
    const int warps = o.i8_warps == 4 || o.i8_warps == 8 ? o.i8_warps : blocks >= 4 * sms ? 4 : 8;
    const int stages = o.i8_stages >= 0 ? o.i8_stages : kI8DefaultStages;
    if (warps == 4) launch_i8_depth<F, GP, 4>(l, blocks, stages, a64, s);
    else launch_i8_depth<F, GP, 8>(l, blocks, stages, a64, s);
}

template <int F>
void launch_i8_fmt(const I8Launch& L, int gp, bool a64, cudaStream_t s) {
    switch (gp) {
        case 1: return launch_i8<F, 1>(L, a64, s);
        case 2: return launch_i8<F, 2>(L, a64, s);
        case 4: if constexpr (plane_bits(F, 0) >= 2) return launch_i8<F, 4>(L, a64, s); break;
        case 8: if constexpr (plane_bits(F, 0) == 4) return launch_i8<F, 8>(L, a64, s); break;
    }
    fail("cuda gemv (int8): bad group size");
}

bool i8_format(int f) { return f == kInt2 || f == kInt4 || f == kTrit || f == kBit2 || f == kBit3 || f == kBit4; }

}  // namespace

bool int8_decode_path(const GpuWeight& w, int batch) {
    return !w.dense && batch >= 1 && batch <= kI8MaxBatch && decode_options().int8 && i8_format(w.fmt) &&
           w.group % i8_min_group(plane_bits(w.fmt, 0)) == 0;
}

// Called by prepare_act (gemv_planes.cu) when the weight takes this path.
void prepare_act_i8(ActBuffer& a, const float* x, const float* up, int64_t cols, int batch, int group, int bits,
                    cudaStream_t s) {
    const int groups_pad = int(a.cols_pad / group);
    const int warps = batch * groups_pad;
    auto k = bits == 1 ? i8_prep_kernel<1> : bits == 2 ? i8_prep_kernel<2> : i8_prep_kernel<4>;
    launch_pdl(k, dim3((warps + 7) / 8), dim3(256), 0, s, x, up, int(cols), batch, group, groups_pad, a.xq8, a.xsc, a.xsq);
    a.i8_bits = bits;
}

namespace {
void gemv_i8_launch(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, int batch, const I8Next& next,
                    cudaStream_t s);
}

// Called by gemv_planes (gemv_planes.cu) for a buffer prepared by prepare_act_i8.
void gemv_i8(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, int batch, cudaStream_t s) {
    I8Next none{};
    none.src = -1;
    gemv_i8_launch(w, y, n, act, batch, none, s);
}

// gemv_bw.cu: gate/up on the bw path with down's input quantized in the same launch (false: not applicable).
bool gemv_bw_pair(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, int batch, cudaStream_t s,
                  const NextAct& next);

void gemv_multi_prep(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, const float* x, int batch,
                     cudaStream_t s, const NextAct& next) {
    if (gemv_bw_pair(w, y, n, act, batch, s, next)) return;
    const GpuWeight& nw = *next.weight;
    const int src = next.src, up = next.up_src;
    const int64_t rows = src >= 0 && src < n ? w[src]->rows : -1;
    const bool fuse = decode_options().fuse_prep && act && act->i8_bits && act != next.act && !w[0]->dense &&
                      batch == act->batch && act->group == w[0]->group &&
                      act->cols_pad == w[0]->supers * kSuperCols && int8_decode_path(*w[0], batch) && int8_decode_path(nw, batch) && rows > 0 &&
                      rows % kSuperCols == 0 && rows == nw.cols && rows <= next.act->max_cols &&
                      (up < 0 || (up < n && up != src && w[up]->rows == rows));
    if (!fuse) {
        gemv_multi(w, y, n, act, x, batch, s);
        prepare_act(*next.act, y[src], up >= 0 ? y[up] : nullptr, rows, batch, nw.group, s, next.rms_norm, &nw);
        return;
    }
    ActBuffer& a = *next.act;
    a.cols_pad = rows, a.cols = rows, a.batch = batch, a.group = nw.group, a.rms_norm = next.rms_norm;
    a.i8_bits = plane_bits(nw.fmt, 0), a.i8_ga = 0, a.bw = false, a.bw_preq = false;
    I8Next nx{};
    nx.xq8 = a.xq8, nx.xsc = a.xsc, nx.xsq = a.xsq, nx.counters = a.counters;
    nx.src = src, nx.up_src = up, nx.bits = a.i8_bits, nx.group = nw.group, nx.groups_pad = int(rows / nw.group);
    nx.tiles_per_group = nw.group / kTileRows, nx.arrivals = nx.tiles_per_group * (up >= 0 ? 2 : 1);
    gemv_i8_launch(w, y, n, act, batch, nx, s);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

namespace {
void gemv_i8_launch(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, int batch, const I8Next& next,
                    cudaStream_t s) {
    const GpuWeight& w0 = *w[0];
    if (!int8_decode_path(w0, batch) || plane_bits(w0.fmt, 0) != act->i8_bits)
        fail("cuda gemv: the activation buffer was prepared for the int8 path of another weight layout");
    I8Launch L{};
    // Activation records per (token, group): the weight's groups, or 64-column groups from a paired producer.
    const bool a64 = act->i8_ga == 64;
    if (a64 && (w0.fmt != kInt2 || batch != 1 || w0.group % 64 != 0)) fail("cuda gemv (int8): 64-column activation groups are for int b=2 at batch 1");
    L.nprob = n, L.supers = int(w0.supers), L.groups_pad = a64 ? int(w0.supers * 4) : int(w0.groups_pad), L.batch = batch;
    L.cols = int(act->cols);
    L.l2_prefetch = decode_options().l2_prefetch ? 1 : 0;
    L.xq8 = reinterpret_cast<const uint4*>(act->xq8), L.xsc = act->xsc, L.xsq = act->rms_norm ? act->xsq : nullptr;
    L.next = next;
    for (int i = 0; i < n; ++i) {
        const GpuWeight& wi = *w[i];
        if (wi.dense || wi.fmt != w0.fmt || wi.group != w0.group || wi.supers != w0.supers)
            fail("cuda gemv_multi: weights of one launch must share format, group and width");
        I8Problem& p = L.prob[i];
        for (int k = 0; k < 4; ++k) p.planes[k] = static_cast<const uint4*>(wi.planes[k]);
        p.coefs = static_cast<const uint4*>(wi.coefs);
        p.y = y[i], p.rows = int(wi.rows), p.tiles = int(wi.tiles);
    }
    const int gp = w0.group / i8_min_group(plane_bits(w0.fmt, 0));
    switch (w0.fmt) {
        case kInt2: return launch_i8_fmt<kInt2>(L, gp, a64, s);
        case kInt4: return launch_i8_fmt<kInt4>(L, gp, a64, s);
        case kTrit: return launch_i8_fmt<kTrit>(L, gp, a64, s);
        case kBit2: return launch_i8_fmt<kBit2>(L, gp, a64, s);
        case kBit3: return launch_i8_fmt<kBit3>(L, gp, a64, s);
        case kBit4: return launch_i8_fmt<kBit4>(L, gp, a64, s);
    }
    fail("cuda gemv (int8): format without an int8 kernel");
}

}  // namespace

}  // namespace planeq::cuda
