// A Model's weights resident on the GPU (CUDA builds): every linear uploaded in its GPU layout
// (kernels/cuda/cuda_gemv.hpp: planes for int/bitplane/tritplane, bf16 for dense weights; f32/f16 are rounded
// to bf16), norms and biases as f32, the embedding table as bf16 (when stored so) or f32 (dequantized on the
// host), and the lm_head. Act-order int weights (g_idx) get their columns sorted by group at upload; the
// runner gathers their inputs in that order (W x = (W P)(Pᵀ x)).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_gemv.hpp"
#include "model/model.hpp"

namespace planeq::cuda {

// Device memory freed with cudaFree.
struct DeviceFree {
    void operator()(void* p) const;
};
using DevicePtr = std::unique_ptr<void, DeviceFree>;
DevicePtr device_alloc(size_t bytes);
DevicePtr device_copy(const void* host, size_t bytes);
inline float* as_f(const DevicePtr& p) { return static_cast<float*>(p.get()); }

struct GpuLinear {
    std::string name;
    std::shared_ptr<GpuWeight> w;
    const void* bf16 = nullptr;  // dense weights: the bf16 values (the cuBLAS prefill path)
    std::string key;             // weights with equal keys can share one launch: "dense" or "int-b2-g128", ...
    int group = 0;
    int64_t rows = 0, cols = 0;
    DevicePtr bias;              // f32 [rows], or null
    DevicePtr perm;              // act-order int (g_idx): int32 [cols], input column k ← perm[k]; else null
    bool dense() const { return bf16 != nullptr; }
};

struct GpuBlock {
    DevicePtr attn_norm, ffn_norm, q_norm, k_norm;  // q/k norms: Qwen3 only (null otherwise)
    GpuLinear q, k, v, o, gate, up, down;
};

class GpuModel {
public:
    // Uploads every weight; throws planeq::Error naming the layer for what the GPU does not support.
    // Weights whose host bytes are shared (synthetic benchmark models) are uploaded once and cloned.
    static std::unique_ptr<GpuModel> upload(const Model& m);

    const Model* host = nullptr;  // config, RoPE tables (must outlive this)
    std::vector<GpuBlock> blocks;
    DevicePtr final_norm;
    DevicePtr embed;              // [vocab × hidden], bf16 when embed_bf16, else f32
    bool embed_bf16 = false;
    GpuLinear head;
    size_t weight_bytes = 0;      // device bytes of the linears and the head (what one decode step streams)
    size_t resident_bytes = 0;    // everything uploaded

    const ModelConfig& config() const { return host->config; }
};

}  // namespace planeq::cuda
