// Attention of one query head over a slot KV cache (sink + window, or full) whose keys are stored
// before RoPE and rotated by their slot position at read time (StreamingLLM's pos-shift), in mixed
// precision: f32, fp16 (protected sink tokens) or b-bit groups (kv_quant.hpp), run by run.
//
//   out = Σ_j softmax_j(scale·⟨q, R(pos_j)·k_j⟩) · v_j      (q already rotated to the query's position)
//
// Scalar reference plus AVX-512 (head_dim/2 and the group a multiple of 16) and AVX2 (head_dim/2 and the group a
// multiple of 8), chosen at run time.
#pragma once

#include <cstdint>

namespace planeq::cpu {

enum class KvStore { F32, F16, Quant };

// A run of consecutive cache slots of one KV head with consecutive RoPE positions pos0, pos0 + 1, ...
struct KvRun {
    KvStore kind = KvStore::F32;
    const void* k = nullptr;  // first slot at this head's offset: float / uint16 fp16 / uint8 codes
    const void* v = nullptr;
    const uint16_t* kp = nullptr;  // Quant: (scale, min) fp16 pairs of the first slot at this head's offset
    const uint16_t* vp = nullptr;
    int64_t stride = 0;   // between slots: elements (F32, F16) or code bytes (Quant)
    int64_t pstride = 0;  // between slots: uint16 parameters (Quant)
    int64_t count = 0;    // slots
    int64_t pos0 = 0;     // RoPE position of the first slot
};

struct KvAttnParams {
    int64_t head_dim = 0;
    int bits = 0, group = 0;                         // Quant runs
    const float* cos = nullptr, *sin = nullptr;      // RoPE tables [position][head_dim/2] (rotate_half pairing);
                                                     // null: the keys are stored rotated (no rotation at read)
    float scale = 1;                                 // 1/√head_dim
};

// scores: scratch for Σ count floats (left holding the probabilities); out[head_dim] is overwritten.
void kv_attend(const KvAttnParams& p, const float* q, const KvRun* runs, int nruns, float* scores, float* out);

// Per-ISA parts: raw scores of one run (scale applied) and out += Σ_j probs_j v_j over one run.
void kv_scores_scalar(const KvAttnParams& p, const float* q, const KvRun& r, float* scores);
void kv_values_scalar(const KvAttnParams& p, const float* probs, const KvRun& r, float* out);
void kv_scores_avx512(const KvAttnParams& p, const float* q, const KvRun& r, float* scores);
void kv_values_avx512(const KvAttnParams& p, const float* probs, const KvRun& r, float* out);
bool kv_avx512_supports(const KvAttnParams& p);  // shape constraints of the AVX-512 kernels
void kv_scores_avx2(const KvAttnParams& p, const float* q, const KvRun& r, float* scores);
void kv_values_avx2(const KvAttnParams& p, const float* probs, const KvRun& r, float* out);
bool kv_avx2_supports(const KvAttnParams& p);  // shape constraints of the AVX2 kernels

// Whether kv_attend runs vector kernels for these parameters at the current SIMD level (else the scalar ones).
bool kv_vectorized(const KvAttnParams& p);

}  // namespace planeq::cpu
