// The KV cache of the attention-sink features (SINKS.md §3–4): N pinned sink slots plus a ring of recent
// tokens (StreamingLLM), or a plain no-eviction cache, with keys stored before RoPE and rotated by their
// slot position when attention reads them, and K/V optionally quantized in b-bit groups along the head
// dimension with the first tokens kept in fp16.
//
// Token t of the stream (t = 0, 1, ...) goes to sink slot t if t < N, else to ring slot N + (t − N) mod R.
// A query at stream index t attends to the sinks {0 … min(N, t+1) − 1} and to the recent tokens
// r0 … t with r0 = max(N, t − W + 1) (W = ∞ for the full cache). Positions are cache indices, never stream
// indices (StreamingLLM's pos-shift): sink j sits at position j, recent token u at N + (u − r0), and the
// query at L − 1 where L is the number of tokens it sees, so no distance exceeds N + W − 1.
// The ring holds R = W + B − 1 slots, where B is the most tokens one forward call adds in steady state:
// B = 1 (decode) keeps exactly N + W slots; a larger B lets a block of B queries run together (each with
// its own attention set, so the result equals token-by-token decoding up to float rounding).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/hf_config.hpp"
#include "kernels/cpu/kv_attention.hpp"
#include "model/forward.hpp"

namespace planeq {

enum class CacheMode { Full, Window, Streaming };

struct CacheOptions {
    CacheMode mode = CacheMode::Full;
    int64_t sinks = 0;       // Streaming: pinned sink tokens N
    int64_t window = 0;      // Window / Streaming: recent tokens W
    int kv_bits = 0;         // 0 = f32; 8, 4, 2 = quantized groups
    int kv_group = 32;       // channels per quantization group (along the head dimension)
    int64_t keep_sinks = 0;  // with kv_bits: the first tokens kept in fp16 (≤ N with a streaming cache)

    // The classic f32 full cache with post-RoPE keys (model/kv_cache.hpp), which stays the default path.
    bool reference() const { return mode == CacheMode::Full && kv_bits == 0; }
    std::string describe() const;  // e.g. "streaming N=4 W=256, kv 4-bit g32, 4 sinks fp16"
    nlohmann::json to_json() const;
};

CacheMode parse_cache_mode(const std::string& s);  // full | window | streaming
const char* cache_mode_name(CacheMode m);
// Throws planeq::Error with one clear line when the options do not make sense for the model.
void validate_cache_options(const CacheOptions& o, const ModelConfig& c);

class SlotCache {
public:
    // capacity: tokens of a full cache (ignored by window/streaming); max_batch: B above.
    SlotCache(const ModelConfig& c, const CacheOptions& o, int64_t capacity, int64_t max_batch = 1);

    struct View {
        int runs = 0;
        int64_t slot[3] = {}, count[3] = {}, pos0[3] = {};
        int64_t length = 0;  // L: tokens visible
        int64_t qpos = 0;    // the query's RoPE position, L − 1
    };

    const CacheOptions& options() const { return opt_; }
    int64_t slots() const { return n_sinks_ + ring_; }
    int64_t positions() const;                // RoPE positions ever used (table size)
    int64_t max_chunk(int64_t t0) const;      // tokens one forward may add starting at stream index t0
    int64_t slot_of(int64_t t) const { return t < n_sinks_ ? t : n_sinks_ + (t - n_sinks_) % ring_; }
    View view(int64_t t) const;               // what the query at stream index t attends to
    // Stores token t's pre-RoPE key and value (kv_dim floats each) for one layer, quantizing on write.
    void write(int64_t layer, int64_t t, const float* k, const float* v);
    // Kernel runs of one layer and KV head for a view (split at the fp16/quantized boundary): at most 6.
    int runs(const View& v, int64_t layer, int64_t kv_head, cpu::KvRun* out) const;
    cpu::KvAttnParams kernel_params(const class Rope& rope) const;
    // Stored (dequantized) pre-RoPE key and value of a slot: tests and diagnostics.
    void read(int64_t layer, int64_t slot, float* k, float* v) const;

    size_t bytes() const;              // storage held
    double bytes_per_token() const;    // per cached token, every layer, K and V (unprotected tokens)
    void clear() { length = 0; }
    int64_t length = 0;                // tokens written so far: the stream index of the next token

private:
    CacheOptions opt_;
    int64_t n_layers_, kv_dim_, head_dim_, capacity_;
    int64_t n_sinks_ = 0, window_ = 0, ring_ = 0;  // window_ = 0: no eviction (full)
    int64_t keep_ = 0;                             // fp16 slots [0, keep_) when quantized
    int64_t code_bytes_ = 0, params_ = 0;          // per slot (all KV heads)
    std::vector<float> kf_, vf_;                   // f32: [layer][slot][kv_dim]
    std::vector<uint16_t> kh_, vh_;                // fp16 protected: [layer][keep][kv_dim]
    std::vector<uint8_t> kq_, vq_;                 // codes: [layer][slot − keep][code_bytes_]
    std::vector<uint16_t> kpar_, vpar_;            // (scale, min): [layer][slot − keep][params_]
};

// The forward pass through a slot cache: tokens take stream indices cache.length, cache.length + 1, ...
// and are processed in the largest blocks the cache allows. Logits as forward() in forward.hpp.
std::span<const float> forward(const Model& m, SlotCache& cache, ForwardBuffers& buf, std::span<const int32_t> tokens,
                               Logits want);

}  // namespace planeq
