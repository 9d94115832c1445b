// A model bound to one sequence's KV cache on some device: what generation and evaluation drive. The CPU
// runner wraps forward() over the reference cache or a slot cache; the GPU runner (model/cuda/, CUDA builds)
// keeps the weights and the cache on the GPU and copies logits back only when asked.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "model/forward.hpp"
#include "model/model.hpp"
#include "model/slot_cache.hpp"

namespace planeq {

class Runner {
public:
    virtual ~Runner() = default;
    virtual const ModelConfig& config() const = 0;
    // Runs tokens at the next positions (appending to the cache). Logits as forward(): host memory, valid
    // until the next call.
    virtual std::span<const float> forward(std::span<const int32_t> tokens, Logits want) = 0;
    // Feeds tokens and returns the argmax of the last logits (greedy decoding; first maximum wins ties).
    // A GPU runner keeps the logits on the device.
    virtual int32_t forward_argmax(std::span<const int32_t> tokens);
    virtual void clear() = 0;                 // empty cache: the next token is position 0
    virtual int64_t length() const = 0;       // tokens in the cache
    virtual bool full() const = 0;            // no room for another token
    virtual size_t cache_bytes() const = 0;   // KV storage held
    virtual const SlotCache* slot_cache() const { return nullptr; }  // the CPU's sink/window/quantized cache, if any
};

// The CPU forward: the f32 reference cache when cache.reference(), else a slot cache (slot_cache.hpp).
// capacity: tokens of a full cache; max_batch: tokens one forward adds in steady state (SlotCache's B).
std::unique_ptr<Runner> make_cpu_runner(const Model& m, const CacheOptions& cache, int64_t capacity, int64_t max_batch = 1);

}  // namespace planeq
