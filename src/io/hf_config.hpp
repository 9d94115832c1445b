// The parts of a Hugging Face config.json that decide the decoder's math.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace planeq {

enum class Arch { Llama, Mistral, Qwen2, Qwen3 };

struct RopeConfig {
    std::string type = "default";  // default | linear | llama3 | yarn
    double theta = 10000.0;
    double factor = 1.0;
    double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
    int64_t original_max_position = 0;                      // llama3, yarn
    double beta_fast = 32.0, beta_slow = 1.0;               // yarn
    double attention_factor = 0.0;                          // yarn; 0 = derive from factor
};

struct ModelConfig {
    Arch arch = Arch::Llama;
    std::string architecture;  // as written, e.g. "Qwen3ForCausalLM"
    int64_t hidden = 0, intermediate = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, vocab = 0;
    int64_t max_position = 0;
    double rms_eps = 1e-6;
    RopeConfig rope;
    bool tie_embeddings = false;
    bool qkv_bias = false;      // Qwen2 (always), Llama/Mistral with attention_bias
    bool o_bias = false;        // Llama attention_bias also biases o_proj
    bool mlp_bias = false;
    bool qk_norm = false;       // Qwen3
    int64_t sliding_window = 0; // 0 = full attention
    int32_t bos_id = -1;
    std::vector<int32_t> eos_ids;
    std::string torch_dtype;

    nlohmann::json raw;         // the whole file, for round-tripping into output dirs

    int64_t q_dim() const { return n_heads * head_dim; }
    int64_t kv_dim() const { return n_kv_heads * head_dim; }
};

ModelConfig parse_config(const nlohmann::json& j, const std::filesystem::path& path);
ModelConfig load_config(const std::filesystem::path& config_json);  // throws planeq::Error
std::string arch_name(Arch a);

}  // namespace planeq
