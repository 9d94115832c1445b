// The persistent decode stack (decode_stack.hpp says why): one launch runs a token's chain of batch-1 GEMVs.
//
// Grid: one block per SM, 16 compute warps + 1 producer warp. Each step's 32-row blocks are split over the blocks
// (a contiguous range each); a block's weight bytes of one row block are contiguous in the bw layout (codes, then
// records, gemv_bw.cu), so a ring stage is two bulk copies (TMA): up to 16 iterations (256 columns each) of one row
// block.
// - The producer walks every step's row blocks in order and fills the ring (mbarrier full/empty per stage). It never
//   waits for activations, so it runs up to the ring's depth (4 stages, ~150 KB an SM) ahead of the compute, across
//   step boundaries.
// - The compute warps, per step: wait on the grid barrier (all blocks done with the step before: its outputs are
//   this step's input), quantize the whole input into shared memory as the bw GEMV does (hi/lo int8 halves per
//   128-column group, or int8 with bw_act8), then per row block each warp takes one iteration of every stage
//   (bw::iteration, the bw GEMV's own loop), and the 16 partial sums meet in shared memory (fixed order: the result
//   does not depend on timing).
// - The grid barrier is a counter in global memory (release by a fence and an add, acquire by the spinning thread), as
//   cooperative groups' grid sync. All blocks must be resident at once: one block an SM, its shared memory leaves no
//   room for a second, and the launch is refused where the occupancy query says one does not fit.
// Measured (docs/cuda.md, ninth round): slower than the per-launch chain for int2 (785 vs 822 tokens/s), level for
// bitplane k=2 (678.5 vs 675.6): the compute warps' dead time (grid barrier + quantizing the input, ~8.5 µs a layer)
// and their compute rate (~1.2 µs a 37 KB stage) leave the stream idle; alone it moves the weights at 4.3 TB/s. Tried and dropped: 32 compute warps, two an
// iteration, with the last warp done with a stage refilling its slot (33 warps exceed the 1024-thread limit):
// 602–710 tokens/s; the next stages requested from L2 beyond the ring: 632–735; rotating which blocks take a
// step's extra row block: no change.
#include "kernels/cuda/decode_stack.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "kernels/cuda/bw_common.cuh"
#include "kernels/cuda/gpu_weight.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/mbarrier.cuh"

