// CUDA decode kernels (built only with -DPLANEQ_CUDA=ON): weights uploaded once, then y = W x for a
// small batch (1 … 16 tokens) on the GPU. Host-callable from plain C++ (no CUDA syntax here).
//
// GPU layout (repacked at upload; docs/cuda.md explains it in full): every packed format is rewritten as
// P "planes" of small unsigned integer codes (1, 2 or 4 bits each) plus per-(row, group) coefficients, so
// that one tensor-core kernel serves them all:
//     ŵ_{r,i} = bias_{r,j} + Σ_p coef_{p,r,j} · v_{p,r,i}          (i in group j)
//   int b=2: one 2-bit plane v = q, coef = s, bias = −s·z;  b=3: a 2-bit plane (q & 3, coef s) and a 1-bit
//   plane (q >> 2, coef 4s);  b=4: one 4-bit plane.  bitplane k: k 1-bit planes, coef c_m, bias c_0.
//   tritplane: two 2-bit planes v = t + 1, coef α_p, bias −(α1 + α2).
// The codes sit in mma.sync m16n8k16 A-fragment order, so each lane's 16-byte load feeds its fragments
// directly and a warp reads 512 contiguous bytes per load. Activations enter the tensor cores as two fp16
// halves (x = hi + lo), so the product keeps ~fp32 accuracy; the codes are exact in fp16.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "formats/format.hpp"

typedef struct CUstream_st* cudaStream_t;

