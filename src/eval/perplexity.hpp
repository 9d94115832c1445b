// Perplexity protocols of EVAL.md: P1 full-window (papers) and the second-half protocol of
// llama-perplexity. Windows are non-overlapping runs of ctx ids of the whole file; each gets a fresh
// KV cache; the tail shorter than ctx is dropped.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/model.hpp"
#include "model/slot_cache.hpp"

namespace planeq {

enum class PplProtocol { Full, SecondHalf };

struct PplOptions {
    int64_t ctx = 512;
    PplProtocol protocol = PplProtocol::Full;
    int32_t bos_id = -1;              // >= 0: the model uses BOS
    bool window_bos_replace = false;  // replace every window's first id with BOS
    bool stream_bos_prepend = false;  // prepend one BOS to the whole stream (llama.cpp)
    int64_t max_windows = 0;          // 0 = all
    CacheOptions cache;               // the KV cache each window runs through (default: full f32)
    int64_t cache_batch = 1;          // window/streaming caches: tokens per forward in steady state (SlotCache's B)
    int64_t first_scored() const { return protocol == PplProtocol::Full ? 0 : ctx / 2; }
};

struct PplResult {
    double ppl = 0, stderr_ppl = 0;
    int64_t tokens = 0, windows = 0, scored_tokens = 0;
    double seconds = 0, tokens_per_s = 0;
    std::vector<double> window_nll_sums;
    std::vector<double> token_nll;  // every scored position, window by window (for KLD/ratio statistics)
};

// The windows a protocol evaluates: ids after stream BOS handling, split into ctx-sized runs.
std::vector<std::vector<int32_t>> ppl_windows(std::span<const int32_t> ids, const PplOptions& opt);

// Negative log-likelihood (fp64 log-softmax over f32 logits) of `target` under one logits row.
double token_nll(const float* logits, int64_t vocab, int32_t target);

using PplProgress = std::function<void(int64_t windows_done, int64_t windows_total)>;
PplResult perplexity(const Model& m, std::span<const int32_t> ids, const PplOptions& opt, const PplProgress& progress = {});
// The same over any runner (model/runner.hpp), with room for opt.ctx tokens (opt.cache is the runner's business).
class Runner;
PplResult perplexity(Runner& r, std::span<const int32_t> ids, const PplOptions& opt, const PplProgress& progress = {});

// Streaming perplexity (SINKS.md M2): the whole token stream runs through one cache (no windows, no
// restarts), `batch` tokens per forward (1 = token by token; larger blocks give every query its own
// attention set, so the result is the same up to float rounding). Predictions of tokens at stream
// index ≤ skip are not scored, so that every configuration scores the same tokens with eviction active.
struct StreamPplOptions {
    CacheOptions cache;
    int64_t batch = 1;
    int64_t skip = 0;
    int64_t max_tokens = 0;   // 0 = the whole stream
    int32_t bos_id = -1;      // >= 0: one BOS at the start of the stream
    int64_t bin = 16384;      // PPL per bin of scored positions (stability over the stream)
};

struct StreamPplResult {
    double ppl = 0, stderr_ppl = 0;
    int64_t tokens = 0, scored_tokens = 0;
    double seconds = 0, tokens_per_s = 0;
    size_t cache_bytes = 0;
    std::vector<double> bin_ppl;
    std::vector<double> token_nll;
};

StreamPplResult stream_perplexity(const Model& m, std::span<const int32_t> ids, const StreamPplOptions& opt,
                                  const PplProgress& progress = {});

// PPL and its standard error from per-token NLLs (EVAL.md §2 step 5).
void ppl_from_nll(std::span<const double> nll, double& ppl, double& stderr_ppl);

}  // namespace planeq
