// A decoder-only transformer (Llama / Mistral / Qwen2 / Qwen3) with weights in any registered format.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "formats/format.hpp"
#include "io/checkpoint.hpp"
#include "io/hf_config.hpp"
#include "model/rope.hpp"

namespace planeq {

struct Linear {
    std::string name;           // Hugging Face module name, e.g. "model.layers.0.self_attn.q_proj"
    PackedWeight weight;        // [out_features × in_features]
    std::vector<float> bias;    // empty when the layer has none

    // y[n × out] = x[n × in] · Wᵀ (+ bias). n = 1 takes the GEMV path.
    void forward(const float* x, int64_t n, float* y) const;
    int64_t in_features() const { return weight.cols; }
    int64_t out_features() const { return weight.rows; }
};
// ys[i][n × out_i] = x · W_iᵀ (+ bias_i) for linears that read the same x (q, k, v; gate, up). One token: one
// GEMV for all (gemv_shared_input: x quantized once, one parallel pass); more: each forward. The same results
// as each forward.
void forward_shared_input(std::span<const Linear* const> ls, const float* x, int64_t n, std::span<float* const> ys);

struct Block {
    std::vector<float> attn_norm, ffn_norm;
    std::vector<float> q_norm, k_norm;  // Qwen3 only: RMSNorm over each head before RoPE
    Linear q, k, v, o, gate, up, down;
};

class Model {
public:
    // Loads a Hugging Face checkpoint directory or a planeq output directory (quantized layers).
    static std::unique_ptr<Model> load(const std::filesystem::path& dir);

    ModelConfig config;
    std::unique_ptr<Checkpoint> checkpoint;  // the mapped files weights point into (null for synthetic models)
    std::vector<std::shared_ptr<void>> storage;  // other owners of weight bytes (synthetic models)
    size_t small_tensor_bytes = 0;           // norms and biases as stored (kept as f32 copies at run time)
    PackedWeight embed;              // [vocab × hidden]
    std::vector<Block> blocks;
    std::vector<float> final_norm;
    Linear lm_head;                  // shares embed's bytes when embeddings are tied
    Rope rope;

    // Every decoder linear, block by block in the order q, k, v, o, gate, up, down.
    std::vector<Linear*> linears();
    std::vector<const Linear*> linears() const;
    void embed_tokens(const int32_t* tokens, int64_t n, float* out) const;
    size_t weight_bytes() const;       // bytes of every stored tensor (embedding, linears, head, norms)
    size_t decode_bytes_per_token() const;  // weights one decode step reads: linears, head, one embedding row
    size_t linear_params() const;      // decoder linear parameters
    double bpw_linear() const;         // stored bits / parameters over the decoder linears
    double bpw_model() const;          // over every tensor, embeddings and norms included
    std::string format_summary() const;  // e.g. "bf16" or "int2-g128 (lm_head bf16)"
};

}  // namespace planeq
