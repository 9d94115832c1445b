// Causal GQA attention on the GPU in fp32 (infer_ops.hpp), the flash-attention order: keys are visited in
// tiles and each query keeps a running maximum m, normalizer l and output accumulator, so the scores never
// go to memory.
//
// Prefill: a block owns 32 queries of one head (4 warps × 8 queries); per tile of 32 keys, K and V go to
// shared memory once and serve all 32 queries; lane j scores key j of the tile against its warp's 8 queries
// (one float4 of K per 8 of q, broadcast; K rows padded by 4 floats: conflict-free), the tile's probabilities
// go to shared memory, and lane d accumulates output dims d, d + 32, … (each V element read once per warp).
// Decode: one query per head; the visible keys are split into kDecodeSplits ranges, one block each (enough
// blocks to fill the GPU at small head counts); each warp walks keys of its range (lanes split the head
// dimension, a shuffle reduction scores), the block merges its warps, and a second kernel merges the splits.
// The key count is read from the device (Pos::dev), so the launch shape is fixed and the step can be replayed
// as a CUDA graph.
#include <cfloat>
#include <cmath>

#include "kernels/cuda/gpu_weight.hpp"
#include "kernels/cuda/infer_ops.hpp"
#include "kernels/cuda/launch.cuh"

namespace planeq::cuda {

namespace {

constexpr int kQ = 32;     // queries per prefill block
constexpr int kKeys = 32;  // keys per tile

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <int HD>
__global__ void __launch_bounds__(128) prefill_kernel(AttnArgs a) {
    constexpr int C = HD / 32;   // output dims per lane
    constexpr int KP = HD + 4;   // K row pitch: float4 reads by 8 lanes at a time hit distinct banks
    extern __shared__ __align__(16) float sm[];
    float* Qs = sm;                      // [kQ][HD], pre-scaled
    float* Ks = Qs + kQ * HD;            // [kKeys][KP]
    float* Vs = Ks + kKeys * KP;         // [kKeys][HD]
    float* Ps = Vs + kKeys * HD;         // [4 warps][8 queries][kKeys]: probabilities of the tile
    const int h = blockIdx.y, kvh = h / (a.n_heads / a.n_kv), i0 = blockIdx.x * kQ;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int pos0 = a.pos.dev ? *a.pos.dev : a.pos.host;
    const int q_stride = a.n_heads * HD, kv_stride = a.n_kv * HD;
    const int nq = min(kQ, a.n - i0);
    for (int e = threadIdx.x; e < kQ * HD; e += blockDim.x) {
        const int r = e / HD, d = e % HD;
        Qs[e] = r < nq ? a.q[int64_t(i0 + r) * q_stride + int64_t(h) * HD + d] * a.scale : 0.0f;
    }
    // Keys this block needs: [lo, hi)
    const int hi = pos0 + i0 + nq;
    const int lo = a.window > 0 ? max(0, pos0 + i0 - a.window + 1) : 0;
    const int qbase = warp * 8;                               // this warp's queries: qbase … qbase + 7
    const int wlast = pos0 + i0 + min(qbase + 7, nq - 1);     // position of its last query
    float* pw = Ps + warp * 8 * kKeys;
    float m[8], l[8], acc[8][C];
#pragma unroll
    for (int r = 0; r < 8; ++r) {
        m[r] = -FLT_MAX, l[r] = 0;
#pragma unroll
        for (int c = 0; c < C; ++c) acc[r][c] = 0;
    }
    for (int k0 = lo; k0 < hi; k0 += kKeys) {
        __syncthreads();
        for (int e = threadIdx.x; e < kKeys * HD; e += blockDim.x) {
            const int j = e / HD, d = e % HD;
            const bool ok = k0 + j < hi;
            const int64_t off = int64_t(k0 + j) * kv_stride + int64_t(kvh) * HD + d;
            Ks[j * KP + d] = ok ? a.kc[off] : 0.0f;
            Vs[j * HD + d] = ok ? a.vc[off] : 0.0f;
        }
        __syncthreads();
        if (qbase >= nq || k0 > wlast) continue;  // warp-uniform: no query of this warp sees the tile
        // Scores: lane = key k0 + lane, against the warp's 8 queries (K read once, q broadcast, float4).
        float sc[8];
#pragma unroll
        for (int r = 0; r < 8; ++r) sc[r] = 0;
        const float4* k4 = reinterpret_cast<const float4*>(Ks + lane * KP);
#pragma unroll 4
        for (int d4 = 0; d4 < HD / 4; ++d4) {
            const float4 kv = k4[d4];
#pragma unroll
            for (int r = 0; r < 8; ++r) {
                const float4 q = reinterpret_cast<const float4*>(Qs + (qbase + r) * HD)[d4];
                sc[r] = fmaf(q.w, kv.w, fmaf(q.z, kv.z, fmaf(q.y, kv.y, fmaf(q.x, kv.x, sc[r]))));
            }
        }
        const int key = k0 + lane;
#pragma unroll
        for (int r = 0; r < 8; ++r) {
            const int qi = qbase + r, qpos = pos0 + i0 + qi;
            const int qlo = a.window > 0 ? max(0, qpos - a.window + 1) : 0;
            const bool vis = qi < nq && key <= qpos && key >= qlo && key < hi;
            const float s = vis ? sc[r] : -FLT_MAX;
            const float mt = warp_max(s);
            float p = 0.0f;
            if (mt != -FLT_MAX) {  // warp-uniform
                const float mn = fmaxf(m[r], mt), corr = expf(m[r] - mn);
                p = vis ? expf(s - mn) : 0.0f;
                l[r] = l[r] * corr + warp_sum(p);
                m[r] = mn;
#pragma unroll
                for (int c = 0; c < C; ++c) acc[r][c] *= corr;
            }
            pw[r * kKeys + lane] = p;
        }
        __syncwarp();
        // Output: lane d accumulates dims d, d + 32, …; each V element read once for the 8 queries.
#pragma unroll 2
        for (int j4 = 0; j4 < kKeys / 4; ++j4) {
            float v[4][C];
#pragma unroll
            for (int jj = 0; jj < 4; ++jj)
#pragma unroll
                for (int c = 0; c < C; ++c) v[jj][c] = Vs[(j4 * 4 + jj) * HD + lane + 32 * c];
#pragma unroll
            for (int r = 0; r < 8; ++r) {
                const float4 p4 = reinterpret_cast<const float4*>(pw + r * kKeys)[j4];
#pragma unroll
                for (int c = 0; c < C; ++c)
                    acc[r][c] = fmaf(p4.w, v[3][c], fmaf(p4.z, v[2][c], fmaf(p4.y, v[1][c], fmaf(p4.x, v[0][c], acc[r][c]))));
            }
        }
        __syncwarp();  // pw is rewritten by the next tile
    }
#pragma unroll
    for (int r = 0; r < 8; ++r) {
        const int qi = qbase + r;
        if (qi >= nq) break;
        const float inv = 1.0f / l[r];
#pragma unroll
        for (int c = 0; c < C; ++c) a.out[int64_t(i0 + qi) * q_stride + int64_t(h) * HD + lane + 32 * c] = acc[r][c] * inv;
    }
}

// Decode, phase 1: block (head h, split s) over its key range; writes (m, l, acc[HD]) to scratch.
template <int HD>
__global__ void __launch_bounds__(128) decode_kernel(AttnArgs a, float* part) {
    constexpr int C = HD / 32;
    __shared__ float qs[HD];
    __shared__ float wm[4], wl[4], wacc[4][HD];
    pdl_launch_dependents();
    pdl_wait();  // q, the cache and the device position are written by earlier kernels
    const int h = blockIdx.x, split = blockIdx.y, kvh = h / (a.n_heads / a.n_kv);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int qpos = a.pos.dev ? *a.pos.dev : a.pos.host;
    const int kv_stride = a.n_kv * HD;
    const int lo = a.window > 0 ? max(0, qpos - a.window + 1) : 0, span = qpos + 1 - lo;
    const int chunk = (span + kDecodeSplits - 1) / kDecodeSplits;
    const int k0 = lo + split * chunk, k1 = min(qpos + 1, k0 + chunk);
    for (int d = threadIdx.x; d < HD; d += blockDim.x) qs[d] = a.q[int64_t(h) * HD + d] * a.scale;
    __syncthreads();
    float qv[C];
#pragma unroll
    for (int c = 0; c < C; ++c) qv[c] = qs[lane + 32 * c];
    float m = -FLT_MAX, l = 0, acc[C];
#pragma unroll
    for (int c = 0; c < C; ++c) acc[c] = 0;
    // U keys a step, all their K and V loads issued before any is used: a warp's keys were a chain of cache-missing
    // loads, one round trip each (at 4K keys, 32 a warp).
    constexpr int U = C <= 4 ? 4 : 2;
    for (int j0 = k0 + warp; j0 < k1; j0 += 4 * U) {
        float kv[U][C], vv[U][C], sc[U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int j = j0 + 4 * u;
            const float* kr = a.kc + int64_t(j) * kv_stride + int64_t(kvh) * HD;
            const float* vr = a.vc + int64_t(j) * kv_stride + int64_t(kvh) * HD;
#pragma unroll
            for (int c = 0; c < C; ++c) kv[u][c] = j < k1 ? kr[lane + 32 * c] : 0.0f, vv[u][c] = j < k1 ? vr[lane + 32 * c] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            sc[u] = 0;
#pragma unroll
            for (int c = 0; c < C; ++c) sc[u] = fmaf(qv[c], kv[u][c], sc[u]);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
#pragma unroll
            for (int u = 0; u < U; ++u) sc[u] += __shfl_xor_sync(0xffffffffu, sc[u], o);
        float mn = m;
#pragma unroll
        for (int u = 0; u < U; ++u)
            if (j0 + 4 * u < k1) mn = fmaxf(mn, sc[u]);
        const float corr = expf(m - mn);
        l *= corr;
#pragma unroll
        for (int c = 0; c < C; ++c) acc[c] *= corr;
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const float pu = j0 + 4 * u < k1 ? expf(sc[u] - mn) : 0.0f;
            l += pu;
#pragma unroll
            for (int c = 0; c < C; ++c) acc[c] = fmaf(pu, vv[u][c], acc[c]);
        }
        m = mn;
    }
    if (lane == 0) wm[warp] = m, wl[warp] = l;
#pragma unroll
    for (int c = 0; c < C; ++c) wacc[warp][lane + 32 * c] = acc[c];
    __syncthreads();
    float M = -FLT_MAX;
    for (int w = 0; w < 4; ++w) M = fmaxf(M, wm[w]);
    float* out = part + (int64_t(h) * kDecodeSplits + split) * (HD + 2);
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float s = 0;
        for (int w = 0; w < 4; ++w) s += wl[w] > 0 ? wacc[w][d] * expf(wm[w] - M) : 0.0f;
        out[2 + d] = s;
    }
    if (threadIdx.x == 0) {
        float L = 0;
        for (int w = 0; w < 4; ++w) L += wl[w] > 0 ? wl[w] * expf(wm[w] - M) : 0.0f;
        out[0] = M, out[1] = L;
    }
}

// Decode, phase 2: merge the splits of head h. Thread s < kDecodeSplits turns split s's (m, l) into its weight
// e^(m_s − M) / L once; then each output dimension sums the splits with every load independent of the others.
__global__ void decode_merge_kernel(const float* part, int hd, float* out) {
    __shared__ float wt[kDecodeSplits];
    pdl_launch_dependents();
    pdl_wait();
    const int h = blockIdx.x, t = threadIdx.x;
    const float* p = part + int64_t(h) * kDecodeSplits * (hd + 2);
    if (t < 32) {  // one warp: kDecodeSplits ≤ 32 splits, a lane each
        static_assert(kDecodeSplits <= 32, "one lane a split");
        const bool live = t < kDecodeSplits && p[t * (hd + 2) + 1] > 0;
        const float ms = live ? p[t * (hd + 2)] : -FLT_MAX, ls = live ? p[t * (hd + 2) + 1] : 0.0f;
        const float M = warp_max(ms);
        const float e = live ? expf(ms - M) : 0.0f, L = warp_sum(ls * e);
        if (t < kDecodeSplits) wt[t] = e / L;
    }
    __syncthreads();
    for (int d = t; d < hd; d += blockDim.x) {
        float o = 0;
#pragma unroll 8
        for (int s = 0; s < kDecodeSplits; ++s) o = fmaf(wt[s], wt[s] != 0.0f ? p[s * (hd + 2) + 2 + d] : 0.0f, o);
        out[int64_t(h) * hd + d] = o;
    }
}

template <int HD>
void launch_prefill(const AttnArgs& a, cudaStream_t s) {
    const size_t smem = size_t(kQ * HD + kKeys * (HD + 4) + kKeys * HD + 4 * 8 * kKeys) * 4;
    static bool configured = false;  // > 48 KB of dynamic shared memory needs an opt-in, once per kernel
    if (!configured) {
        PLANEQ_CUDA_CHECK(cudaFuncSetAttribute(prefill_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
        configured = true;
    }
    const dim3 grid(unsigned((a.n + kQ - 1) / kQ), unsigned(a.n_heads));
    prefill_kernel<HD><<<grid, 128, smem, s>>>(a);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

template <int HD>
void launch_decode(const AttnArgs& a, float* scratch, cudaStream_t s) {
    // PDL (launch.cuh): both wait at their first instruction, so their launches overlap the kernels around them.
    // (Tried, not kept: the last split of a head to arrive merging them, one kernel instead of two, 499.99
    // tokens/s against 499.6 (int2 tg128); splits of ≥ 64 keys, the other blocks exiting at once, 498.6.)
    launch_pdl(decode_kernel<HD>, dim3(unsigned(a.n_heads), kDecodeSplits), dim3(128), 0, s, a, scratch);
    launch_pdl(decode_merge_kernel, dim3(unsigned(a.n_heads)), dim3(HD < 128 ? HD : 128), 0, s, static_cast<const float*>(scratch), HD,
               a.out);
}

void check_shape(const AttnArgs& a) {
    if (a.hd != 32 && a.hd != 64 && a.hd != 128 && a.hd != 256)
        fail("cuda attention: head dimension " + std::to_string(a.hd) + " is not supported (32, 64, 128, 256)");
    if (a.n_kv <= 0 || a.n_heads % a.n_kv != 0) fail("cuda attention: heads must be a multiple of KV heads");
}

}  // namespace

void attention_prefill(const AttnArgs& a, cudaStream_t s) {
    check_shape(a);
    switch (a.hd) {
        case 32: return launch_prefill<32>(a, s);
        case 64: return launch_prefill<64>(a, s);
        case 128: return launch_prefill<128>(a, s);
        default: return launch_prefill<256>(a, s);
    }
}

void attention_decode(const AttnArgs& a, float* scratch, cudaStream_t s) {
    check_shape(a);
    if (a.n != 1) fail("cuda attention_decode: one query per head");
    switch (a.hd) {
        case 32: return launch_decode<32>(a, scratch, s);
        case 64: return launch_decode<64>(a, scratch, s);
        case 128: return launch_decode<128>(a, scratch, s);
        default: return launch_decode<256>(a, scratch, s);
    }
}

}  // namespace planeq::cuda
