#include "io/hf_config.hpp"

#include "core/error.hpp"
#include "core/text_file.hpp"

namespace planeq {

using json = nlohmann::json;

std::string arch_name(Arch a) {
    switch (a) {
        case Arch::Llama: return "llama";
        case Arch::Mistral: return "mistral";
        case Arch::Qwen2: return "qwen2";
        case Arch::Qwen3: return "qwen3";
    }
    return "?";
}

namespace {

struct Reader {
    const json& j;
    const std::filesystem::path& path;

    [[noreturn]] void bad(const std::string& what) const { fail_file(path, what); }

    int64_t req_int(const char* key) const {
        if (!j.contains(key)) bad(std::string("missing required field '") + key + "'");
        if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0)
            bad(std::string("field '") + key + "' must be a positive integer");
        return j[key].get<int64_t>();
    }
    int64_t opt_int(const char* key, int64_t def) const {
        if (!j.contains(key) || j[key].is_null()) return def;
        if (!j[key].is_number_integer()) bad(std::string("field '") + key + "' must be an integer");
        return j[key].get<int64_t>();
    }
    double opt_num(const json& obj, const char* key, double def) const {
        if (!obj.contains(key) || obj[key].is_null()) return def;
        if (!obj[key].is_number()) bad(std::string("field '") + key + "' must be a number");
        return obj[key].get<double>();
    }
    bool opt_bool(const char* key, bool def) const {
        if (!j.contains(key) || j[key].is_null()) return def;
        if (!j[key].is_boolean()) bad(std::string("field '") + key + "' must be true or false");
        return j[key].get<bool>();
    }
};

// Rope settings live in three places across transformers versions: top-level rope_theta +
// rope_scaling (classic), or one rope_parameters object (transformers >= 5).
RopeConfig parse_rope(const Reader& r) {
    RopeConfig rope;
    const json& j = r.j;
    const json* params = nullptr;
    if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) params = &j["rope_parameters"];
    else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) params = &j["rope_scaling"];

    rope.theta = r.opt_num(j, "rope_theta", 10000.0);
    if (params) {
        rope.theta = r.opt_num(*params, "rope_theta", rope.theta);
        std::string type = "default";
        for (const char* key : {"rope_type", "type"})
            if (params->contains(key) && (*params)[key].is_string()) { type = (*params)[key].get<std::string>(); break; }
        rope.type = type;
        rope.factor = r.opt_num(*params, "factor", 1.0);
        rope.low_freq_factor = r.opt_num(*params, "low_freq_factor", 1.0);
        rope.high_freq_factor = r.opt_num(*params, "high_freq_factor", 4.0);
        rope.original_max_position = int64_t(r.opt_num(*params, "original_max_position_embeddings", 0));
        rope.beta_fast = r.opt_num(*params, "beta_fast", 32.0);
        rope.beta_slow = r.opt_num(*params, "beta_slow", 1.0);
        rope.attention_factor = r.opt_num(*params, "attention_factor", 0.0);
    }
    if (rope.type != "default" && rope.type != "linear" && rope.type != "llama3" && rope.type != "yarn")
        r.bad("unsupported rope type '" + rope.type + "' (supported: default, linear, llama3, yarn)");
    if (!(rope.theta > 0)) r.bad("rope_theta must be positive");
    if (rope.type != "default" && !(rope.factor > 0)) r.bad("rope scaling factor must be positive");
    if (rope.type == "llama3" && (rope.original_max_position <= 0 || rope.high_freq_factor <= rope.low_freq_factor))
        r.bad("llama3 rope scaling needs original_max_position_embeddings and high_freq_factor > low_freq_factor");
    return rope;
}

std::vector<int32_t> parse_ids(const json& v) {
    std::vector<int32_t> ids;
    if (v.is_number_integer()) ids.push_back(v.get<int32_t>());
    else if (v.is_array())
        for (const auto& x : v)
            if (x.is_number_integer()) ids.push_back(x.get<int32_t>());
    return ids;
}

}  // namespace