namespace planeq::cuda {

namespace {

using namespace bw;

constexpr int kWarps = 16;                     // compute warps
constexpr int kThreads = (kWarps + 1) * 32;    // + the producer warp
constexpr int kStageIters = kWarps;            // 256-column iterations a stage: one a compute warp
constexpr int kMaxStages = 8;
constexpr int kGroup = 128;                    // the weight and activation group this kernel is built for
constexpr int kSpinLimit = 1 << 26;            // grid-barrier polls before giving up (seconds; a hang is a bug)

struct DevProblem {
    const uint4* codes;
    const uint8_t* coefs;
    float* y;
    int rows, rb_begin;  // rb_begin: the problem's first row block in the step's numbering
};
struct DevStep {
    DevProblem prob[3];
    int nprob, rbs, iters, cols;  // rbs: 32-row blocks of all problems; iters: 256-column iterations of a row
    const float* x;
    const float* up;
    int rms;
    float eps;
};
static_assert(sizeof(DevStep) % 8 == 0, "the step table is copied to shared memory in 8-byte words");

template <int F>
struct Stage {
    static constexpr int NREC = BwFmt<F>::NREC, LB = (256 / kGroup) * BwFmt<F>::RB;
    static constexpr int kCodeBytes = kStageIters * 2048, kRecBytes = kStageIters * NREC * 32 * LB;
    static constexpr int kBytes = kCodeBytes + kRecBytes;
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }
// The compute warps' own barrier (named barrier 1; the producer warp never joins it).
__device__ __forceinline__ void compute_sync() { asm volatile("bar.sync 1, %0;" ::"n"(kWarps * 32) : "memory"); }
__device__ __forceinline__ unsigned long long now_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
__device__ __forceinline__ unsigned ld_acquire(const unsigned* p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

// This block's row blocks [r0, r1) of a step with `rbs` of them.
__device__ __forceinline__ void my_rows(int rbs, int& r0, int& r1) {
    const int nb = int(gridDim.x), b = int(blockIdx.x);
    r0 = int(int64_t(b) * rbs / nb), r1 = int(int64_t(b + 1) * rbs / nb);
}

// The weight (of up to 3) that a step's row block rb belongs to.
__device__ __forceinline__ const DevProblem& problem_of(const DevStep& st, int rb) {
    int q = 0;
#pragma unroll
    for (int i = 1; i < 3; ++i)
        if (i < st.nprob && rb >= st.prob[i].rb_begin) q = i;
    return st.prob[q];
}

// The producer's walk over this block's ring stages: steps in order, the block's row blocks of each, up to
// kStageIters iterations of one row block a stage.
template <int F>
struct StageWalk {
    static constexpr int NREC = Stage<F>::NREC, LB = Stage<F>::LB;
    const DevStep* steps;
    int nsteps, s = 0, rb = 0, r1 = 0, c0 = 0, n = 0;
    const uint4* codes = nullptr;  // the stage's first bytes
    const uint8_t* coefs = nullptr;
    __device__ StageWalk(const DevStep* st, int ns) : steps(st), nsteps(ns) { enter(); }
    __device__ bool done() const { return s >= nsteps; }
    __device__ void next() {
        c0 += kStageIters;
        if (c0 >= steps[s].iters) {
            c0 = 0;
            if (++rb >= r1) {
                ++s;
                enter();
                return;
            }
        }
        locate();
    }

private:
    // The first stage of step s or of a later step with rows for this block.
    __device__ void enter() {
        for (; s < nsteps; ++s) {
            my_rows(steps[s].rbs, rb, r1);
            if (rb < r1) break;
        }
        c0 = 0;
        if (s < nsteps) locate();
    }
    __device__ void locate() {
        const DevStep& st = steps[s];
        const DevProblem& pr = problem_of(st, rb);
        const int64_t it = int64_t(rb - pr.rb_begin) * st.iters + c0;  // the stage's first iteration in its weight
        codes = pr.codes + it * 4 * 32, coefs = pr.coefs + it * NREC * 32 * LB, n = min(kStageIters, st.iters - c0);
    }
};

template <int F, bool A8>
__global__ void __launch_bounds__(kThreads, 1)
    stack_kernel(const DevStep* __restrict__ gsteps, int nsteps, unsigned* counters, int stages, int max_cols_pad,
                 unsigned long long* trace, int skip) {
    using S = Stage<F>;
    constexpr int NREC = S::NREC, LB = S::LB;
    extern __shared__ __align__(128) uint8_t sm[];
    uint8_t* ring = sm;                                     // [stages][S::kBytes]
    int8_t* xh = reinterpret_cast<int8_t*>(sm + size_t(stages) * S::kBytes);
    int8_t* xl = xh + max_cols_pad;
    float2* gsc = reinterpret_cast<float2*>(xl + max_cols_pad);  // per 128-column group: (s_x, X)
    // The step table, copied once: read from global memory, each step's first look paid dependent L2 round trips
    // on the producer's and the compute warps' critical paths.
    DevStep* steps = reinterpret_cast<DevStep*>(gsc + max_cols_pad / kGroup);
    for (int i = int(threadIdx.x); i < nsteps * int(sizeof(DevStep) / 8); i += kThreads)
        reinterpret_cast<uint64_t*>(steps)[i] = reinterpret_cast<const uint64_t*>(gsteps)[i];
    __shared__ __align__(8) uint64_t full[kMaxStages], empty[kMaxStages];
    __shared__ float red[2][kWarps][32];
    __shared__ float s2w[kWarps];
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;

    if (threadIdx.x == 0) {
        for (int i = 0; i < stages; ++i) mbar_init(smem_addr(&full[i]), 1), mbar_init(smem_addr(&empty[i]), kWarps);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();

    if (warp == kWarps) {
        // ---- the producer: every step's weights, in the order the compute warps take them ----
        if (lane != 0) return;
        int slot = 0;
        uint32_t parity = 1;  // a fresh barrier's "previous" phase counts as complete: the first lap does not wait
        for (StageWalk<F> ld(steps, nsteps); !ld.done(); ld.next()) {
            const uint32_t f = smem_addr(&full[slot]), dst = smem_addr(ring + size_t(slot) * S::kBytes);
            mbar_wait(smem_addr(&empty[slot]), parity);
            mbar_expect_tx(f, uint32_t(ld.n) * (2048 + NREC * 32 * LB));
            bulk_copy(dst, ld.codes, uint32_t(ld.n) * 2048, f);
            bulk_copy(dst + S::kCodeBytes, ld.coefs, uint32_t(ld.n) * NREC * 32 * LB, f);
            if (++slot == stages) slot = 0, parity ^= 1;
        }
        return;
    }

    // ---- the compute warps ----
    int slot = 0, rp = 0;
    uint32_t parity = 0;
    pdl_wait();  // the first step's input comes from an earlier kernel
    for (int s = 0; s < nsteps; ++s) {
        const DevStep& st = steps[s];
        unsigned long long* tr = trace && threadIdx.x == 0 ? trace + (int64_t(s) * gridDim.x + blockIdx.x) * PersistentStack::kTraceFields : nullptr;
        if (tr) tr[0] = now_ns();
        if (s > 0 && skip < 2) {  // the grid barrier: every block has finished step s − 1
            if (threadIdx.x == 0) {
                const unsigned target = unsigned(s) * gridDim.x;
                int polls = 0;
                while (ld_acquire(counters) < target)
                    if (++polls == kSpinLimit) {
                        printf("planeq decode stack: block %d stuck at step %d (%u of %u arrivals)\n", int(blockIdx.x), s,
                               ld_acquire(counters), target);
                        __trap();
                    }
                __threadfence();
            }
            compute_sync();
        }
        if (tr) tr[1] = now_ns();

        // The input, quantized whole into shared memory: a warp per 128-column group, 4 columns a lane, 4 groups'
        // loads in flight at once (x and up are written by other blocks: L2 loads, no stale L1 lines).
        const int groups = st.iters * 2, cols = st.cols;
        const float* x = st.x;
        const float* up = st.up;
        float s2 = 0.0f;
        constexpr int U = 4;
        for (int j0 = warp; j0 < (skip < 2 ? groups : 0); j0 += kWarps * U) {
            float4 v[U], u[U];
#pragma unroll
            for (int k = 0; k < U; ++k) {
                const int c = (j0 + k * kWarps) * kGroup + lane * 4;
                const bool in = j0 + k * kWarps < groups && c < cols;
                v[k] = in ? __ldcg(reinterpret_cast<const float4*>(x + c)) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                u[k] = in && up ? __ldcg(reinterpret_cast<const float4*>(up + c)) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
#pragma unroll
            for (int k = 0; k < U; ++k) {
                const int j = j0 + k * kWarps;  // warp-uniform: the quantizer's shuffles see the whole warp
                if (j >= groups) break;
                float a[4] = {v[k].x, v[k].y, v[k].z, v[k].w};
                if (up) {
                    const float w[4] = {u[k].x, u[k].y, u[k].z, u[k].w};
#pragma unroll
                    for (int i = 0; i < 4; ++i) a[i] = __fdividef(a[i], 1.0f + __expf(-a[i])) * w[i];
                }
#pragma unroll
                for (int i = 0; i < 4; ++i) s2 = fmaf(a[i], a[i], s2);
                uint32_t ph[1], pl[1];
                int X;
                float amax;
                quant_lanes<4, 32, A8>(a, ph, pl, X, amax);
                const int c = j * kGroup + lane * 4;
                *reinterpret_cast<uint32_t*>(xh + c) = ph[0];
                *reinterpret_cast<uint32_t*>(xl + c) = pl[0];
                if (lane == 0) gsc[j] = act_record<A8>(amax, X);
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s2 += __shfl_xor_sync(0xffffffffu, s2, o);
        if (lane == 0) s2w[warp] = s2;
        compute_sync();
        if (tr) tr[2] = now_ns();
        float scale = 1.0f;
        if (st.rms) {
            float t = 0.0f;
#pragma unroll
            for (int w = 0; w < kWarps; ++w) t += s2w[w];
            scale = rsqrtf(t / float(cols) + st.eps);
        }

        int r0, r1;
        my_rows(st.rbs, r0, r1);
        for (int rb = r0; rb < r1; ++rb) {
            const DevProblem& pr = problem_of(st, rb);
            float yacc = 0.0f;
            for (int c0 = 0; c0 < st.iters; c0 += kStageIters) {
                const int n = min(kStageIters, st.iters - c0);
                mbar_wait(smem_addr(&full[slot]), parity);
                if (warp < n && !skip) {  // one iteration a warp
                    const uint8_t* sb = ring + size_t(slot) * S::kBytes;
                    uint4 w[4];
#pragma unroll
                    for (int i = 0; i < 4; ++i) w[i] = reinterpret_cast<const uint4*>(sb)[(warp * 4 + i) * 32 + lane];
                    Bytes<LB> c[NREC];
#pragma unroll
                    for (int p = 0; p < NREC; ++p) c[p].lds(sb + S::kCodeBytes + ((warp * NREC + p) * 32 + lane) * LB);
                    const int it = c0 + warp;
                    iteration<F, kGroup, kGroup, A8>(w, c, xh + it * 256, xl + it * 256, gsc + it * 2, yacc);
                }
                __syncwarp();
                if (lane == 0) mbar_arrive(smem_addr(&empty[slot]));
                if (++slot == stages) slot = 0, parity ^= 1;
            }
            // Double-buffered partials: warp 0 sums buffer rp while the others go on into the next row block.
            red[rp][warp][lane] = yacc;
            compute_sync();
            if (warp == 0) {
                float t = 0.0f;
#pragma unroll
                for (int w = 0; w < kWarps; ++w) t += red[rp][w][lane];
                const int row = (rb - pr.rb_begin) * 32 + lane;
                if (row < pr.rows) pr.y[row] = t * scale;
            }
            rp ^= 1;
        }
        if (tr) tr[3] = now_ns();
        compute_sync();  // this block's outputs written and its shared input no longer read
        if (s + 1 < nsteps && threadIdx.x == 0 && skip < 2) {
            __threadfence();
            atomicAdd(counters, 1u);
        }
    }
    // The last block out resets the barrier for the next launch (every block has passed all its waits).
    if (threadIdx.x == 0) {
        __threadfence();
        if (atomicAdd(counters + 1, 1u) == gridDim.x - 1) {
            counters[0] = 0, counters[1] = 0;
            __threadfence();
        }
    }
}

// Dynamic shared memory besides the ring: h, l int8 and the group records of the widest input, the step table.
size_t act_table_bytes(int max_cols_pad, int nsteps) {
    return size_t(max_cols_pad) * 2 + size_t(max_cols_pad / kGroup) * sizeof(float2) + size_t(nsteps) * sizeof(DevStep);
}

template <int F, bool A8>
void launch_stack(const void* table, int nsteps, unsigned* counters, int stages, int max_cols_pad, unsigned long long* trace, int skip,
                  cudaStream_t s) {
    const size_t smem = size_t(stages) * Stage<F>::kBytes + act_table_bytes(max_cols_pad, nsteps);
    launch_pdl(stack_kernel<F, A8>, dim3(sm_count()), dim3(kThreads), smem, s, static_cast<const DevStep*>(table), nsteps, counters,
               stages, max_cols_pad, trace, skip);
}

// Ring stages that fit beside the activation buffers, and whether one block an SM fits at all.
template <int F, bool A8>
int fit_stages(int max_cols_pad, int nsteps) {
    int dev = 0, optin = 0;
    PLANEQ_CUDA_CHECK(cudaGetDevice(&dev));
    PLANEQ_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    cudaFuncAttributes fa{};
    PLANEQ_CUDA_CHECK(cudaFuncGetAttributes(&fa, stack_kernel<F, A8>));
    const size_t act = act_table_bytes(max_cols_pad, nsteps);
    const long avail = long(optin) - long(fa.sharedSizeBytes) - long(act);
    const int stages = int(std::min<long>(kMaxStages, avail / Stage<F>::kBytes));
    if (stages < 2) return 0;
    const size_t smem = size_t(stages) * Stage<F>::kBytes + act;
    PLANEQ_CUDA_CHECK(cudaFuncSetAttribute(stack_kernel<F, A8>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    int per_sm = 0;
    PLANEQ_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, stack_kernel<F, A8>, kThreads, smem));
    return per_sm >= 1 ? stages : 0;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

std::string PersistentStack::unsupported(const std::vector<StackStep>& steps) {
    if (steps.empty()) return "no steps";
    const GpuWeight* w0 = steps[0].w[0];
    if (!w0) return "a step without weights";
    for (size_t i = 0; i < steps.size(); ++i) {
        const StackStep& st = steps[i];
        if (st.n < 1 || st.n > 3) return "step " + std::to_string(i) + ": 1 to 3 weights a step";
        if (!aligned16(st.x) || !aligned16(st.up) || !st.x) return "step " + std::to_string(i) + ": the input must be 16-byte aligned";
        for (int k = 0; k < st.n; ++k) {
            const GpuWeight* w = st.w[k];
            if (!w || !st.y[k]) return "step " + std::to_string(i) + ": a missing weight or output";
            if (!bw_decode_path(*w, 1)) return "step " + std::to_string(i) + ": the weight has no batch-1 bw layout (int b=2 or bitplane k=2)";
            if (w->fmt != w0->fmt || w->group != kGroup) return "the weights must share one format, at group 128";
            if (w->supers != st.w[0]->supers || w->cols != st.w[0]->cols) return "step " + std::to_string(i) + ": its weights must share a width";
            if (w->cols % 4 != 0) return "step " + std::to_string(i) + ": columns must be a multiple of 4";
            if (!aligned16(w->bw_codes) || !aligned16(w->bw_coefs)) return "step " + std::to_string(i) + ": weight buffers must be 16-byte aligned";
        }
    }
    return "";
}

PersistentStack::PersistentStack(const std::vector<StackStep>& steps) {
    const std::string why = unsupported(steps);
    if (!why.empty()) fail("cuda persistent decode stack: " + why);
    fmt_ = steps[0].w[0]->fmt;
    a8_ = decode_options().bw_act8;
    std::vector<DevStep> table(steps.size());
    for (size_t i = 0; i < steps.size(); ++i) {
        const StackStep& st = steps[i];
        DevStep& d = table[i];
        d = DevStep{};
        d.nprob = st.n, d.iters = int(st.w[0]->supers), d.cols = int(st.w[0]->cols);
        d.x = st.x, d.up = st.up, d.rms = st.rms ? 1 : 0, d.eps = st.eps;
        for (int k = 0; k < st.n; ++k) {
            const GpuWeight& w = *st.w[k];
            d.prob[k] = DevProblem{static_cast<const uint4*>(w.bw_codes), static_cast<const uint8_t*>(w.bw_coefs), st.y[k], int(w.rows), d.rbs};
            d.rbs += int((w.rows + 31) / 32);
        }
        max_cols_ = std::max(max_cols_, d.iters * 256);
    }
    nsteps_ = int(steps.size());
    stages_ = fmt_ == kInt2 ? (a8_ ? fit_stages<kInt2, true>(max_cols_, nsteps_) : fit_stages<kInt2, false>(max_cols_, nsteps_))
                            : (a8_ ? fit_stages<kBit2, true>(max_cols_, nsteps_) : fit_stages<kBit2, false>(max_cols_, nsteps_));
    if (stages_ == 0) fail("cuda persistent decode stack: one block an SM does not fit (input of " + std::to_string(max_cols_) + " columns)");
    // Measurement knobs: PLANEQ_PS_STAGES = fewer ring stages; PLANEQ_PS_SKIP=1 skips the weights' math (wrong results).
    if (const char* v = std::getenv("PLANEQ_PS_STAGES"); v && std::atoi(v) >= 2) stages_ = std::min(stages_, std::atoi(v));
    if (const char* v = std::getenv("PLANEQ_PS_SKIP"); v && std::atoi(v) != 0) {  // 2: also no barrier, no quantization
        skip_ = std::atoi(v);
        std::fprintf(stderr, "warning: PLANEQ_PS_SKIP: the persistent stack skips its math, outputs are WRONG (timing only)\n");
    }
    PLANEQ_CUDA_CHECK(cudaMalloc(&table_, table.size() * sizeof(DevStep)));
    PLANEQ_CUDA_CHECK(cudaMemcpy(table_, table.data(), table.size() * sizeof(DevStep), cudaMemcpyHostToDevice));
    PLANEQ_CUDA_CHECK(cudaMalloc(&counters_, 2 * sizeof(unsigned)));
    PLANEQ_CUDA_CHECK(cudaMemset(counters_, 0, 2 * sizeof(unsigned)));
}

PersistentStack::~PersistentStack() {
    cudaFree(table_);
    cudaFree(counters_);
}

void PersistentStack::launch(unsigned long long* trace, cudaStream_t s) const {
    if (fmt_ == kInt2) a8_ ? launch_stack<kInt2, true>(table_, nsteps_, counters_, stages_, max_cols_, trace, skip_, s)
                           : launch_stack<kInt2, false>(table_, nsteps_, counters_, stages_, max_cols_, trace, skip_, s);
    else a8_ ? launch_stack<kBit2, true>(table_, nsteps_, counters_, stages_, max_cols_, trace, skip_, s)
             : launch_stack<kBit2, false>(table_, nsteps_, counters_, stages_, max_cols_, trace, skip_, s);
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

void PersistentStack::run(cudaStream_t s) const { launch(nullptr, s); }

std::vector<uint64_t> PersistentStack::run_traced(cudaStream_t s) const {
    const size_t n = size_t(nsteps_) * size_t(sm_count()) * PersistentStack::kTraceFields;
    unsigned long long* d = nullptr;
    PLANEQ_CUDA_CHECK(cudaMalloc(&d, n * sizeof(unsigned long long)));
    PLANEQ_CUDA_CHECK(cudaMemset(d, 0, n * sizeof(unsigned long long)));
    launch(d, s);
    std::vector<uint64_t> t(n);
    PLANEQ_CUDA_CHECK(cudaStreamSynchronize(s));
    PLANEQ_CUDA_CHECK(cudaMemcpy(t.data(), d, n * sizeof(uint64_t), cudaMemcpyDeviceToHost));
    cudaFree(d);
    return t;
}

int PersistentStack::blocks() const { return sm_count(); }

}  // namespace planeq::cuda
