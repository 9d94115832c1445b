// Key/value cache for one sequence: f32, keys stored after RoPE, [layer][position][kv_dim].
#pragma once

#include <cstdint>
#include <vector>

#include "io/hf_config.hpp"

namespace planeq {

struct KVCache {
    KVCache() = default;
    KVCache(const ModelConfig& c, int64_t capacity)
        : capacity(capacity), n_layers(c.n_layers), kv_dim(c.kv_dim()),
          k(size_t(c.n_layers * capacity * c.kv_dim())), v(size_t(c.n_layers * capacity * c.kv_dim())) {}

    int64_t capacity = 0, n_layers = 0, kv_dim = 0;
    int64_t length = 0;  // positions filled
    std::vector<float> k, v;

    float* k_at(int64_t layer, int64_t pos) { return k.data() + (layer * capacity + pos) * kv_dim; }
    float* v_at(int64_t layer, int64_t pos) { return v.data() + (layer * capacity + pos) * kv_dim; }
    const float* k_at(int64_t layer, int64_t pos) const { return k.data() + (layer * capacity + pos) * kv_dim; }
    const float* v_at(int64_t layer, int64_t pos) const { return v.data() + (layer * capacity + pos) * kv_dim; }
    size_t bytes() const { return (k.size() + v.size()) * sizeof(float); }
    void clear() { length = 0; }
};

}  // namespace planeq
