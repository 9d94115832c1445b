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
//   silu(gate)·up and the RMS scale (Σ x² of the prepared input) are applied here too. With DecodeOptions::bw_act8
//   (template flag A8) x ≈ s·h only, quantized exactly as the CPU's GEMVs quantize it: one dp4a per 4 weights, the
//   CPU kernels' int sums, ~5e-3 from f32 instead of ~2e-5 (docs/cuda.md, seventh round).
// Work split: a block of 16 warps owns WR 32-row blocks; the 16/WR warps of one row block interleave over 256-column
// iterations and reduce through shared memory (deterministic, no atomics). With a split S > 1 the S blocks of one
// thread-block cluster share the row blocks and each takes 1/S of the columns: it stages and quantizes only its own
// slice of x (down's 14336 columns were quantized whole by each of its 128 blocks), and the S partial sums meet in
// distributed shared memory (fixed order: still deterministic).
// The MLP pairs up (gemv_bw_pair): gate/up runs as 64-row tiles holding the same rows of both, so a block has
// silu(gate)·up of 64 consecutive columns of down's input and quantizes them in its epilogue; down then copies int8
// h, l and the records (2 bytes a column, not 8 of f32 x and up) and skips the quantization. For int b=2 (down's g ≥ 64,
// hi/lo; DecodeOptions::bw_down_i8) the epilogue writes the int8 path's layout instead and down runs on gemv_i8.cu.
#include <cooperative_groups.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "kernels/cuda/bw_common.cuh"
#include "kernels/cuda/cuda_gemv.hpp"
#include "kernels/cuda/gpu_weight.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/plane_layout.hpp"

