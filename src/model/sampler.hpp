// Next-token sampling with the usual knobs: temperature (0 = greedy), top-k, top-p (nucleus),
// min-p; applied in llama.cpp's order (top-k, top-p, min-p, temperature). Deterministic for a seed.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace planeq {

struct SamplerOptions {
    float temperature = 0.8f;
    int top_k = 40;       // 0 = off
    float top_p = 0.95f;  // 1 = off
    float min_p = 0.05f;  // 0 = off
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(const SamplerOptions& opt) : opt_(opt), rng_(opt.seed) {}
    int32_t sample(std::span<const float> logits);

private:
    SamplerOptions opt_;
    std::mt19937_64 rng_;
    std::vector<std::pair<float, int32_t>> cand_;
};

int32_t argmax(std::span<const float> logits);  // first maximum wins ties

}  // namespace planeq
