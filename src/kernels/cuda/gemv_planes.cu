// The plane GEMV: y = W x for batch 1 … 16 on tensor cores (mma.sync m16n8k16, fp16 in, fp32 accumulate).
//
// Why tensor cores for a GEMV: at 2 bits a weight is a quarter byte, and the H200 streams ~16 bytes per
// clock per multiprocessor, i.e. ~66 weights per clock against 128 lane-instructions: under 2
// instructions per weight for decode + multiply + add. CUDA-core FMA decode does not fit (bitplane k=2
// needs two masked sums per weight). Here a weight costs half a LOP3 (two codes → fp16 pair via the
// exponent trick) + half an HADD2 (remove the magic offset), and the tensor core does the rest, for every
// plane format alike. The batch padding to n = 8 is free: the kernel is memory-bound.
//
// Work split: a block (8 warps) owns one row tile of 16 rows; its warps interleave over 256-column
// superchunks and reduce through shared memory at the end (no atomics, deterministic). Per group each
// warp folds its fp32 tile accumulators into the running sums with the group's coefficients.
#include <cuda_fp16.h>


#include "kernels/cuda/cuda_gemv.hpp"
#include "kernels/cuda/gpu_weight.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/plane_decode.cuh"

namespace planeq::cuda {

// The int8 path (gemv_i8.cu), for batch ≤ 4 where the format allows.
void prepare_act_i8(ActBuffer& a, const float* x, const float* up, int64_t cols, int batch, int group, int bits,
                    cudaStream_t s);
void gemv_i8(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, int batch, cudaStream_t s);
// The batch-1 bandwidth-first path (gemv_bw.cu): int b=2 / bitplane k=2, the prep inside the GEMV.
void gemv_bw(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, cudaStream_t s);

namespace {

constexpr int kWarps = 8;
constexpr int kPackedMaxBatch = 4;  // up to this many tokens, hi and lo share one MMA (MODE 0)

__device__ __forceinline__ void mma16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    const unsigned a = unsigned(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

struct PlaneProblem {
    const uint4* planes[4];
    const uint4* coefs;
    float* y;
    int rows, tiles, block_begin;
};

struct PlaneLaunch {
    PlaneProblem prob[3];
    int nprob, supers, groups_pad, batch;
    uint32_t expo[11];    // fp16-pair exponent of 2^(10−p) for bit position p (decode_pair)
    const uint4* xfrag;
    const float* xsum;
    const float* xsq;  // per-(token, group) Σ x², or null: with it, y = W x / rms(x) (RMSNorm's scale, fused)
    int cols;
    int l2_prefetch;   // request the block's whole weight tile from L2 at start (DecodeOptions)
};

// One warp = one 16-row tile × every 8th superchunk. Everything a superchunk needs (codes, coefficients,
// activation fragments and group sums) is loaded one superchunk ahead, so the k-step loop never waits on
// memory; KPG (k-steps per group) is a template so the loop has no branches. For ≤ 8 tokens the activation
// fragments go through shared memory by cp.async (per warp, double-buffered; no registers held while in
// flight); for 9–16 tokens they are loaded into registers at the top of each superchunk.
// MODE 0: ≤ 4 tokens, "packed": B column 2n holds token n's hi half and column 2n + 1 its lo half, so one
//         MMA per k-step does both halves of 4 tokens, and lane (g, t) ends with token t in C columns 2t, 2t+1.
// MODE 1: ≤ 8 tokens, one n-tile, hi and lo as two MMAs.   MODE 2: ≤ 16 tokens, two n-tiles.
template <int F, int MODE, int KPG>
__global__ void __launch_bounds__(kWarps * 32) plane_gemv_kernel(const PlaneLaunch L) {
    constexpr int NT = MODE == 0 ? 1 : MODE;
    constexpr bool PACK = MODE == 0, STAGED = MODE <= 1;
    constexpr int P = plane_count(F);
    constexpr int GS = 16 / KPG;                                  // groups per superchunk
    constexpr int CW = coef_block_bytes(F, GS) / 4;               // coefficient words per lane
    constexpr int WORDS = 16;                                     // per plane per lane (a b-bit plane uses 4b)
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    pdl_launch_dependents();

    int q = 0;
#pragma unroll
    for (int i = 1; i < 3; ++i)
        if (i < L.nprob && int(blockIdx.x) >= L.prob[i].block_begin) q = i;
    const PlaneProblem& pr = L.prob[q];
    const int T0 = int(blockIdx.x) - pr.block_begin;  // the block's row tile
    if (L.l2_prefetch) {  // weights only: no earlier kernel writes them, so this may precede pdl_wait
#pragma unroll
        for (int p = 0; p < P; ++p)
            prefetch_l2_block(pr.planes[p] + int64_t(T0) * L.supers * 32 * plane_bits(F, p),
                              (long long)L.supers * 512 * plane_bits(F, p));
        prefetch_l2_block(pr.coefs + int64_t(T0) * L.supers * 8 * (CW / 4), (long long)L.supers * 8 * CW * 4);
    }

    struct Wt {
        uint32_t w[P][WORDS];
        uint32_t c[CW];
    };
    constexpr int XR = STAGED ? 1 : 16;  // k-steps of activation fragments held in registers
    struct Act {
        uint4 xb[NT][XR];
        float xs[NT][GS][2];
    };
    extern __shared__ uint4 xstage[];  // NT == 1: [kWarps][2 buffers][16 k-steps × batch × 4 lanes]
    const int stage_n = 64 * L.batch;
    auto stage = [&](int buf, int S) {
        const uint4* src = L.xfrag + int64_t(S) * stage_n;
        uint4* dst = xstage + (warp * 2 + buf) * stage_n;
#pragma unroll 4
        for (int i = lane; i < stage_n; i += 32) cp_async16(dst + i, src + i);
        cp_async_commit();
    };
    auto load_w = [&](Wt& d, int T, int S) {
#pragma unroll
        for (int p = 0; p < P; ++p) {
            const int b = plane_bits(F, p);
            const uint4* src = pr.planes[p] + ((int64_t(T) * L.supers + S) * 32 + lane) * b;
#pragma unroll
            for (int v = 0; v < 4; ++v)
                if (v < b) {
                    const uint4 u = __ldg(src + v);
                    d.w[p][4 * v] = u.x, d.w[p][4 * v + 1] = u.y, d.w[p][4 * v + 2] = u.z, d.w[p][4 * v + 3] = u.w;
                }
        }
        const uint4* cs = pr.coefs + ((int64_t(T) * L.supers + S) * 8 + g) * (CW / 4);
#pragma unroll
        for (int v = 0; v < CW / 4; ++v) {
            const uint4 u = __ldg(cs + v);
            d.c[4 * v] = u.x, d.c[4 * v + 1] = u.y, d.c[4 * v + 2] = u.z, d.c[4 * v + 3] = u.w;
        }
    };
    auto load_act = [&](Act& a, int S) {
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            const int n = nt * 8 + g;
            if constexpr (!STAGED) {
#pragma unroll
                for (int ks = 0; ks < 16; ++ks)
                    a.xb[nt][ks] = n < L.batch ? __ldg(L.xfrag + (int64_t(S * 16 + ks) * L.batch + n) * 4 + t) : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
            for (int gs = 0; gs < GS; ++gs)
#pragma unroll
                for (int i = 0; i < 2; ++i) {
                    const int nn = PACK ? (i == 0 ? t : 16) : nt * 8 + 2 * t + i;
                    a.xs[nt][gs][i] = nn < L.batch ? __ldg(L.xsum + int64_t(nn) * L.groups_pad + S * GS + gs) : 0.0f;
                }
        }
    };

    float yacc[NT][4] = {};
    // Four independent accumulator sets (k-step parity × activation hi/lo): one chain of dependent MMAs
    // per tile would serialize on the MMA latency (~30 cycles) with too few warps to hide it.
    float acc[2][2][P][NT][4] = {};
    Wt wc, wn;
    Act ac, an;
    // B-fragment source per lane, branch-free in the k-step loop: lanes of a token read its staged
    // fragments, lanes past the batch read a zero block with stride 0.
    __shared__ uint4 zero_frag[4];
    if (threadIdx.x < 4) zero_frag[threadIdx.x] = make_uint4(0, 0, 0, 0);
    __syncthreads();
    const bool bvalid = g < (PACK ? 2 : 1) * L.batch;
    const int bstride = bvalid ? (PACK ? 8 : 4) * L.batch : 0;  // per k-step, in uint2 (PACK) or uint4 units

    // Work items: this warp's superchunks S = warp + 8·it of the block's tile. (A persistent variant that
    // walked several tiles per block, to keep the prefetch running across tiles, measured slower: fewer
    // resident blocks and division-heavy item bookkeeping; see docs/cuda.md.)
    const int nsw = (L.supers + kWarps - 1) / kWarps;
    const int items = nsw;
    auto item_T = [&](int) { return T0; };
    auto item_S = [&](int it) { return warp + kWarps * it; };
    auto item_ok = [&](int it) { return it < items && item_S(it) < L.supers; };
    int buf = 0;
    if (item_ok(0)) load_w(wc, item_T(0), item_S(0));
    pdl_wait();  // from here on: activations (an earlier kernel's output) and y
    if (item_ok(0)) {
        if constexpr (STAGED) stage(0, item_S(0));
        load_act(ac, item_S(0));
    }

    // RMSNorm's 1/rms(x) per token, while the first loads are in flight.
    __shared__ float inv_rms[16];
    __shared__ float red[kWarps][NT * 4][32];
    if (L.xsq) {
        for (int n = warp; n < L.batch; n += kWarps) {
            float s2 = 0;
            for (int j = lane; j < L.groups_pad; j += 32) s2 += __ldg(L.xsq + int64_t(n) * L.groups_pad + j);
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s2 += __shfl_xor_sync(0xffffffffu, s2, o);
            if (lane == 0) inv_rms[n] = rsqrtf(s2 / float(L.cols) + 1e-5f);
        }
    }

    for (int it = 0; it < items; ++it) {
      const bool ok = item_ok(it), more = item_ok(it + 1);
      if (more) {
          if constexpr (STAGED) stage(buf ^ 1, item_S(it + 1));
          load_w(wn, item_T(it + 1), item_S(it + 1));
          if constexpr (STAGED) load_act(an, item_S(it + 1));  // two token tiles: registers allow no double buffer
      }
      if (ok) {
        const uint4* xsb = bvalid ? xstage + (warp * 2 + buf) * stage_n + g * 4 + t : zero_frag + t;
        const uint2* xsb2 = bvalid ? reinterpret_cast<const uint2*>(xstage + (warp * 2 + buf) * stage_n) + g * 4 + t
                                   : reinterpret_cast<const uint2*>(zero_frag) + t;
        if constexpr (STAGED) {
            if (more) cp_async_wait<1>();
            else cp_async_wait<0>();
            __syncwarp();
        }
#pragma unroll
        for (int ks = 0; ks < 16; ++ks) {
            uint4 xb[NT];
            if constexpr (PACK) {
                const uint2 u = xsb2[ks * bstride];
                xb[0] = make_uint4(u.x, u.y, 0, 0);
            } else if constexpr (STAGED) {
                xb[0] = xsb[ks * bstride];
            } else {
#pragma unroll
                for (int nt = 0; nt < NT; ++nt) xb[nt] = ac.xb[nt][ks];
            }
#pragma unroll
            for (int p = 0; p < P; ++p) {
                const int b = plane_bits(F, p);
                const int per_word = 4 / b;  // k-steps per 32-bit word
                const uint32_t w = wc.w[p][ks / per_word];
                const uint32_t wsh = w >> (b == 4 ? 8 : 10);
                const int j = ks % per_word;
                uint32_t a[4];
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    const int pos = b * (j * 4 + r);
                    if (b == 1) a[r] = decode_pair<1>(w, wsh, pos, L.expo);
                    else if (b == 2) a[r] = decode_pair<2>(w, wsh, pos, L.expo);
                    else a[r] = decode_pair<4>(w, wsh, pos, L.expo);
                }
#pragma unroll
                for (int nt = 0; nt < NT; ++nt) {
                    mma16816(acc[ks & 1][0][p][nt], a, xb[nt].x, xb[nt].y);  // hi half (PACK: hi and lo)
                    if constexpr (!PACK) mma16816(acc[ks & 1][1][p][nt], a, xb[nt].z, xb[nt].w);  // lo half
                }
            }
            if ((ks + 1) % KPG == 0) {  // end of a group: fold the tile sums in with its coefficients
                const int gs = ks / KPG;
                float cf[2][4], bias[2];
                unpack_coefs<F, CW>(wc.c, gs, 0, cf[0], bias[0]);
                unpack_coefs<F, CW>(wc.c, gs, 1, cf[1], bias[1]);
                if constexpr (PACK) {
#pragma unroll
                    for (int h = 0; h < 2; ++h) {  // C columns 2t (hi) and 2t + 1 (lo) are token t
                        float v = bias[h] * ac.xs[0][gs][0];
#pragma unroll
                        for (int p = 0; p < P; ++p) {
                            float (&c0)[4] = acc[0][0][p][0];
                            float (&c1)[4] = acc[1][0][p][0];
                            v = fmaf(cf[h][p], (c0[2 * h] + c0[2 * h + 1]) + (c1[2 * h] + c1[2 * h + 1]), v);
                            c0[2 * h] = c0[2 * h + 1] = c1[2 * h] = c1[2 * h + 1] = 0.0f;
                        }
                        yacc[0][2 * h] += v;
                    }
                } else {
#pragma unroll
                for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                    for (int i = 0; i < 4; ++i) {
                        const int h = i >> 1;
                        float v = bias[h] * ac.xs[nt][gs][i & 1];
#pragma unroll
                        for (int p = 0; p < P; ++p) {
                            const float sum = (acc[0][0][p][nt][i] + acc[1][0][p][nt][i]) + (acc[0][1][p][nt][i] + acc[1][1][p][nt][i]);
                            v = fmaf(cf[h][p], sum, v);
                            acc[0][0][p][nt][i] = acc[1][0][p][nt][i] = acc[0][1][p][nt][i] = acc[1][1][p][nt][i] = 0.0f;
                        }
                        yacc[nt][i] += v;
                    }
                }
            }
        }
      }  // ok
      if (more) {
          wc = wn;
          if constexpr (STAGED) ac = an;
          else load_act(ac, item_S(it + 1));
          __syncwarp();  // every lane has read this buffer before the next stage overwrites it
          buf ^= 1;
      }
      if (it == items - 1) {  // the tile is done: reduce the warps' partial sums and store
          const int T = item_T(it);
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
              for (int i = 0; i < 4; ++i) red[warp][nt * 4 + i][lane] = yacc[nt][i], yacc[nt][i] = 0.0f;
          __syncthreads();
          for (int e = threadIdx.x; e < NT * 4 * 32; e += kWarps * 32) {
              const int l = e & 31, k = e >> 5;
              float s = 0;
#pragma unroll
              for (int w = 0; w < kWarps; ++w) s += red[w][k][l];
              const int i = k & 3, nt = k >> 2;
              const int row = T * 16 + (l >> 2) + 8 * (i >> 1);
              const int n = PACK ? (l & 3) : nt * 8 + 2 * (l & 3) + (i & 1);
              if (PACK && (i & 1)) continue;
              if (T < pr.tiles && row < pr.rows && n < L.batch) pr.y[int64_t(n) * pr.rows + row] = L.xsq ? s * inv_rms[n] : s;
          }
          __syncthreads();  // red is reused by the next tile
      }
    }
}

// x (or silu(x)·up) → fp16 hi/lo pairs in B-fragment order, and per-group sums of the activation.
__device__ __forceinline__ float act_at(const float* x, const float* up, int64_t i) {
    const float a = x[i];
    return up ? a / (1.0f + __expf(-a)) * up[i] : a;
}

__global__ void prep_kernel(const float* __restrict__ x, const float* __restrict__ up, int cols, int ksteps, int batch,
                            int group, int groups_pad, uint4* __restrict__ xfrag, float* __restrict__ xsum,
                            float* __restrict__ xsq, int frag_blocks) {
    pdl_launch_dependents();
    pdl_wait();  // x is the previous kernel's output, and xfrag may still be read by the previous GEMV
    if (int(blockIdx.x) < frag_blocks) {
        const bool packed = batch <= kPackedMaxBatch;
        const int tid = blockIdx.x * blockDim.x + threadIdx.x;
        const int cols_per = packed ? 2 * batch : batch;  // B columns per k-step
        if (tid >= ksteps * cols_per * 4) return;
        const int ks = tid / (cols_per * 4), v = (tid / 4) % cols_per, t = tid & 3;
        const int n = packed ? v / 2 : v;
        const int c0 = ks * 16 + 2 * t;
        const int cs[4] = {c0, c0 + 1, c0 + 8, c0 + 9};
        uint32_t hi[4], lo[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float a = cs[i] < cols ? act_at(x, up, int64_t(n) * cols + cs[i]) : 0.0f;
            const half h = __float2half_rn(a);
            const half l = __float2half_rn(a - __half2float(h));
            hi[i] = __half_as_ushort(h), lo[i] = __half_as_ushort(l);
        }
        if (packed) {  // column 2n: hi, column 2n + 1: lo (MODE 0 of the kernel)
            const uint32_t* q = (v & 1) ? lo : hi;
            reinterpret_cast<uint2*>(xfrag)[tid] = make_uint2(q[0] | (q[1] << 16), q[2] | (q[3] << 16));
        } else {
            xfrag[tid] = make_uint4(hi[0] | (hi[1] << 16), hi[2] | (hi[3] << 16), lo[0] | (lo[1] << 16), lo[2] | (lo[3] << 16));
        }
        return;
    }
    const int wid = (int(blockIdx.x) - frag_blocks) * (blockDim.x / 32) + int(threadIdx.x / 32), lane = threadIdx.x & 31;
    if (wid >= batch * groups_pad) return;
    const int n = wid / groups_pad, j = wid % groups_pad;
    float s = 0, s2 = 0;
    for (int i = lane; i < group; i += 32) {
        const int c = j * group + i;
        if (c < cols) {
            const float a = act_at(x, up, int64_t(n) * cols + c);
            const half h = __float2half_rn(a);  // the sum of exactly what the tensor cores see (hi + lo)
            s += __half2float(h) + __half2float(__float2half_rn(a - __half2float(h)));
            s2 += a * a;
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        s += __shfl_xor_sync(0xffffffffu, s, o);
        s2 += __shfl_xor_sync(0xffffffffu, s2, o);
    }
    if (lane == 0) xsum[wid] = s, xsq[wid] = s2;
}

template <int F, int MODE, int KPG>
void launch_kernel(PlaneLaunch L, cudaStream_t s) {
    constexpr int kMaxSmem = kWarps * 2 * 64 * 8 * 16;  // 128 KB: 8 tokens
    const int smem = MODE <= 1 ? kWarps * 2 * 64 * L.batch * 16 : 0;
    static const bool opted_in = [] {  // beyond 48 KB (static shared memory included) needs the opt-in
        PLANEQ_CUDA_CHECK(cudaFuncSetAttribute(plane_gemv_kernel<F, MODE, KPG>, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmem));
        return true;
    }();
    (void)opted_in;
    int blocks = 0;  // one block per 16-row tile
    for (int i = 0; i < L.nprob; ++i) L.prob[i].block_begin = blocks, blocks += L.prob[i].tiles;
    launch_pdl(plane_gemv_kernel<F, MODE, KPG>, dim3(blocks), dim3(kWarps * 32), size_t(smem), s, L);
}

template <int F, int NT>
void launch_fmt(const PlaneLaunch& L, int kpg, cudaStream_t s) {
    switch (kpg) {
        case 2: return launch_kernel<F, NT, 2>(L, s);
        case 4: return launch_kernel<F, NT, 4>(L, s);
        case 8: return launch_kernel<F, NT, 8>(L, s);
        case 16: return launch_kernel<F, NT, 16>(L, s);
    }
    fail("cuda gemv: bad group size");
}

template <int NT>
void launch_nt(int f, const PlaneLaunch& L, int kpg, cudaStream_t s) {
    switch (f) {
        case kInt2: return launch_fmt<kInt2, NT>(L, kpg, s);
        case kInt3: return launch_fmt<kInt3, NT>(L, kpg, s);
        case kInt4: return launch_fmt<kInt4, NT>(L, kpg, s);
        case kBit2: return launch_fmt<kBit2, NT>(L, kpg, s);
        case kBit3: return launch_fmt<kBit3, NT>(L, kpg, s);
        case kBit4: return launch_fmt<kBit4, NT>(L, kpg, s);
        case kTrit: return launch_fmt<kTrit, NT>(L, kpg, s);
    }
    fail("cuda gemv: bad plane format id");
}

}  // namespace

ActBuffer::~ActBuffer() {
    cudaFree(xfrag);
    cudaFree(xsum);
    cudaFree(xsq);
    cudaFree(xq8);
    cudaFree(xsc);
    cudaFree(counters);
    cudaFree(bwq);
}
void ActBufferDeleter::operator()(ActBuffer* a) const { delete a; }

ActBufferPtr make_act_buffer(int64_t max_cols) {
    ActBufferPtr a(new ActBuffer);
    const int64_t cols_pad = (max_cols + kSuperCols - 1) / kSuperCols * kSuperCols;
    a->max_cols = cols_pad;
    PLANEQ_CUDA_CHECK(cudaMalloc(&a->xfrag, size_t(cols_pad / 16) * 16 * 4 * 16));
    PLANEQ_CUDA_CHECK(cudaMalloc(&a->xsum, size_t(cols_pad / 32) * 16 * sizeof(float)));
    PLANEQ_CUDA_CHECK(cudaMalloc(&a->xsq, size_t(cols_pad / 32) * 16 * sizeof(float)));
    PLANEQ_CUDA_CHECK(cudaMalloc(&a->xq8, size_t(cols_pad) * 2 * 4));  // ≤ 4 tokens × (h, l) bytes per column
    PLANEQ_CUDA_CHECK(cudaMalloc(&a->xsc, size_t(cols_pad / 32) * 4 * sizeof(float2)));
    PLANEQ_CUDA_CHECK(cudaMalloc(&a->counters, size_t(cols_pad / 16) * sizeof(int)));
    PLANEQ_CUDA_CHECK(cudaMemset(a->counters, 0, size_t(cols_pad / 16) * sizeof(int)));
    PLANEQ_CUDA_CHECK(cudaMalloc(&a->bwq, size_t(cols_pad) * 2 + size_t(cols_pad / 32) * sizeof(float2) + size_t(cols_pad / 64) * sizeof(float)));
    return a;
}

void prepare_act(ActBuffer& a, const float* x, const float* up, int64_t cols, int batch, int group, cudaStream_t s,
                 bool rms_norm, const GpuWeight* for_weight) {
    if (batch < 1 || batch > 16) fail("cuda gemv: batch must be 1 … 16 (got " + std::to_string(batch) + ")");
    if (group != 32 && group != 64 && group != 128 && group != 256) fail("cuda gemv: group must be 32, 64, 128 or 256");
    const int64_t cols_pad = (cols + kSuperCols - 1) / kSuperCols * kSuperCols;
    if (cols_pad > a.max_cols) fail("cuda gemv: activation buffer too small for " + std::to_string(cols) + " columns");
    a.cols_pad = cols_pad, a.cols = cols, a.batch = batch, a.group = group, a.rms_norm = rms_norm, a.i8_bits = 0, a.i8_ga = 0;
    a.bw = false, a.bw_preq = false;
    if (for_weight && bw_decode_path(*for_weight, batch)) {  // nothing to launch: the GEMV quantizes x itself
        if (for_weight->group != group) fail("cuda prepare_act: group differs from the weight's");
        a.bw = true, a.bw_x = x, a.bw_up = up;
        a.clear_bw_norm();
        return;
    }
    if (for_weight && int8_decode_path(*for_weight, batch)) {
        if (for_weight->group != group) fail("cuda prepare_act: group differs from the weight's");
        prepare_act_i8(a, x, up, cols, batch, group, plane_bits(for_weight->fmt, 0), s);
        PLANEQ_CUDA_CHECK(cudaGetLastError());
        return;
    }
    const int ksteps = int(cols_pad / 16), groups_pad = int(cols_pad / group);
    const int threads = 256;
    const int cols_per = batch <= kPackedMaxBatch ? 2 * batch : batch;
    const int frag_blocks = (ksteps * cols_per * 4 + threads - 1) / threads;
    const int sum_blocks = (batch * groups_pad + threads / 32 - 1) / (threads / 32);
    launch_pdl(prep_kernel, dim3(frag_blocks + sum_blocks), dim3(threads), 0, s, x, up, int(cols), ksteps, batch, group,
               groups_pad, static_cast<uint4*>(a.xfrag), a.xsum, a.xsq, frag_blocks);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

// Plane weights only (bf16 is dispatched in gemv_bf16.cu).
void gemv_planes(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, int batch, cudaStream_t s) {
    if (n < 1 || n > 3) fail("cuda gemv_multi: 1 … 3 weights per launch");
    if (!act) fail("cuda gemv: quantized weights need a prepared activation buffer");
    const GpuWeight& w0 = *w[0];
    if (act->batch != batch || act->group != w0.group || act->cols_pad != w0.supers * kSuperCols)
        fail("cuda gemv: activation buffer was prepared for another batch, group or width");
    if (act->bw) {
        if (batch != 1) fail("cuda gemv: the activation buffer was prepared for the batch-1 bw path");
        gemv_bw(w, y, n, act, s);
        return;
    }
    if (act->i8_bits) {
        gemv_i8(w, y, n, act, batch, s);
        PLANEQ_CUDA_CHECK(cudaGetLastError());
        return;
    }
    PlaneLaunch L{};
    L.nprob = n, L.supers = int(w0.supers), L.groups_pad = int(w0.groups_pad), L.batch = batch;
    for (int p = 0; p < 11; ++p) L.expo[p] = (uint32_t(25 - p) << 10) * 0x10001u;
    L.xfrag = static_cast<const uint4*>(act->xfrag), L.xsum = act->xsum;
    L.xsq = act->rms_norm ? act->xsq : nullptr, L.cols = int(act->cols);
    L.l2_prefetch = decode_options().l2_prefetch ? 1 : 0;
    for (int i = 0; i < n; ++i) {
        const GpuWeight& wi = *w[i];
        if (wi.dense || wi.fmt != w0.fmt || wi.group != w0.group || wi.supers != w0.supers)
            fail("cuda gemv_multi: weights of one launch must share format, group and width");
        PlaneProblem& p = L.prob[i];
        for (int k = 0; k < 4; ++k) p.planes[k] = static_cast<const uint4*>(wi.planes[k]);
        p.coefs = static_cast<const uint4*>(wi.coefs);
        p.y = y[i], p.rows = int(wi.rows), p.tiles = int(wi.tiles);
    }
    if (batch > 8) launch_nt<2>(w0.fmt, L, w0.group / 16, s);
    else if (batch > kPackedMaxBatch) launch_nt<1>(w0.fmt, L, w0.group / 16, s);
    else launch_nt<0>(w0.fmt, L, w0.group / 16, s);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

}  // namespace planeq::cuda