namespace planeq::cuda {

// True when a CUDA device is usable; otherwise false and `why` says what failed.
bool device_available(std::string* why = nullptr);

// A weight resident on the GPU. Opaque: kernels know its layout.
struct GpuWeight;
struct GpuWeightDeleter {
    void operator()(GpuWeight* w) const;
};
using GpuWeightPtr = std::unique_ptr<GpuWeight, GpuWeightDeleter>;

// Repacks (int, bitplane, tritplane) or copies (bf16; f32/f16 are rounded to bf16) and uploads. Throws
// planeq::Error with a clear message for what the GPU does not support (g_idx, unknown formats).
GpuWeightPtr upload(const PackedWeight& w);
// A second resident copy of the same weight (distinct device memory; benchmarks use it to build many layers).
GpuWeightPtr clone(const GpuWeight& w);
// A bf16 weight with random contents, generated on the GPU (large dense benchmarks, no host copy).
GpuWeightPtr random_bf16(int64_t rows, int64_t cols, float sigma, uint64_t seed);

int64_t rows(const GpuWeight& w);
int64_t cols(const GpuWeight& w);
size_t device_bytes(const GpuWeight& w);   // bytes a GEMV reads from weights (codes + coefficients)
std::string describe(const GpuWeight& w);  // "int b2 g128 asym: 1 plane(s) [2]"

// Scratch the plane kernels need for one activation batch: x split into fp16 hi/lo in fragment order and
// per-group sums. Sized for cols ≤ max_cols, batch ≤ 16.
struct ActBuffer;
struct ActBufferDeleter {
    void operator()(ActBuffer* a) const;
};
using ActBufferPtr = std::unique_ptr<ActBuffer, ActBufferDeleter>;
ActBufferPtr make_act_buffer(int64_t max_cols);

// Prepares `x` (device, [batch × cols] f32 row-major) for plane GEMVs with group size `group`. With
// `up` non-null, the activation is silu(x) · up (the MLP's gate/up product), fused here. With `rms_norm`,
// GEMVs on this buffer compute W x / rms(x), rms(x) = sqrt(mean(x²) + 1e-5) per token: RMSNorm's scale fused
// into the output (a norm's per-channel weights would be applied to x first).
// `for_weight` (optional): the weight(s) this buffer will feed. Where that weight and batch take the int8
// decode path (int8_decode_path), the buffer is prepared for it (2× faster decode at 2 bits); the buffer then
// serves only weights of the same format family (bit width) and group. Without it, the fp16 path as before.
void prepare_act(ActBuffer& a, const float* x, const float* up, int64_t cols, int batch, int group, cudaStream_t s,
                 bool rms_norm = false, const GpuWeight* for_weight = nullptr);

// One token's residual add and RMSNorm inside the GEMVs that read it (the batch-1 bw path, bw_decode_path of
// `for_weight`): they compute W·(norm_w ⊙ v / sqrt(mean(v²) + eps)) with v = x + delta (delta may be null), and
// the first tile's blocks of the first launch store v to `x_out` (not `x`: the other blocks still read it). Saves
// the add + RMSNorm kernel before q/k/v and before gate/up. False (nothing recorded) where the path does not apply.
bool prepare_act_norm(ActBuffer& a, const float* x, const float* delta, const float* norm_w, float eps, float* x_out, int64_t cols,
                      int group, const GpuWeight& for_weight);

// Decode-path switches, read when a kernel is launched or a buffer prepared (a captured graph keeps what was
// set at capture). The environment variables PLANEQ_PDL, PLANEQ_GEMV_I8, PLANEQ_L2PF, PLANEQ_FUSE_PREP, PLANEQ_GEMV_BW,
// PLANEQ_BW_PAIR, PLANEQ_BW_L2, PLANEQ_BW_NORM (0 / 1), PLANEQ_I8_WARPS (4 / 8), PLANEQ_I8_STAGES (0 / 4), PLANEQ_BW_ROWS (1 / 2 / 4) and PLANEQ_BW_SPLIT (1 / 2 / 4 / 8) override the defaults at first use. docs/cuda.md has what each is worth.
struct DecodeOptions {
    bool pdl = true;          // programmatic dependent launch (non-default streams): a kernel streams its weights
                              // while its predecessor finishes, so a kernel that WRITES weights must not run
                              // right before a GEMV on the same stream without an event/sync between them
    bool int8 = true;         // int8 tensor-core decode (mma.m16n8k32) for batch ≤ 4 where the format allows
    bool l2_prefetch = false; // each GEMV block asks L2 for its whole weight tile when it starts
    int i8_warps = 0;         // int8 path: warps per 16-row tile, 4 or 8; 0: automatic
    int i8_stages = -1;       // int8 path: weight pipeline depth, 0 (registers, one superchunk ahead) or 4 (a
                              // cp.async ring in shared memory: measured slower); -1: the default (0)
    bool fuse_prep = false;   // gemv_multi_prep: the next GEMV's prep inside this GEMV's launch (measured slower)
    bool bw = true;           // batch 1, int b=2 / bitplane k=2: the bandwidth-first CUDA-core GEMV (gemv_bw.cu), which
                              // quantizes its input itself (prepare_act launches nothing); off: the int8 path above.
                              // On: the stack measured +17% (int2) / +9% (bitplane k=2) (docs/cuda.md, fourth round)
    bool bw_norm = true;      // that kernel: the forward's residual add + RMSNorm inside the q/k/v and gate/up GEMVs
                              // (prepare_act_norm), not a kernel of their own before each (docs/cuda.md)
    int bw_rows = 0;          // that kernel: 32-row blocks per CTA, 1, 2 or 4; 0: automatic
    int bw_split = 0;         // that kernel: blocks (a thread-block cluster) sharing a row tile's columns, 1, 2, 4
                              // or 8; 0: automatic (split while there are fewer tiles than SMs)
    bool bw_pair = true;      // that kernel: gate/up in one launch of 64-row tiles of both, whose epilogue quantizes
                              // silu(gate)·up for down (gemv_multi_prep), so down neither stages f32 nor quantizes
    bool bw_l2 = false;       // that kernel: each warp requests its later weight chunks from L2 at the start (measured
                              // 1.5% slower in the stack)
    bool bw_act8 = false;     // that kernel: int8 activations per group (x ≈ s·h, s = max|x|/127), the CPU GEMVs' own
                              // quantizer and int sums, one dp4a per 4 weights; off: x ≈ s·(h + l/254), two dp4a,
                              // ~2e-5 relative (docs/cuda.md)
    bool bw_down_i8 = true;   // that kernel's paired gate/up (hi/lo): down's input written in the int8 path's layout
                              // (groups of 64 columns) and down run on the int8 path's GEMV, int b=2 only; the
                              // stack measured +1.2% (821 → 831 tokens/s, docs/cuda.md tenth round)
};
DecodeOptions decode_options();
void set_decode_options(const DecodeOptions& o);
// True when `w` at `batch` takes the int8 path (with the current options): batch ≤ 4 and int b=2 (g ≥ 64),
// b=4 (any g), tritplane (g ≥ 64), bitplane k=2…4 (g ≥ 128). int b=3 and the rest take the fp16 path.
bool int8_decode_path(const GpuWeight& w, int batch);
// True when `w` at `batch` takes the bandwidth-first path (DecodeOptions::bw): batch 1, int b=2 or bitplane k=2.
bool bw_decode_path(const GpuWeight& w, int batch);

// y[batch × rows] = x[batch × cols] · Wᵀ on `s`; x, y device pointers. Plane formats need `act` prepared
// from this x (and this weight's group size); bf16 reads x directly (act may be null).
void gemv(const GpuWeight& w, const ActBuffer* act, const float* x, int batch, float* y, cudaStream_t s);

// Up to three weights with the same input (q/k/v, gate/up) in one launch: fewer launches per token.
void gemv_multi(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, const float* x, int batch,
                cudaStream_t s);

// The next GEMV's input in a decode chain (GEMV → prep → GEMV): prepared as
//   prepare_act(*act, y[src], up_src >= 0 ? y[up_src] : nullptr, rows of w[src], batch, weight->group, s, rms_norm, weight)
// would prepare it (up_src: silu(y[src]) · y[up_src], the MLP's gate/up → down).
struct NextAct {
    ActBuffer* act;
    const GpuWeight* weight;
    int src = 0, up_src = -1;
    bool rms_norm = false;
};
// gemv_multi, then the next GEMV's prep. Where both GEMVs take the int8 path, the source's rows are a multiple of
// 256 and `next.act` is not `act` (DecodeOptions::fuse_prep), it is ONE launch: the last block to finish each
// group of output rows quantizes that group (no prep kernel, one launch dependency less per GEMV). Where gate/up and
// down all take the batch-1 bw path (DecodeOptions::bw_pair, intermediate size a multiple of 256), it is one launch
// of 64-row tiles of gate and up whose epilogue quantizes silu(gate)·up for down (ActBuffer::bw_preq). Otherwise it is
// exactly gemv_multi + prepare_act. Either way `next.act` then feeds `next.weight`'s gemv.
void gemv_multi_prep(const GpuWeight* const* w, float* const* y, int n, const ActBuffer* act, const float* x, int batch,
                     cudaStream_t s, const NextAct& next);

// cuBLAS bf16 baseline: y = x · Wᵀ with x converted to bf16 (cuBLAS needs matching input types), fp32 out.
// `xbf16` is device scratch of ≥ batch × cols bf16 values.
void gemv_cublas_bf16(const GpuWeight& w, const float* x, uint16_t* xbf16, int batch, float* y, cudaStream_t s);

// out[i] = silu(g[i]) · u[i] for n values (the dense MLP's activation; plane formats fuse it into prepare_act).
void silu_mul(const float* g, const float* u, float* out, int64_t n, cudaStream_t s);

// A baseline for the decode stack (load_only.cu): one launch that only reads `bytes` (a multiple of 16) at `p`
// (16-byte aligned) the way the batch-1 GEMVs read their weights (PDL, each thread's first loads requested before
// griddepcontrol.wait, 2 blocks of 512 threads an SM), then nothing; `sink` is written only if an impossible
// value comes out. A chain of these with a stack's launch sizes is the ceiling of dependent launches of those sizes.
void load_only(const void* p, size_t bytes, float* sink, cudaStream_t s);

// ---- Prefill (many tokens): the plane GEMM on wgmma (gemm_planes.cu) ----
// Activations for the plane GEMM: x converted once to fp16 in the GPU's shared-memory image (docs/cuda.md).
struct PrefillBuffer;
struct PrefillBufferDeleter {
    void operator()(PrefillBuffer* b) const;
};
using PrefillBufferPtr = std::unique_ptr<PrefillBuffer, PrefillBufferDeleter>;
PrefillBufferPtr make_prefill_buffer(int64_t max_tokens, int64_t max_cols);

// Prepares x (device, [tokens × cols] f32 row-major) for gemm(): with `up`, silu(x)·up; with `rms_norm`, each
// token is divided by rms(x) = sqrt(mean(x²) + 1e-5) first (RMSNorm's scale; the result is W x / rms(x), as
// for the GEMV). Values must fit fp16 after that (|x| < 65504).
void prepare_prefill(PrefillBuffer& b, const float* x, const float* up, int64_t cols, int tokens, cudaStream_t s,
                     bool rms_norm = false);

// y[tokens × rows] = x · Ŵᵀ (f32 out) for the tokens `b` was prepared with; plane formats only (bf16 prefill is
// cuBLAS: gemv_cublas_bf16 takes any batch). Up to three weights with the same input in one launch.
void gemm(const GpuWeight& w, const PrefillBuffer& b, float* y, cudaStream_t s);
void gemm_multi(const GpuWeight* const* w, float* const* y, int n, const PrefillBuffer& b, cudaStream_t s);
// Testing hook: force the CTA tile, 1: 128 weight rows × 128 tokens, 2: 256 × 128, 3: 128 × 256; 0 = automatic
// (by the GPU's waves; the environment variable PLANEQ_GEMM_TILE=1|2|3 forces one too).
void gemm_force_row_tile(int rt);

}  // namespace planeq::cuda
