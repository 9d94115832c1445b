// planeq info: what a model directory holds (architecture, sizes, formats, bits per weight).
#include <cstdio>

#include "common.hpp"
#include "loaded_model.hpp"

namespace planeq::cli {

namespace {

struct InfoArgs {
    CommonOptions common;
    std::string model;
};

void run_info(const InfoArgs& a) {
    LoadedModel lm = load_model(a.model, /*need_tokenizer=*/false);
    const Model& m = *lm.model;
    const ModelConfig& c = m.config;
    nlohmann::json layers = nlohmann::json::array();
    for (const Linear* l : m.linears())
        layers.push_back({{"name", l->name}, {"format", l->weight.format->name}, {"rows", l->weight.rows},
                          {"cols", l->weight.cols}, {"params", l->weight.params.to_json()}, {"bpw", l->weight.bits_per_weight()}});
    nlohmann::json j{{"model", a.model}, {"architecture", c.architecture}, {"layers", c.n_layers}, {"hidden", c.hidden},
                     {"intermediate", c.intermediate}, {"heads", c.n_heads}, {"kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
                     {"vocab", c.vocab}, {"tied_embeddings", c.tie_embeddings}, {"rope_type", c.rope.type},
                     {"rope_theta", c.rope.theta}, {"linear_params", m.linear_params()}, {"weight_bytes", m.weight_bytes()},
                     {"bpw_linear", m.bpw_linear()}, {"bpw_model", m.bpw_model()}, {"formats", m.format_summary()},
                     {"load_seconds", lm.load_seconds}};
    if (a.common.json) {
        j["linears"] = layers;
        print_json(j);
        return;
    }
    std::printf("%s: %s, %lld layers, hidden %lld, FFN %lld, heads %lld/%lld (dim %lld), vocab %lld%s\n", a.model.c_str(),
                c.architecture.c_str(), (long long)c.n_layers, (long long)c.hidden, (long long)c.intermediate,
                (long long)c.n_heads, (long long)c.n_kv_heads, (long long)c.head_dim, (long long)c.vocab,
                c.tie_embeddings ? ", tied embeddings" : "");
    std::printf("rope %s θ=%g%s%s\n", c.rope.type.c_str(), c.rope.theta, c.qk_norm ? ", q/k norm" : "", c.qkv_bias ? ", qkv bias" : "");
    std::printf("weights %s: %s; bpw linear %.4f, model %.4f (embeddings and norms included)\n", m.format_summary().c_str(),
                human_bytes(double(m.weight_bytes())).c_str(), m.bpw_linear(), m.bpw_model());
}

}  // namespace

void register_info(CLI::App& app) {
    auto a = std::make_shared<InfoArgs>();
    CLI::App* cmd = app.add_subcommand("info", "Describe a model directory: architecture, formats, bits per weight");
    cmd->add_option("model", a->model, "Model directory")->required();
    add_common(*cmd, a->common);
    cmd->callback([a] { run_info(*a); });
}

}  // namespace planeq::cli