ModelConfig parse_config(const json& j, const std::filesystem::path& path) {
    Reader r{j, path};
    if (!j.is_object()) r.bad("not a JSON object");
    ModelConfig c;
    c.raw = j;

    std::string arch;
    if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
        j["architectures"][0].is_string())
        arch = j["architectures"][0].get<std::string>();
    else if (j.contains("model_type") && j["model_type"].is_string())
        arch = j["model_type"].get<std::string>();
    else
        r.bad("no 'architectures' or 'model_type' field; cannot tell the architecture");
    c.architecture = arch;
    if (arch == "LlamaForCausalLM" || arch == "llama") c.arch = Arch::Llama;
    else if (arch == "MistralForCausalLM" || arch == "mistral") c.arch = Arch::Mistral;
    else if (arch == "Qwen2ForCausalLM" || arch == "qwen2") c.arch = Arch::Qwen2;
    else if (arch == "Qwen3ForCausalLM" || arch == "qwen3") c.arch = Arch::Qwen3;
    else r.bad("unknown architecture '" + arch + "' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)");

    c.hidden = r.req_int("hidden_size");
    c.intermediate = r.req_int("intermediate_size");
    c.n_layers = r.req_int("num_hidden_layers");
    c.n_heads = r.req_int("num_attention_heads");
    c.n_kv_heads = r.opt_int("num_key_value_heads", c.n_heads);
    c.vocab = r.req_int("vocab_size");
    c.head_dim = r.opt_int("head_dim", 0);
    if (c.head_dim <= 0) {
        if (c.hidden % c.n_heads != 0) r.bad("hidden_size is not divisible by num_attention_heads and no head_dim is given");
        c.head_dim = c.hidden / c.n_heads;
    }
    if (c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0)
        r.bad("num_attention_heads (" + std::to_string(c.n_heads) + ") is not a multiple of num_key_value_heads (" +
              std::to_string(c.n_kv_heads) + ")");
    if (c.head_dim % 2 != 0) r.bad("head_dim must be even for rotary embeddings");
    c.max_position = r.opt_int("max_position_embeddings", 2048);
    c.rms_eps = r.opt_num(j, "rms_norm_eps", 1e-6);
    c.rope = parse_rope(r);
    c.tie_embeddings = r.opt_bool("tie_word_embeddings", false);

    if (j.contains("hidden_act") && j["hidden_act"].is_string() && j["hidden_act"] != "silu")
        r.bad("unsupported hidden_act '" + j["hidden_act"].get<std::string>() + "' (only silu/SwiGLU)");

    switch (c.arch) {
        case Arch::Qwen2: c.qkv_bias = true; break;  // hard-wired in transformers' Qwen2Attention
        case Arch::Qwen3: c.qk_norm = true; c.qkv_bias = c.o_bias = r.opt_bool("attention_bias", false); break;
        case Arch::Llama:
        case Arch::Mistral:
            c.qkv_bias = c.o_bias = r.opt_bool("attention_bias", false);
            c.mlp_bias = r.opt_bool("mlp_bias", false);
            break;
    }
    // Sliding-window attention: Mistral always when set; Qwen2/3 only with use_sliding_window.
    const int64_t window = r.opt_int("sliding_window", 0);
    if (c.arch == Arch::Mistral) c.sliding_window = window;
    else if ((c.arch == Arch::Qwen2 || c.arch == Arch::Qwen3) && r.opt_bool("use_sliding_window", false)) c.sliding_window = window;

    if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_id = j["bos_token_id"].get<int32_t>();
    if (j.contains("eos_token_id")) c.eos_ids = parse_ids(j["eos_token_id"]);
    if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) c.torch_dtype = j["torch_dtype"];
    else if (j.contains("dtype") && j["dtype"].is_string()) c.torch_dtype = j["dtype"];
    return c;
}

ModelConfig load_config(const std::filesystem::path& path) {
    const std::string text = read_text_file(path);
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        fail_file(path, std::string("malformed JSON: ") + e.what());
    }
    return parse_config(j, path);
}

}  // namespace planeq
