// The whole forward pass on the GPU (CUDA builds): a Runner (model/runner.hpp) over a GpuModel with an f32
// KV cache in device memory. Prefill (more than 16 tokens) runs the plane GEMMs (wgmma) or, for dense
// weights, cuBLAS on hi/lo-split bf16 activations; up to 16 tokens run the GEMVs. One-token decode steps are
// captured once as a CUDA graph and replayed (the position and the token live on the device; greedy
// decoding picks the argmax on the GPU and copies back 4 bytes).
#pragma once

#include <cstdint>
#include <memory>

#include "model/cuda/gpu_model.hpp"
#include "model/runner.hpp"

namespace planeq::cuda {

// capacity: KV positions; max_chunk: most tokens per prefill launch sequence (0 = min(capacity, 2048));
// longer inputs run in chunks. The GpuModel must outlive the runner.
std::unique_ptr<Runner> make_gpu_runner(const GpuModel& g, int64_t capacity, int64_t max_chunk = 0);

// Throws planeq::Error unless the cache options are what the GPU forward supports (--cache full, f32 KV).
void check_gpu_cache(const CacheOptions& o);

}  // namespace planeq::cuda
