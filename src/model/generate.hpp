// Autoregressive generation: one prefill of the prompt, then one decode step per new token.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/model.hpp"
#include "model/sampler.hpp"
#include "model/slot_cache.hpp"

namespace planeq {

struct GenerateOptions {
    int64_t max_new_tokens = 128;
    int64_t ctx = 0;                 // KV cache capacity; 0 = prompt + max_new_tokens
    SamplerOptions sampler;
    std::vector<int32_t> stop_ids;   // EOS ids: generation stops after emitting one (not included)
    CacheOptions cache;              // full f32 (default), or sink + window / quantized (slot_cache.hpp)
};

struct GenerateStats {
    int64_t prompt_tokens = 0, generated_tokens = 0;
    double prompt_seconds = 0, generate_seconds = 0;
    bool stopped_at_eos = false;
    size_t cache_bytes = 0;          // KV storage held
    double prompt_tokens_per_s() const { return prompt_seconds > 0 ? double(prompt_tokens) / prompt_seconds : 0; }
    double generate_tokens_per_s() const { return generate_seconds > 0 ? double(generated_tokens) / generate_seconds : 0; }
};

// on_token is called with each new token as soon as it is sampled; returning false stops early.
// The CPU forward with opt.cache:
GenerateStats generate(const Model& m, std::span<const int32_t> prompt, const GenerateOptions& opt,
                       const std::function<bool(int32_t)>& on_token);
// Any runner (model/runner.hpp; e.g. the GPU's), empty, with room for generate_capacity() tokens. Greedy
// sampling (temperature 0) takes the runner's argmax; other settings sample the copied-back logits.
class Runner;
GenerateStats generate(Runner& r, std::span<const int32_t> prompt, const GenerateOptions& opt,
                       const std::function<bool(int32_t)>& on_token);
// The KV capacity a full cache needs: opt.ctx, or prompt + max_new_tokens (throws when the prompt does not fit).
int64_t generate_capacity(std::span<const int32_t> prompt, const GenerateOptions& opt);

// Decodes a token stream incrementally, holding back bytes of an incomplete UTF-8 sequence.
class Utf8Stream {
public:
    std::string push(const std::string& bytes);  // complete characters ready to print
    std::string flush();                           // whatever remains (possibly invalid UTF-8)

private:
    std::string pending_;
};

}  // namespace planeq
