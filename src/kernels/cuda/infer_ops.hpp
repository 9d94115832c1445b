// The non-GEMV kernels of the GPU forward pass (model/cuda/gpu_runner.cpp): embedding gather, RMSNorm with
// the residual add fused, per-head q/k RMSNorm + RoPE + KV-cache store, causal attention (prefill: many
// queries; decode: one query against the cache, split over the keys), bias add, argmax, and the bf16 GEMM
// for dense prefill. Host-callable from plain C++; all pointers are device pointers, all work on stream `s`.
//
// Positions: kernels that need the current position take a Pos. In graph replay (decode) the position lives
// on the device (Pos::dev, advanced by advance_pos at the end of each step); otherwise Pos::host is used.
#pragma once

#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace planeq::cuda {

struct Pos {
    const int* dev = nullptr;  // when set: the position is *dev
    int host = 0;
};

// x[t] = row tokens[t] of the table ([vocab × hidden], bf16 or f32), t < n. Ids outside [0, vocab) give zeros
// (the host checks ids before the call).
void embed_rows(const void* table, bool bf16, const int32_t* tokens, int n, int hidden, float* x, cudaStream_t s);

// out[t] = w ⊙ x[t] / sqrt(mean(x[t]²) + eps) for n rows of `dim`. With `delta` non-null, x[t] += delta[t]
// first, in place (the residual add before the next norm). delta may alias nothing else.
void add_rmsnorm(float* x, const float* delta, const float* w, int n, int dim, float eps, float* out, cudaStream_t s);
// x += delta, n values.
void add_inplace(float* x, const float* delta, int64_t n, cudaStream_t s);
// y[t][r] += bias[r], t < n, r < rows.
void add_bias(float* y, const float* bias, int n, int rows, cudaStream_t s);

// After the q/k/v projections of n tokens at positions pos … pos + n − 1: per head, the optional RMSNorm
// (q_norm/k_norm non-null: Qwen3) and RoPE (cos/sin tables [position][head_dim / 2]) on q in place and on k;
// k and v then go to the cache rows pos + t of kc/vc ([capacity × kv_dim] for this layer).
struct QkvArgs {
    float* q;               // [n × n_heads × hd], rotated in place
    const float *k, *v;     // [n × n_kv × hd]
    const float *q_norm, *k_norm;
    const float *cos, *sin;
    float *kc, *vc;
    int n, n_heads, n_kv, hd;
    float eps;
    Pos pos;
};
void qk_norm_rope_store(const QkvArgs& a, cudaStream_t s);

// Causal attention (GQA: head h reads KV head h / (n_heads / n_kv)) of n queries at positions pos … pos + n − 1
// over cache rows 0 … pos + n − 1 (a sliding window W > 0 keeps keys > qpos − W). q, out: [n × n_heads × hd];
// kc, vc: [capacity × n_kv·hd]. fp32 throughout; online softmax (flash-attention order). hd ∈ {32, 64, 128, 256}.
struct AttnArgs {
    const float* q;
    const float *kc, *vc;
    float* out;
    int n, n_heads, n_kv, hd, window;
    float scale;
    Pos pos;
};
void attention_prefill(const AttnArgs& a, cudaStream_t s);
// One query per head (n = 1) split over kDecodeSplits key ranges, then merged; graph-safe (the key count is
// read on the device). `scratch`: ≥ decode_scratch_floats(n_heads, hd) floats.
constexpr int kDecodeSplits = 32;
inline int64_t decode_scratch_floats(int n_heads, int hd) { return int64_t(n_heads) * kDecodeSplits * (hd + 2); }
void attention_decode(const AttnArgs& a, float* scratch, cudaStream_t s);

// out[t][k] = x[t][perm[k]] for n rows of `cols` (act-order weights' inputs).
void gather_columns(const float* x, const int32_t* perm, int n, int cols, float* out, cudaStream_t s);

// out[0] = argmax of x[0 … n) (first maximum wins ties, NaN ignored).
void argmax(const float* x, int n, int32_t* out, cudaStream_t s);
// *p = v; *p += 1 (graph-safe position bookkeeping).
void set_int(int* p, int v, cudaStream_t s);
void advance_pos(int* p, cudaStream_t s);

// The bf16 values [rows × cols] of a dense resident weight (cuda_gemv.hpp's upload); null for plane weights.
struct GpuWeight;
const void* dense_bf16(const GpuWeight& w);

// y[n × rows] = x[n × cols] · Wᵀ for a bf16 weight W [rows × cols] (row-major, device) through cuBLAS, with x
// split into two bf16 terms (x = hi + lo: ~16 significant bits, so the result is fp32-accurate to ~1e-5,
// where one bf16 rounding of x would cost ~4e-3). `scratch`: ≥ 2 · n · cols bf16 values.
void gemm_bf16_split(const void* w, int64_t rows, int64_t cols, const float* x, int n, uint16_t* scratch, float* y, cudaStream_t s);

}  // namespace planeq::cuda