namespace planeq::cuda {

namespace {

using namespace bw;

constexpr int kBwWarps = 16;

struct BwProblem {
    const uint4* codes;
    const uint8_t* coefs;
    float* y;
    int rows, rbs, block_begin;  // rbs: 32-row blocks; block_begin: in tiles (S blocks = one cluster a tile)
};

// An activation quantized in groups of GA columns for this kernel (ActBuffer::bwq): h, l int8 [cols], per group
// (s/254, X = Σ(254h + l) as int bits), and Σ x² per 64 columns (for an RMS scale).
struct BwQuantized {
    const int8_t* h = nullptr;
    const int8_t* l = nullptr;
    const float2* rec = nullptr;
    const float* s2 = nullptr;
};
struct BwPair {
    int8_t* h = nullptr;
    int8_t* l = nullptr;
    float2* rec = nullptr;
    float* s2 = nullptr;
    int ga = 64;    // the consumer's activation group (32 or 64)
    int store = 1;  // also store gate and up themselves
    // DecodeOptions::bw_down_i8: the consumer is the int8 path's GEMV (gemv_i8.cu) instead: h, l in its B-fragment
    // layout (ActBuffer::xq8: [supers][h, l][4 lanes t][64 B], plane_layout.hpp), records (s, Σ x̂) and Σ x² per
    // 64 columns (xsc, xsq)
    int i8 = 0;
    int8_t* xq8 = nullptr;
    float2* xsc = nullptr;
    float* xsq = nullptr;
};

struct BwLaunch {
    BwProblem prob[3];
    int nprob, cols, cols_pad, iters;  // iters: 256-column iterations (cols_pad / 256)
    int split, slice_pad;              // split S: blocks (a cluster) per tile; slice_pad: shared-memory columns a block
    const float* x;
    const float* up;  // silu(x) · up when set
    int rms, vec;     // rms: y = W x / rms(x); vec: x (and up, delta) 16-byte aligned with cols % 4 == 0
    float eps;        // the RMS scale's epsilon
    const float* delta;   // x + delta is the input (a residual add), stored to x_out by the first tile's blocks
    const float* norm_w;  // RMSNorm's weights: the quantized input is norm_w ⊙ (x + delta), the RMS over x + delta
    float* x_out;
    int l2pf;         // DecodeOptions::bw_l2: request the warp's later iterations from L2 at the start
    int skip;         // measurement only (PLANEQ_BW_SKIP, wrong results): 1 skips the quantization, 2 the weights
    bool a8;          // int8 activations only (DecodeOptions::bw_act8; a pre-quantized input: as its producer wrote it)
    BwQuantized xq;   // h set: the input arrives quantized (x, up unused)
    BwPair pair;      // h set: gate/up paired, the epilogue writes silu(gate)·up quantized here
};

// G: group size (32 … 256). WR: 32-row blocks per CTA (the 16/WR warps of each split its columns). 2 CTAs of 512
// threads an SM caps a thread at 64 registers: 32 warps an SM, each lane with up to 8 16-byte loads in flight.
// PQ: the input arrives quantized (BwLaunch::xq, written by a paired producer's epilogue) in groups of
// GA = min(G, 64) columns (a producer tile has 64 rows), so the int sums are applied every GA columns; otherwise the
// kernel quantizes x itself in groups of G: one application per weight group (GA = 64 in every kernel, together with
// the spills below, took the stack from 797 to 662 tokens/s). MODE: 0 plain, 1 PQ (WR = 1), 2 a paired gate/up
// producer (BwLaunch::pair, WR = 4); separate instantiations, since the paired row mapping cost the plain WR = 4
// kernel 80 bytes of spills. NORM: the input is a residual add + RMSNorm (BwLaunch::delta, norm_w, x_out), also its
// own instantiation: compiled into every kernel it cost the plain ones 20–40 bytes of spills and the stack 7%
// (821.7 → 765 tokens/s).
// A8: int8 activations only (x ≈ s·h, no l): one dp4a per 4 weights instead of two (DecodeOptions::bw_act8).
template <int F, int G, int WR, int MODE, bool NORM, bool A8>
__global__ void __launch_bounds__(kBwWarps * 32, 2) bw_gemv_kernel(const BwLaunch L) {
    constexpr bool PQ = MODE == 1, PAIR = MODE == 2;
    constexpr int WK = kBwWarps / WR, GPI = 256 / G, GA = PQ && G > 64 ? 64 : G, API = 256 / GA, V = GA / 32;
    static_assert(!PAIR || WR == 4, "a paired tile is 2 row blocks of gate and 2 of up");
    constexpr int NREC = BwFmt<F>::NREC, RB = BwFmt<F>::RB, LB = GPI * RB;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wr = warp % WR, wk = warp / WR;
    pdl_launch_dependents();

    // Tile (WR row blocks × all columns) and this block's column slice [it0, it1) of it, in 256-column iterations.
    const int S = L.split, sp = int(blockIdx.x) % S, tile = int(blockIdx.x) / S;  // sp = the rank in the cluster
    const int it0 = sp * L.iters / S, it1 = (sp + 1) * L.iters / S, nit = it1 - it0;
    int q = 0, rb;
    if constexpr (PAIR) {  // gate/up paired (WR = 4): warps 0, 1 gate's row blocks 2·tile + 0, 1; warps 2, 3 up's
        q = wr >> 1, rb = 2 * tile + (wr & 1);
    } else {
#pragma unroll
        for (int i = 1; i < 3; ++i)
            if (i < L.nprob && tile >= L.prob[i].block_begin) q = i;
        rb = (tile - L.prob[q].block_begin) * WR + wr;  // this warp's 32-row block
    }
    const BwProblem& pr = PAIR ? (q ? L.prob[1] : L.prob[0]) : L.prob[q];  // a select, not an index, when paired
    const bool rows_ok = rb < pr.rbs;

    // Shared memory: the slice of x (and up) as f32 [slice_pad] each (not with a pre-quantized input), then h, l
    // [slice_pad] int8, then the per-GA-group records; indices are relative to the slice's first column.
    extern __shared__ __align__(16) uint8_t sm[];
    float* xf = reinterpret_cast<float*>(sm);
    float* uf = xf + (PQ ? 0 : L.slice_pad);  // only with up
    int8_t* xh = reinterpret_cast<int8_t*>(uf + (PQ || !L.up ? 0 : L.slice_pad));
    int8_t* xl = xh + L.slice_pad;
    float2* gsc = reinterpret_cast<float2*>(xl + L.slice_pad);  // per GA group: (s / 254, X = 254·Σh + Σl as int bits)
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
    if (rows_ok && wk < nit) load(b0, it0 + wk);
    if (rows_ok && wk + WK < nit) load(b1, it0 + wk + WK);
    // The warp's later iterations (codes 2 KB, coefficients NREC·32·LB bytes each, contiguous) requested from L2 now,
    // one bulk prefetch per chunk, a lane per iteration: with one iteration in registers ahead, 16–32 warps an SM
    // keep too few bytes in flight for HBM's latency, so the rest of the warp's share should already be on its way.
    if (L.l2pf && rows_ok)
        for (int it = it0 + wk + (lane + 1) * WK; it < it1; it += 32 * WK) {
            asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(cbase - lane + it * 4 * 32), "r"(2048) : "memory");
            asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(fbase - lane * LB + int64_t(it) * NREC * 32 * LB),
                         "r"(NREC * 32 * LB) : "memory");
        }
    pdl_wait();

