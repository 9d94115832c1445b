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
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/plane_decode.cuh"
#include "kernels/cuda/plane_layout.hpp"

namespace planeq::cuda {

namespace {

constexpr int kI8MaxBatch = 4;

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

struct I8Launch {
    I8Problem prob[3];
    int nprob, supers, groups_pad, batch, cols;
    int l2_prefetch;
    const uint4* xq8;
    const float2* xsc;
    const float* xsq;  // per-(token, group) Σ x², or null: with it, y = W x / rms(x)
};

// GP: word pairs per group (group = GP · 128/b columns). WARPS: warps per block (one 16-row tile); fewer warps
// per tile give each warp more superchunks, so its fixed costs (setup, the first load's latency, the
// block reduction) are spread over more weights (DecodeOptions::i8_warps).
template <int F, int GP, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) i8_gemv_kernel(const I8Launch L) {
    constexpr int P = plane_count(F), B = plane_bits(F, 0), T = 4 / B, NP = 2 * B, GS = NP / GP;
    constexpr int CW = coef_block_bytes(F, GS) / 4;
    static_assert(GS * GP == NP, "a group is a whole number of word pairs");
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

    struct Buf {
        uint32_t w[P][4 * B];
        uint32_t c[CW];
        uint32_t xb[16];  // this lane's B fragments for the superchunk's 8 MMAs (b0, b1 each)
        float2 xs[GS];    // token t: (s, Σ x̂) per group
    };
    // Item it of this warp is superchunk warp + WARPS·it: base pointers once, then constant strides (the
    // per-item 64-bit index arithmetic was half of the loop's instructions in the first version's SASS).
    const uint4* wbase[P];
#pragma unroll
    for (int p = 0; p < P; ++p) wbase[p] = pr.planes[p] + ((int64_t(T0) * L.supers + warp) * 32 + lane) * B;
    const uint4* cbase = pr.coefs + ((int64_t(T0) * L.supers + warp) * 8 + g) * (CW / 4);
    auto load_w = [&](Buf& d, int it) {
#pragma unroll
        for (int p = 0; p < P; ++p) {
            const uint4* src = wbase[p] + it * (WARPS * 32 * B);
#pragma unroll
            for (int v = 0; v < B; ++v) {
                const uint4 u = __ldg(src + v);
                d.w[p][4 * v] = u.x, d.w[p][4 * v + 1] = u.y, d.w[p][4 * v + 2] = u.z, d.w[p][4 * v + 3] = u.w;
            }
        }
        const uint4* cs = cbase + it * (WARPS * 8 * (CW / 4));
#pragma unroll
        for (int v = 0; v < CW / 4; ++v) {
            const uint4 u = __ldg(cs + v);
            d.c[4 * v] = u.x, d.c[4 * v + 1] = u.y, d.c[4 * v + 2] = u.z, d.c[4 * v + 3] = u.w;
        }
    };
    // Lanes past the batch's B columns (g ≥ 2·batch) and tokens (t ≥ batch) hold zeros.
    const bool bvalid = g < 2 * L.batch, tvalid = t < L.batch;
    const uint4* xbase = L.xq8 + ((int64_t(warp) * 2 * L.batch + g) * 4 + t) * (kI8LaneBytes / 16);
    const int xstride = WARPS * 2 * L.batch * 4 * (kI8LaneBytes / 16);
    const float2* sbase = L.xsc + int64_t(t) * L.groups_pad + warp * GS;
    auto load_x = [&](Buf& d, int it) {
        const uint4* src = xbase + it * xstride;
#pragma unroll
        for (int v = 0; v < 4; ++v) {
            const uint4 u = bvalid ? __ldg(src + v) : make_uint4(0, 0, 0, 0);
            d.xb[4 * v] = u.x, d.xb[4 * v + 1] = u.y, d.xb[4 * v + 2] = u.z, d.xb[4 * v + 3] = u.w;
        }
        const float2* xs = sbase + it * (WARPS * GS);
#pragma unroll
        for (int gs = 0; gs < GS; ++gs) d.xs[gs] = tvalid ? __ldg(xs + gs) : make_float2(0.0f, 0.0f);
    };

    float yacc[2] = {0.0f, 0.0f};  // rows g and g + 8, token t
    auto compute = [&](const Buf& d) {
        int acc[P][T][4];
#pragma unroll
        for (int pp = 0; pp < NP; ++pp) {
            if (pp % GP == 0) {
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
                    imma16832(acc[p][tau], w0 & mg, w0 & mg8, w1 & mg, w1 & mg8, d.xb[2 * m], d.xb[2 * m + 1]);
                }
            }
            if (pp % GP == GP - 1) {  // end of a group: combine the MMA types, apply the coefficients
                const int gs = pp / GP;
                float cf[2][4], bias[2];
                unpack_coefs<F, CW>(d.c, gs, 0, cf[0], bias[0]);
                unpack_coefs<F, CW>(d.c, gs, 1, cf[1], bias[1]);
                const float2 xs = d.xs[gs];
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    // Horner over the types gives 2^(8−2b) (row g) or 2^(8−b) (row g + 8) times the sum.
                    const float sc = xs.x * (h == 0 ? 1.0f / float(1 << (8 - 2 * B)) : 1.0f / float(1 << (8 - B)));
                    float v = bias[h] * xs.y;
#pragma unroll
                    for (int p = 0; p < P; ++p) {
                        int vh = 0, vl = 0;
#pragma unroll
                        for (int tau = 0; tau < T; ++tau) {
                            vh = vh * (1 << (2 * B)) + acc[p][tau][2 * h];
                            vl = vl * (1 << (2 * B)) + acc[p][tau][2 * h + 1];
                        }
                        v = fmaf(cf[h][p] * sc, fmaf(float(vl), 1.0f / 254.0f, float(vh)), v);
                    }
                    yacc[h] += v;
                }
            }
        }
    };

    auto ok = [&](int it) { return warp + WARPS * it < L.supers; };
    Buf b0, b1;
    if (ok(0)) load_w(b0, 0);
    pdl_wait();  // from here on: activations (an earlier kernel's output) and y
    if (ok(0)) load_x(b0, 0);

    __shared__ float inv_rms[kI8MaxBatch];
    __shared__ float red[WARPS][2][32];
    if (L.xsq) {
        for (int n = warp; n < L.batch; n += WARPS) {
            float s2 = 0;
            for (int j = lane; j < L.groups_pad; j += 32) s2 += __ldg(L.xsq + int64_t(n) * L.groups_pad + j);
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s2 += __shfl_xor_sync(0xffffffffu, s2, o);
            if (lane == 0) inv_rms[n] = rsqrtf(s2 / float(L.cols) + 1e-5f);
        }
    }
    // Two buffers, the loop unrolled by two so that neither is copied.
    for (int it = 0; ok(it); it += 2) {
        if (ok(it + 1)) load_w(b1, it + 1), load_x(b1, it + 1);
        compute(b0);
        if (ok(it + 2)) load_w(b0, it + 2), load_x(b0, it + 2);
        if (ok(it + 1)) compute(b1);
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
}

