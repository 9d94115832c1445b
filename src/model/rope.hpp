// Rotary position embeddings with the Hugging Face conventions: inverse frequencies computed in f32,
// angle = f32(inv_freq · position), and the "rotate_half" pairing (i, i + d/2).
#pragma once

#include <cstdint>
#include <vector>

#include "io/hf_config.hpp"

namespace planeq {

class Rope {
public:
    Rope() = default;
    Rope(const RopeConfig& cfg, int64_t head_dim, int64_t max_position);

    // Make the cos/sin table cover positions [0, n). Not thread-safe: call before parallel work.
    void reserve(int64_t n) const;
    // Rotates one head vector (head_dim floats) in place to `position`.
    void apply(float* v, int64_t position) const;
    int64_t head_dim() const { return head_dim_; }
    const std::vector<float>& inv_freq() const { return inv_freq_; }
    // The tables apply() uses, [position][head_dim / 2], valid for reserved positions (the slot-cache
    // attention kernels rotate stored pre-RoPE keys with them at read time).
    const float* cos_table() const { return cos_.data(); }
    const float* sin_table() const { return sin_.data(); }

private:
    int64_t head_dim_ = 0;
    float attention_factor_ = 1.0f;
    std::vector<float> inv_freq_;
    // The table grows on demand (a cache of pure functions of the config, hence mutable).
    mutable std::vector<float> cos_, sin_;  // [position][head_dim / 2]
    mutable int64_t cached_ = 0;
};

}  // namespace planeq