    const int ns = nit * 256, cb = it0 * 256;  // the slice's columns and its first
    if constexpr (PQ) {
        // ---- a pre-quantized input (written by the producer's epilogue): copy the slice's h, l and records ----
        constexpr int NV = A8 ? 1 : 2;  // h (and l)
        const int n16 = ns / 16, nr = ns / GA;
        for (int i = int(threadIdx.x); i < NV * n16 + nr; i += kBwWarps * 32) {
            if (i < NV * n16) {
                const int k = i < n16 ? i : i - n16;
                const uint4 v = __ldcg(reinterpret_cast<const uint4*>((i < n16 ? L.xq.h : L.xq.l) + cb) + k);
                reinterpret_cast<uint4*>(i < n16 ? xh : xl)[k] = v;
            } else {
                gsc[i - NV * n16] = __ldcg(L.xq.rec + cb / GA + (i - NV * n16));
            }
        }
        if (warp == 0) {  // Σ x² of the whole input (the RMS scale): the producer's per-tile sums, fixed order
            float t = 0.0f;
            if (L.rms)
                for (int i = lane; i < L.cols / 64; i += 32) t += __ldcg(L.xq.s2 + i);
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
            s2w[0] = sp == 0 ? t : 0.0f;  // the whole input's: a split's rank sum must count it once
        } else if (lane == 0) {
            s2w[warp] = 0.0f;
        }
        __syncthreads();
    } else if (L.skip != 1) {
        // ---- the activation: every block quantizes its slice into shared memory ----
        // First x (and up) into shared memory as f32 with all of a thread's loads in flight at once (a warp per group
        // straight from global memory paid one L2 round trip per group), then a warp per group from shared memory.
        // Loads a thread keeps in flight: 8 spilled with two weight iterations in registers; with the residual add
        // each x load has a delta load beside it, so half as many x.
        constexpr int U = NORM ? 2 : 4;
        if (L.vec) {  // 16-byte loads; cols % 4 == 0
            const int n4 = ns / 4, total = L.up ? 2 * n4 : n4, c4 = L.cols / 4;
            for (int i0 = int(threadIdx.x); i0 < total; i0 += U * kBwWarps * 32) {
                float4 v[U];
#pragma unroll
                for (int k = 0; k < U; ++k) {
                    const int i = i0 + k * kBwWarps * 32, c = i < n4 ? i : i - n4;  // i ≥ n4: up
                    v[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                    if (i < total && cb / 4 + c < c4) {
                        v[k] = __ldcg(reinterpret_cast<const float4*>(i < n4 ? L.x : L.up) + cb / 4 + c);
                        if (NORM && L.delta && i < n4) {  // the residual add: x + delta, kept by the first tile
                            const float4 d = __ldcg(reinterpret_cast<const float4*>(L.delta) + cb / 4 + c);
                            v[k].x += d.x, v[k].y += d.y, v[k].z += d.z, v[k].w += d.w;
                        }
                        if (NORM && L.x_out && i < n4 && tile == 0) reinterpret_cast<float4*>(L.x_out)[cb / 4 + c] = v[k];
                    }
                }
#pragma unroll
                for (int k = 0; k < U; ++k) {
                    const int i = i0 + k * kBwWarps * 32;
                    if (i < total) reinterpret_cast<float4*>(i < n4 ? xf : uf)[i < n4 ? i : i - n4] = v[k];
                }
            }
        } else {
            const int n = L.up ? 2 * ns : ns;
            for (int i0 = int(threadIdx.x); i0 < n; i0 += U * kBwWarps * 32) {
                float v[U];
#pragma unroll
                for (int k = 0; k < U; ++k) {
                    const int i = i0 + k * kBwWarps * 32, c = i < ns ? i : i - ns;
                    v[k] = i < n && cb + c < L.cols ? __ldcg((i < ns ? L.x : L.up) + cb + c) : 0.0f;
                    if (i < ns && cb + c < L.cols) {
                        if (NORM && L.delta) v[k] += __ldcg(L.delta + cb + c);
                        if (NORM && L.x_out && tile == 0) L.x_out[cb + c] = v[k];
                    }
                }
#pragma unroll
                for (int k = 0; k < U; ++k) {
                    const int i = i0 + k * kBwWarps * 32;
                    if (i < n) (i < ns ? xf : uf)[i < ns ? i : i - ns] = v[k];
                }
            }
        }
        __syncthreads();
        // All groups, a warp per group, then one barrier. (Tried: with one 32-row block a CTA its warps own disjoint
        // iterations, so each could quantize its own groups just before using them, no barrier: the stack got 3%
        // slower; the loop then holds both weight buffers and the quantizer's registers at once and spills.)
        float s2 = 0.0f;
        for (int j = warp; j < nit * API; j += kBwWarps) {
            const int c0 = j * GA + lane * V;
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
#pragma unroll
            for (int i = 0; i < V; ++i) s2 = fmaf(a[i], a[i], s2);
            if (NORM && L.norm_w) {  // RMSNorm's weights on the input; the RMS itself is of x + delta (s2 above)
#pragma unroll
                for (int i = 0; i < V; ++i) a[i] = cb + c0 + i < L.cols ? a[i] * __ldg(L.norm_w + cb + c0 + i) : 0.0f;
            }
            uint32_t ph[(V + 3) / 4], pl[(V + 3) / 4];
            int X;
            float amax;
            quant_lanes<V, 32, A8>(a, ph, pl, X, amax);
            if constexpr (V == 1) {
                xh[c0] = int8_t(ph[0]), xl[c0] = int8_t(pl[0]);
            } else if constexpr (V == 2) {
                *reinterpret_cast<uint16_t*>(xh + c0) = uint16_t(ph[0]), *reinterpret_cast<uint16_t*>(xl + c0) = uint16_t(pl[0]);
            } else {
#pragma unroll
                for (int i = 0; i < V / 4; ++i)
                    reinterpret_cast<uint32_t*>(xh + c0)[i] = ph[i], reinterpret_cast<uint32_t*>(xl + c0)[i] = pl[i];
            }
            if (lane == 0) gsc[j] = act_record<A8>(amax, X);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s2 += __shfl_xor_sync(0xffffffffu, s2, o);
        if (lane == 0) s2w[warp] = s2;
        __syncthreads();
    } else {
        if (lane == 0) s2w[warp] = 0.0f;
        __syncthreads();
    }

    // ---- the weights ----
    float yacc = 0.0f;
    auto compute = [&](const Buf& b, int it) {
        bw::iteration<F, G, GA, A8>(b.w, b.c, xh + (it - it0) * 256, xl + (it - it0) * 256, gsc + (it - it0) * API, yacc);
    };
    if (rows_ok && L.skip != 2) {
        // Two buffers, the loop unrolled by two so that neither is copied: a buffer is refilled (two iterations
        // ahead) as soon as it has been used, so one iteration's loads are in flight while the other computes.
        for (int it = it0 + wk; it < it1; it += 2 * WK) {
            compute(b0, it);
            if (it + 2 * WK < it1) load(b0, it + 2 * WK);
            if (it + WK < it1) {
                compute(b1, it + WK);
                if (it + 3 * WK < it1) load(b1, it + 3 * WK);
            }
        }
    }

    red[wk][wr * 32 + lane] = yacc;
    __syncthreads();
    auto rms_scale = [&](float t) { return L.rms ? rsqrtf(t / float(L.cols) + L.eps) : 1.0f; };
    if (S == 1) {
        float t = 0.0f;
#pragma unroll
        for (int w = 0; w < kBwWarps; ++w) t += s2w[w];
        if (threadIdx.x < WR * 32) {
            float s = 0.0f;
#pragma unroll
            for (int k = 0; k < WK; ++k) s += red[k][threadIdx.x];
            s *= rms_scale(t);
            int row;
            float* y;
            if constexpr (PAIR) {  // threads 0–63 gate's rows 64·tile + i, 64–127 up's
                y = threadIdx.x < 64 ? L.prob[0].y : L.prob[1].y, row = 64 * tile + (threadIdx.x & 63);
                if (!L.pair.store) y = nullptr;
                red[0][threadIdx.x] = s;  // each thread rewrites only its own column of red
            } else {
                y = pr.y, row = (tile - pr.block_begin) * WR * 32 + int(threadIdx.x);
            }
            if (y && (PAIR || row < pr.rows)) y[row] = s;  // paired: rows a multiple of 64
        }
        if constexpr (PAIR) {
            // The epilogue of a paired gate/up: silu(gate)·up of this tile's 64 rows, quantized for the next GEMV
            // (down) in groups of pair.ga (its GA) by warp 0, 2 values a lane, with the tile's Σ a² for an RMS scale.
            __syncthreads();
            if (warp == 0) {
                float a[2];
#pragma unroll
                for (int i = 0; i < 2; ++i) {
                    const float g = red[0][2 * lane + i], u = red[0][64 + 2 * lane + i];
                    a[i] = __fdividef(g, 1.0f + __expf(-g)) * u;
                }
                float s2 = fmaf(a[0], a[0], a[1] * a[1]);
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) s2 += __shfl_xor_sync(0xffffffffu, s2, o);
                uint32_t ph[1], pl[1];
                int X;
                float amax;
                if (L.pair.ga == 64) quant_lanes<2, 32, A8>(a, ph, pl, X, amax);
                else quant_lanes<2, 16, A8>(a, ph, pl, X, amax);
                const int c = 64 * tile + 2 * lane;
                if (!A8 && L.pair.i8) {  // the int8 path's layout, one 64-column group a tile
#pragma unroll
                    for (int i = 0; i < 2; ++i) {
                        int8_t* d = L.pair.xq8 + i8_act_byte(2, c + i, 1, 0);
                        d[0] = int8_t(ph[0] >> (8 * i)), d[kI8LoBytes] = int8_t(pl[0] >> (8 * i));
                    }
                    if (lane == 0) {
                        const float s = amax * (1.0f / 127.0f);
                        L.pair.xsc[tile] = make_float2(s, s * (1.0f / 254.0f) * float(X)), L.pair.xsq[tile] = s2;
                    }
                } else {
                    *reinterpret_cast<uint16_t*>(L.pair.h + c) = uint16_t(ph[0]);
                    if (!A8) *reinterpret_cast<uint16_t*>(L.pair.l + c) = uint16_t(pl[0]);
                    if (lane % (L.pair.ga / 2) == 0) L.pair.rec[c / L.pair.ga] = act_record<A8>(amax, X);
                    if (lane == 0) L.pair.s2[tile] = s2;
                }
            }
        }
        return;
    }
    // Split: each block's partial row sums into red[0], then rank r finishes rows ≡ r (mod S), summing the S partials
    // (and the S blocks' Σ x² for the RMS scale) in rank order through distributed shared memory.
    if (threadIdx.x < WR * 32) {
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < WK; ++k) s += red[k][threadIdx.x];
        red[0][threadIdx.x] = s;  // each thread rewrites only its own column of red
    }
    if (threadIdx.x == 0) {
        float t = 0.0f;
#pragma unroll
        for (int w = 0; w < kBwWarps; ++w) t += s2w[w];
        s2w[0] = t;
    }
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();  // every block's partials written (release / acquire across the cluster)
    if (threadIdx.x < WR * 32 && int(threadIdx.x) % S == sp) {
        float s = 0.0f, t = 0.0f;
        for (int r = 0; r < S; ++r) {
            s += cluster.map_shared_rank(&red[0][0], r)[threadIdx.x];
            t += cluster.map_shared_rank(&s2w[0], r)[0];
        }
        s *= rms_scale(t);
        const int row = (tile - pr.block_begin) * WR * 32 + int(threadIdx.x);
        if (row < pr.rows) pr.y[row] = s;
    }
    cluster.sync();  // no block leaves while another may still read its shared memory
}

