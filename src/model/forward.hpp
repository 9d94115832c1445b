// The forward pass, written to read like the math:
//   x = embed(tokens)
//   for each block:  x += o(attention(rope(norm_q(q(rms(x)))), rope(norm_k(k(rms(x)))), v(rms(x))))
//                    x += down(silu(gate(rms(x))) * up(rms(x)))
//   logits = lm_head(rms(x))
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/kv_cache.hpp"
#include "model/model.hpp"

namespace planeq {

// Activation buffers for up to `max_tokens` tokens per call; reused across calls.
struct ForwardBuffers {
    ForwardBuffers() = default;
    ForwardBuffers(const ModelConfig& c, int64_t max_tokens);
    int64_t max_tokens = 0;
    std::vector<float> x, h, q, k, v, attn, gate, up, logits;
};

enum class Logits { None, Last, All };

// Runs tokens through the model at positions cache.length … cache.length + n − 1, appending their keys
// and values to the cache. Returns the logits ([1 × vocab] for Last, [n × vocab] for All) or an empty span.
std::span<const float> forward(const Model& m, KVCache& cache, ForwardBuffers& buf, std::span<const int32_t> tokens,
                               Logits want);

// One transformer block over n tokens (in place on x[n × hidden]); the quantization pipeline drives this
// block by block. Keys/values are written to the cache at positions pos0 … pos0 + n − 1.
void block_forward(const Model& m, int64_t layer, float* x, int64_t n, int64_t pos0, KVCache& cache, ForwardBuffers& buf);

// Causal attention of n queries (positions pos0…) over cached keys 0 … pos0 + n − 1 of one layer.
// q: [n × q_dim] (already rotated); out: [n × q_dim].
void attention(const ModelConfig& c, const KVCache& cache, int64_t layer, const float* q, int64_t n, int64_t pos0, float* out);

// The feed-forward half of a block (x += down(silu(gate(rms(x))) ⊙ up(rms(x)))), shared with the slot-cache path.
void ffn_block(const Model& m, int64_t layer, float* x, int64_t n, ForwardBuffers& buf);

void rmsnorm(const float* x, const float* weight, int64_t n, int64_t dim, double eps, float* out);
// Per-head RMSNorm (when `norm` is non-empty: Qwen3 q/k norm) then RoPE at positions pos0, pos0 + 1, ...
void norm_and_rotate(const Model& m, const std::vector<float>& norm, float* qk, int64_t n, int64_t heads, int64_t pos0);
// gate ← silu(gate) ⊙ up, n elements.
void swiglu(float* gate, const float* up, int64_t n);

}  // namespace planeq