__device__ __forceinline__ float act_at(const float* x, const float* up, int64_t i) {
    const float a = x[i];
    return up ? a / (1.0f + __expf(-a)) * up[i] : a;
}

// One warp per (token, group): the group's scale, h and l scattered into the permuted B order, the sums.
template <int BITS>
__global__ void i8_prep_kernel(const float* __restrict__ x, const float* __restrict__ up, int cols, int batch, int group,
                               int groups_pad, int8_t* __restrict__ xq8, float2* __restrict__ xsc, float* __restrict__ xsq) {
    pdl_launch_dependents();
    pdl_wait();  // x is the previous kernel's output, and xq8 may still be read by the previous GEMV
    const int wid = int(blockIdx.x) * (blockDim.x / 32) + int(threadIdx.x / 32), lane = threadIdx.x & 31;
    if (wid >= batch * groups_pad) return;
    const int n = wid / groups_pad, j = wid % groups_pad, per = group / 32;
    float a[8], amax = 0.0f, s2 = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        a[i] = 0.0f;
        const int c = j * group + i * 32 + lane;
        if (i < per && c < cols) a[i] = act_at(x, up, int64_t(n) * cols + c);
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
        const I8Slot slot = i8_col_byte(BITS, c % kSuperCols);
        int8_t* dst = xq8 + ((int64_t(c / kSuperCols) * 2 * batch + 2 * n) * 4 + slot.t) * kI8LaneBytes + slot.offset;
        dst[0] = int8_t(hq);
        dst[4 * kI8LaneBytes] = int8_t(lq);  // B column 2n + 1: the next 4 lanes' blocks
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        sh += __shfl_xor_sync(0xffffffffu, sh, o);
        sl += __shfl_xor_sync(0xffffffffu, sl, o);
        s2 += __shfl_xor_sync(0xffffffffu, s2, o);
    }
    if (lane == 0) xsc[wid] = make_float2(s, s * (sh + sl * (1.0f / 254.0f))), xsq[wid] = s2;
}