template <int F, int G, int WR, int MODE, bool NORM, bool A8>
void launch_bw(const BwLaunch& L, int blocks, cudaStream_t s) {
    constexpr bool PQ = MODE == 1;
    constexpr int GA = PQ && G > 64 ? 64 : G;
    const size_t smem = size_t(L.slice_pad) * (PQ ? 2 : L.up ? 10 : 6) + size_t(L.slice_pad / GA) * sizeof(float2);
    static const bool raised = [] {  // above 48 KB a kernel must opt in (once per instantiation): > 8K columns
        PLANEQ_CUDA_CHECK(cudaFuncSetAttribute(bw_gemv_kernel<F, G, WR, MODE, NORM, A8>, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
        return true;
    }();
    (void)raised;
    launch_pdl_cluster(bw_gemv_kernel<F, G, WR, MODE, NORM, A8>, dim3(blocks), dim3(kBwWarps * 32), smem, s, L.split, L);
}

// A plain launch (MODE 0) by its 32-row blocks per CTA.
template <int F, int G, bool NORM, bool A8>
void launch_bw_plain(const BwLaunch& L, int wr, int blocks, cudaStream_t s) {
    if (wr == 4) launch_bw<F, G, 4, 0, NORM, A8>(L, blocks, s);
    else if (wr == 2) launch_bw<F, G, 2, 0, NORM, A8>(L, blocks, s);
    else launch_bw<F, G, 1, 0, NORM, A8>(L, blocks, s);
}

template <int F, int G, bool A8>
void launch_bw_wr(BwLaunch L, int wr, cudaStream_t s) {
    int tiles = 0;
    for (int i = 0; i < L.nprob; ++i) L.prob[i].block_begin = tiles, tiles += (L.prob[i].rbs + wr - 1) / wr;
    if (L.pair.h) tiles = L.prob[0].rbs / 2;  // paired gate/up (WR 4): a tile is 64 rows of both
    const int blocks = tiles * L.split;
    if (L.xq.h) {  // a pre-quantized input: one row block a CTA (down's shape), the instantiations kept few
        if (wr != 1) fail("cuda gemv (bw): a pre-quantized input takes one row block a CTA");
        return launch_bw<F, G, 1, 1, false, A8>(L, blocks, s);
    }
    const bool norm = L.delta || L.norm_w || L.x_out;
    if (L.pair.h) {
        if (wr != 4 || L.split != 1) fail("cuda gemv (bw): a paired gate/up takes 4 row blocks a CTA, no split");
        return norm ? launch_bw<F, G, 4, 2, true, A8>(L, blocks, s) : launch_bw<F, G, 4, 2, false, A8>(L, blocks, s);
    }
    if (norm) launch_bw_plain<F, G, true, A8>(L, wr, blocks, s);
    else launch_bw_plain<F, G, false, A8>(L, wr, blocks, s);
}

template <int F, bool A8>
void launch_bw_g(const BwLaunch& L, int group, int wr, cudaStream_t s) {
    switch (group) {
        case 32: return launch_bw_wr<F, 32, A8>(L, wr, s);
        case 64: return launch_bw_wr<F, 64, A8>(L, wr, s);
        case 128: return launch_bw_wr<F, 128, A8>(L, wr, s);
        case 256: return launch_bw_wr<F, 256, A8>(L, wr, s);
    }
    fail("cuda gemv (bw): bad group size");
}

// The pre-quantized activation region of an ActBuffer (ActBuffer::bwq): h [cols_pad], l [cols_pad], records
// [cols_pad / 32] (a group of GA ≥ 32 columns each), Σ x² [cols_pad / 64].
BwPair bw_region(const ActBuffer& a) {
    BwPair r;
    r.h = a.bwq, r.l = a.bwq + a.max_cols;
    r.rec = reinterpret_cast<float2*>(a.bwq + 2 * a.max_cols);
    r.s2 = reinterpret_cast<float*>(a.bwq + 2 * a.max_cols + a.max_cols / 32 * sizeof(float2));
    return r;
}
BwQuantized bw_quantized(const ActBuffer& a) {
    const BwPair r = bw_region(a);
    return BwQuantized{r.h, r.l, r.rec, r.s2};
}

}  // namespace

bool bw_decode_path(const GpuWeight& w, int batch) {
    // ≤ 16384 columns: x and up are staged in shared memory as f32 (10 bytes a column with h and l)
    return batch == 1 && !w.dense && w.bw_codes != nullptr && w.supers * kSuperCols <= 16384 && decode_options().bw;
}

namespace {

// The launch record for `n` weights reading `act` (everything but the CTA shape).
BwLaunch make_launch(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act) {
    const GpuWeight& w0 = *w[0];
    BwLaunch L{};
    L.nprob = n, L.cols = int(act->cols), L.cols_pad = int(act->cols_pad), L.iters = int(w0.supers);
    L.x = act->bw_x, L.up = act->bw_up, L.rms = act->rms_norm ? 1 : 0, L.eps = act->bw_eps;
    L.delta = act->bw_delta, L.norm_w = act->bw_norm_w, L.x_out = act->bw_x_out;
    L.a8 = decode_options().bw_act8;
    if (act->bw_preq) {  // quantized by the producer's epilogue (gemv_bw_pair)
        if (act->bw_ga != std::min(w0.group, 64)) fail("cuda gemv (bw): the pre-quantized input has another group size");
        L.xq = bw_quantized(*act);
        L.a8 = act->bw_a8;
    }
    auto aligned = [](const float* p) { return p == nullptr || (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
    L.vec = aligned(L.x) && aligned(L.up) && aligned(L.delta) && aligned(L.x_out) && L.cols % 4 == 0;
    L.l2pf = decode_options().bw_l2 ? 1 : 0;
    static const int skip = [] {
        const char* v = std::getenv("PLANEQ_BW_SKIP");
        const int k = v ? std::atoi(v) : 0;
        // A timing knob that makes every result wrong: say so once, loudly, rather than let it pass silently.
        if (k != 0) std::fprintf(stderr, "warning: PLANEQ_BW_SKIP=%d: the bw GEMV skips work, outputs are WRONG (timing only)\n", k);
        return k;
    }();
    L.skip = skip;
    for (int i = 0; i < n; ++i) {
        const GpuWeight& wi = *w[i];
        if (!bw_decode_path(wi, 1) || wi.fmt != w0.fmt || wi.group != w0.group || wi.supers != w0.supers)
            fail("cuda gemv_multi (bw): weights of one launch must share format, group and width");
        BwProblem& p = L.prob[i];
        p.codes = static_cast<const uint4*>(wi.bw_codes), p.coefs = static_cast<const uint8_t*>(wi.bw_coefs);
        p.y = y[i], p.rows = int(wi.rows), p.rbs = int((wi.rows + 31) / 32);
    }
    return L;
}

void launch(BwLaunch& L, int group, int fmt, int wr, int split, cudaStream_t s) {
    L.split = split, L.slice_pad = (L.iters + split - 1) / split * 256;
    if (fmt == kInt2) L.a8 ? launch_bw_g<kInt2, true>(L, group, wr, s) : launch_bw_g<kInt2, false>(L, group, wr, s);
    else if (fmt == kBit2) L.a8 ? launch_bw_g<kBit2, true>(L, group, wr, s) : launch_bw_g<kBit2, false>(L, group, wr, s);
    else fail("cuda gemv (bw): format without a bw kernel");
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

// Called by gemv_planes (gemv_planes.cu) for a buffer prepare_act (or gemv_bw_pair) marked bw.
void gemv_bw(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, cudaStream_t s) {
    BwLaunch L = make_launch(w, y, n, act);
    int64_t rbs = 0;
    for (int i = 0; i < n; ++i) rbs += L.prob[i].rbs;
    // 32-row blocks per CTA: the most that still gives ≥ 1.5 CTAs an SM (gate/up: 4, 224 CTAs; q/k/v, o, down: 1,
    // 128–192 CTAs); more rows per CTA share one quantization of x among more weights.
    const int sms = sm_count();
    const int forced = decode_options().bw_rows, fsplit = decode_options().bw_split;
    int wr = forced == 1 || forced == 2 || forced == 4 ? forced : rbs >= 4 * 3 * sms / 2 ? 4 : rbs >= 2 * 3 * sms / 2 ? 2 : 1;
    if (L.xq.h) wr = 1;  // see launch_bw_wr
    // Column split (blocks a cluster): with fewer tiles than SMs and a wide input (down: 128 tiles on 132 SMs, 14336
    // columns) some SMs idle and each block stages a lot of x alone, so two blocks share a tile. Measured (docs/cuda.md):
    // split 2 helps down (11.9 → 9.4 µs; over a pre-quantized input the MLP 23.1 → 21.8 µs a layer) but not the
    // 4096-column o (4.3 → 4.5), and 4 or 8 (more blocks than fit at once, cluster scheduling) were slower everywhere.
    int tiles = 0;
    for (int i = 0; i < n; ++i) tiles += (L.prob[i].rbs + wr - 1) / wr;
    int split = fsplit == 1 || fsplit == 2 || fsplit == 4 || fsplit == 8 ? fsplit : tiles < sms && L.iters >= 32 ? 2 : 1;
    while (split > L.iters) split /= 2;  // at least one iteration a block; cluster sizes stay powers of two
    launch(L, w[0]->group, w[0]->fmt, wr, split, s);
}

bool gemv_bw_pair(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, int batch, cudaStream_t s,
                  const NextAct& next) {
    const DecodeOptions o = decode_options();
    if (!o.bw || !o.bw_pair || n != 2 || batch != 1 || !act || !act->bw || next.act == act || next.act == nullptr) return false;
    const int g = next.src, u = next.up_src;
    if (!((g == 0 && u == 1) || (g == 1 && u == 0))) return false;
    const GpuWeight &wg = *w[g], &wu = *w[u], &nw = *next.weight;
    const int64_t rows = wg.rows;
    if (!bw_decode_path(wg, 1) || !bw_decode_path(wu, 1) || !bw_decode_path(nw, 1) || wu.rows != rows || wu.fmt != wg.fmt ||
        wu.group != wg.group || wu.supers != wg.supers || rows % kSuperCols != 0 || nw.cols != rows || rows > next.act->max_cols)
        return false;
    // The 64-row tile of a 4-row-block CTA: gate's rows 64t … 64t + 63 and up's same rows (problems 0 and 1).
    const GpuWeight* wp[2] = {&wg, &wu};
    float* yp[2] = {y[g], y[u]};
    BwLaunch L = make_launch(wp, yp, 2, act);
    ActBuffer& a = *next.act;
    L.pair = bw_region(a);
    L.pair.ga = std::min(nw.group, 64);
    // down on the int8 path's GEMV (its input read as prepared B fragments, no staging, 8 warps a 16-row tile)
    const bool i8 = o.bw_down_i8 && !L.a8 && nw.fmt == kInt2 && nw.group % 64 == 0 && int8_decode_path(nw, 1);
    if (i8) L.pair.i8 = 1, L.pair.xq8 = a.xq8, L.pair.xsc = a.xsc, L.pair.xsq = a.xsq;
    launch(L, wg.group, wg.fmt, 4, 1, s);
    a.cols_pad = nw.supers * kSuperCols, a.cols = rows, a.batch = 1, a.group = nw.group, a.rms_norm = next.rms_norm;
    a.i8_bits = i8 ? 2 : 0, a.i8_ga = i8 ? 64 : 0, a.bw = !i8, a.bw_preq = !i8, a.bw_ga = L.pair.ga, a.bw_a8 = L.a8;
    a.bw_x = nullptr, a.bw_up = nullptr;
    a.clear_bw_norm();
    return true;
}

bool prepare_act_norm(ActBuffer& a, const float* x, const float* delta, const float* norm_w, float eps, float* x_out, int64_t cols,
                      int group, const GpuWeight& for_weight) {
    if (!decode_options().bw_norm || !bw_decode_path(for_weight, 1) || for_weight.group != group || norm_w == nullptr ||
        x_out == nullptr || x_out == x)
        return false;
    const int64_t cols_pad = (cols + kSuperCols - 1) / kSuperCols * kSuperCols;
    if (cols_pad > a.max_cols) fail("cuda gemv: activation buffer too small for " + std::to_string(cols) + " columns");
    a.cols_pad = cols_pad, a.cols = cols, a.batch = 1, a.group = group, a.rms_norm = true, a.i8_bits = 0;
    a.bw = true, a.bw_preq = false, a.bw_x = x, a.bw_up = nullptr;
    a.bw_delta = delta, a.bw_norm_w = norm_w, a.bw_x_out = x_out, a.bw_eps = eps;
    return true;
}

}  // namespace planeq::cuda
