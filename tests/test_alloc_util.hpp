// Helpers for the allocation tests: small f32 models whose weights the tests set (and permute) directly.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/dense.hpp"
#include "model/synthetic.hpp"
#include "quant/calibration.hpp"
#include "test_util.hpp"

namespace planeq::test {

inline ModelConfig small_config(int64_t layers = 4, bool qwen = false) {
    ModelConfig c;
    c.arch = qwen ? Arch::Qwen3 : Arch::Llama;
    c.architecture = qwen ? "Qwen3ForCausalLM" : "LlamaForCausalLM";
    c.hidden = 32, c.intermediate = 48, c.n_layers = layers, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 8, c.vocab = 64;
    c.max_position = 256, c.rms_eps = 1e-6, c.qk_norm = qwen;
    c.rope.theta = 10000;
    return c;
}

// Heavy-tailed random matrices (a mix of normals with per-row and per-column scales), so kurtosis and
// spectra differ between layers and components.
inline std::vector<float> random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
    PortableRng rng(seed);
    std::vector<double> rs(static_cast<size_t>(rows)), cs(static_cast<size_t>(cols));
    for (auto& v : rs) v = 0.5 + 2 * rng.uniform();
    for (auto& v : cs) v = rng.uniform() < 0.1 ? 4.0 : 1.0;
    std::vector<float> w(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) w[size_t(r * cols + c)] = float(0.05 * rs[size_t(r)] * cs[size_t(c)] * rng.normal());
    return w;
}

// Named weights: "L.q", "L.k", ..., "unembed"; missing names are drawn at random from `seed`.
using Weights = std::map<std::string, std::vector<float>>;

inline Weights random_weights(const ModelConfig& c, uint64_t seed) {
    Weights w;
    const char* names[] = {"q", "k", "v", "o", "gate", "up", "down"};
    for (int64_t l = 0; l < c.n_layers; ++l) {
        const int64_t rows[] = {c.q_dim(), c.kv_dim(), c.kv_dim(), c.hidden, c.intermediate, c.intermediate, c.hidden};
        const int64_t cols[] = {c.hidden, c.hidden, c.hidden, c.q_dim(), c.hidden, c.hidden, c.intermediate};
        for (int i = 0; i < 7; ++i)
            w[std::to_string(l) + "." + names[i]] = random_matrix(rows[i], cols[i], seed * 1000 + uint64_t(l * 10 + i));
    }
    w["unembed"] = random_matrix(c.vocab, c.hidden, seed * 1000 + 999);
    return w;
}

inline std::unique_ptr<Model> model_from(const ModelConfig& c, const Weights& w, bool no_gate = false) {
    auto m = synthetic_model(
        c,
        [&](const std::string& name, int64_t rows, int64_t cols) {
            // "model.layers.3.self_attn.q_proj" → "3.q"
            const std::string rest = name.substr(13);
            const std::string layer = rest.substr(0, rest.find('.'));
            std::string kind = name.substr(name.rfind('.') + 1);
            kind = kind.substr(0, kind.find('_'));
            if (kind == "gate" && no_gate) return f32_weight(0, cols, {});
            return f32_weight(rows, cols, w.at(layer + "." + kind));
        },
        1);
    m->embed = f32_weight(c.vocab, c.hidden, w.at("unembed"));
    m->lm_head.weight = m->embed;
    m->config.tie_embeddings = true;
    return m;
}

}  // namespace planeq::test