template <int F, int GP>
void launch_i8(const I8Launch& L, cudaStream_t s) {
    int blocks = 0;
    I8Launch l = L;
    for (int i = 0; i < l.nprob; ++i) l.prob[i].block_begin = blocks, blocks += l.prob[i].tiles;
    // Automatic: 4 warps per tile when the launch has enough tiles to fill the GPU several times over at
    // 4 warps (gate/up: 1792 tiles), else 8 (q/o, q/k/v, down: 256–384 tiles, where 4 warps leave SMs short of
    // warps). Measured per shape at K = 4096: gate/up 7.8 µs at 4 warps vs 8.8 at 8; q/o 4.1 vs 3.1; down
    // (K = 14336) 10.9 vs 7.0 (docs/cuda.md).
    static const int sms = [] {
        int dev = 0, n = 0;
        PLANEQ_CUDA_CHECK(cudaGetDevice(&dev));
        PLANEQ_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
        return n;
    }();
    const int opt = decode_options().i8_warps;
    const int warps = opt == 4 || opt == 8 ? opt : blocks >= 4 * sms ? 4 : 8;
    if (warps == 4) launch_pdl(i8_gemv_kernel<F, GP, 4>, dim3(blocks), dim3(4 * 32), 0, s, l);
    else launch_pdl(i8_gemv_kernel<F, GP, 8>, dim3(blocks), dim3(8 * 32), 0, s, l);
}

template <int F>
void launch_i8_fmt(const I8Launch& L, int gp, cudaStream_t s) {
    switch (gp) {
        case 1: return launch_i8<F, 1>(L, s);
        case 2: return launch_i8<F, 2>(L, s);
        case 4: if constexpr (plane_bits(F, 0) >= 2) return launch_i8<F, 4>(L, s); break;
        case 8: if constexpr (plane_bits(F, 0) == 4) return launch_i8<F, 8>(L, s); break;
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

// Called by gemv_planes (gemv_planes.cu) for a buffer prepared by prepare_act_i8.
void gemv_i8(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, int batch, cudaStream_t s) {
    const GpuWeight& w0 = *w[0];
    if (!int8_decode_path(w0, batch) || plane_bits(w0.fmt, 0) != act->i8_bits)
        fail("cuda gemv: the activation buffer was prepared for the int8 path of another weight layout");
    I8Launch L{};
    L.nprob = n, L.supers = int(w0.supers), L.groups_pad = int(w0.groups_pad), L.batch = batch, L.cols = int(act->cols);
    L.l2_prefetch = decode_options().l2_prefetch ? 1 : 0;
    L.xq8 = reinterpret_cast<const uint4*>(act->xq8), L.xsc = act->xsc, L.xsq = act->rms_norm ? act->xsq : nullptr;
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
        case kInt2: return launch_i8_fmt<kInt2>(L, gp, s);
        case kInt4: return launch_i8_fmt<kInt4>(L, gp, s);
        case kTrit: return launch_i8_fmt<kTrit>(L, gp, s);
        case kBit2: return launch_i8_fmt<kBit2>(L, gp, s);
        case kBit3: return launch_i8_fmt<kBit3>(L, gp, s);
        case kBit4: return launch_i8_fmt<kBit4>(L, gp, s);
    }
    fail("cuda gemv (int8): format without an int8 kernel");
}

}  // namespace planeq::cuda
