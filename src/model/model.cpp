#include "model/model.hpp"

#include <cmath>
#include <cstring>

#include "core/error.hpp"
#include "formats/dense.hpp"
#include "model/quant_config.hpp"

namespace planeq {

namespace {
void add_bias(const Linear& l, int64_t n, float* y) {
    const int64_t out = l.weight.rows;
    if (!l.bias.empty())
        for (int64_t t = 0; t < n; ++t)
            for (int64_t r = 0; r < out; ++r) y[t * out + r] += l.bias[size_t(r)];
}
}  // namespace

void Linear::forward(const float* x, int64_t n, float* y) const {
    if (n == 1) weight.format->gemv(weight, x, y);
    else weight.format->gemm(weight, x, n, y);
    add_bias(*this, n, y);
}

void forward_shared_input(std::span<const Linear* const> ls, const float* x, int64_t n, std::span<float* const> ys) {
    if (n != 1) {
        for (size_t i = 0; i < ls.size(); ++i) ls[i]->forward(x, n, ys[i]);
        return;
    }
    std::vector<const PackedWeight*> ws;
    for (const Linear* l : ls) ws.push_back(&l->weight);
    gemv_shared_input(ws, x, ys);
    for (size_t i = 0; i < ls.size(); ++i) add_bias(*ls[i], 1, ys[i]);
}

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

// A small f32 vector (norm weight, bias) of the expected length.
std::vector<float> load_vector(const Checkpoint& ck, const std::string& name, int64_t len, size_t* bytes) {
    const TensorView& t = ck.get(name);
    *bytes += t.nbytes;
    if (!dtype_is_float(t.dtype) || t.dtype == DType::F64)
        fail_file(ck.file_of(name), "tensor '" + name + "' has dtype " + std::string(dtype_name(t.dtype)) + ", expected BF16, F16 or F32");
    if (t.shape != std::vector<int64_t>{len})
        fail_file(ck.file_of(name), "tensor '" + name + "' has shape " + shape_str(t.shape) + ", config.json implies [" +
                                        std::to_string(len) + "]");
    std::vector<float> v(static_cast<size_t>(len));
    dense_to_f32(t.dtype, t.data, 0, size_t(len), v.data());
    for (float f : v)
        if (!std::isfinite(f)) fail_file(ck.file_of(name), "tensor '" + name + "' contains NaN or infinity");
    return v;
}

PackedWeight load_dense(const Checkpoint& ck, const std::string& tensor, int64_t rows, int64_t cols) {
    const TensorView& t = ck.get(tensor);
    if (t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F32)
        fail_file(ck.file_of(tensor), "tensor '" + tensor + "' has dtype " + std::string(dtype_name(t.dtype)) + ", expected BF16, F16 or F32");
    if (t.shape != std::vector<int64_t>{rows, cols})
        fail_file(ck.file_of(tensor), "tensor '" + tensor + "' has shape " + shape_str(t.shape) + ", config.json implies [" +
                                          std::to_string(rows) + ", " + std::to_string(cols) + "]");
    PackedWeight w;
    w.format = &dense_format_for(t.dtype);
    w.rows = rows;
    w.cols = cols;
    w.params.bits = int(dtype_size(t.dtype) * 8);
    w.parts.push_back(WeightPart{PartSpec{"weight", t.dtype, {rows, cols}}, t.data});
    return w;
}

// A weight stored either densely ("<name>.weight") or packed by a planeq format (quantization_config).
PackedWeight load_weight(const Checkpoint& ck, const QuantConfig& qc, const std::string& name, int64_t rows, int64_t cols) {
    if (ck.find(name + ".weight")) return load_dense(ck, name + ".weight", rows, cols);
    const LayerQuant* lq = qc.find(name);
    if (!lq) fail_file(ck.dir(), "missing tensor '" + name + ".weight'");
    const std::string where = ck.dir().string();
    auto lookup = [&](const std::string& suffix) -> const FoundPart* {
        thread_local FoundPart found;
        const TensorView* t = ck.find(name + "." + suffix);
        if (!t) return nullptr;
        found = FoundPart{t->dtype, t->shape, t->data, t->nbytes};
        return &found;
    };
    return bind_weight(*lq->format, rows, cols, lq->params, name, where, lookup);
}

Linear load_linear(const Checkpoint& ck, const QuantConfig& qc, const std::string& name, int64_t out, int64_t in, bool bias,
                   size_t* bytes) {
    Linear l;
    l.name = name;
    l.weight = load_weight(ck, qc, name, out, in);
    if (bias) l.bias = load_vector(ck, name + ".bias", out, bytes);
    return l;
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir) {
    auto m = std::make_unique<Model>();
    m->checkpoint = Checkpoint::open(dir);
    const Checkpoint& ck = *m->checkpoint;
    m->config = ck.config();
    const ModelConfig& c = m->config;
    const QuantConfig qc = parse_quant_config(c.raw, dir / "config.json");

    m->embed = load_weight(ck, qc, "model.embed_tokens", c.vocab, c.hidden);
    m->blocks.resize(size_t(c.n_layers));
    for (int64_t i = 0; i < c.n_layers; ++i) {
        Block& b = m->blocks[size_t(i)];
        const std::string p = "model.layers." + std::to_string(i) + ".";
        b.attn_norm = load_vector(ck, p + "input_layernorm.weight", c.hidden, &m->small_tensor_bytes);
        b.ffn_norm = load_vector(ck, p + "post_attention_layernorm.weight", c.hidden, &m->small_tensor_bytes);
        if (c.qk_norm) {
            b.q_norm = load_vector(ck, p + "self_attn.q_norm.weight", c.head_dim, &m->small_tensor_bytes);
            b.k_norm = load_vector(ck, p + "self_attn.k_norm.weight", c.head_dim, &m->small_tensor_bytes);
        }
        b.q = load_linear(ck, qc, p + "self_attn.q_proj", c.q_dim(), c.hidden, c.qkv_bias, &m->small_tensor_bytes);
        b.k = load_linear(ck, qc, p + "self_attn.k_proj", c.kv_dim(), c.hidden, c.qkv_bias, &m->small_tensor_bytes);
        b.v = load_linear(ck, qc, p + "self_attn.v_proj", c.kv_dim(), c.hidden, c.qkv_bias, &m->small_tensor_bytes);
        b.o = load_linear(ck, qc, p + "self_attn.o_proj", c.hidden, c.q_dim(), c.o_bias, &m->small_tensor_bytes);
        b.gate = load_linear(ck, qc, p + "mlp.gate_proj", c.intermediate, c.hidden, c.mlp_bias, &m->small_tensor_bytes);
        b.up = load_linear(ck, qc, p + "mlp.up_proj", c.intermediate, c.hidden, c.mlp_bias, &m->small_tensor_bytes);
        b.down = load_linear(ck, qc, p + "mlp.down_proj", c.hidden, c.intermediate, c.mlp_bias, &m->small_tensor_bytes);
    }
    m->final_norm = load_vector(ck, "model.norm.weight", c.hidden, &m->small_tensor_bytes);
    m->lm_head.name = "lm_head";
    if (c.tie_embeddings) m->lm_head.weight = m->embed;
    else m->lm_head.weight = load_weight(ck, qc, "lm_head", c.vocab, c.hidden);
    m->rope = Rope(c.rope, c.head_dim, c.max_position);
    return m;
}

std::vector<Linear*> Model::linears() {
    std::vector<Linear*> out;
    for (Block& b : blocks)
        for (Linear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down}) out.push_back(l);
    return out;
}

std::vector<const Linear*> Model::linears() const {
    std::vector<const Linear*> out;
    for (const Block& b : blocks)
        for (const Linear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down}) out.push_back(l);
    return out;
}

void Model::embed_tokens(const int32_t* tokens, int64_t n, float* out) const {
    for (int64_t t = 0; t < n; ++t) {
        const int32_t id = tokens[t];
        if (id < 0 || id >= config.vocab) fail("token id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(config.vocab) + ")");
        embed.format->dequantize_rows(embed, id, id + 1, out + t * config.hidden);
    }
}

size_t Model::weight_bytes() const {
    size_t n = embed.stored_bytes() + small_tensor_bytes;
    if (!config.tie_embeddings) n += lm_head.weight.stored_bytes();
    for (const Linear* l : linears()) n += l->weight.stored_bytes();
    return n;
}

size_t Model::decode_bytes_per_token() const {
    size_t n = lm_head.weight.stored_bytes() + embed.stored_bytes() / size_t(config.vocab) + small_tensor_bytes;
    for (const Linear* l : linears()) n += l->weight.stored_bytes();
    return n;
}

size_t Model::linear_params() const {
    size_t n = 0;
    for (const Linear* l : linears()) n += size_t(l->weight.rows * l->weight.cols);
    return n;
}

double Model::bpw_linear() const {
    double bits = 0;
    for (const Linear* l : linears()) bits += 8.0 * double(l->weight.stored_bytes());
    return bits / double(linear_params());
}

double Model::bpw_model() const {
    // Parameters, not stored elements (packed parts are not parameters): decoder linears,
    // embeddings (+ untied head), norms and biases.
    double params = double(linear_params()) + double(config.vocab * config.hidden) * (config.tie_embeddings ? 1 : 2);
    for (const Block& b : blocks) params += double(b.attn_norm.size() + b.ffn_norm.size() + b.q_norm.size() + b.k_norm.size());
    for (const Linear* l : linears()) params += double(l->bias.size());
    params += double(final_norm.size());
    return 8.0 * double(weight_bytes()) / params;
}

std::string Model::format_summary() const {
    std::string s;
    for (const Linear* l : linears()) {
        std::string f = std::string(l->weight.format->name);
        if (l->weight.params.group > 0) f += "-b" + std::to_string(l->weight.params.bits) + "-g" + std::to_string(l->weight.params.group);
        if (s.find(f) == std::string::npos) s += (s.empty() ? "" : "+") + f;
    }
    if (lm_head.weight.format != blocks.front().q.weight.format) s += " (lm_head " + std::string(lm_head.weight.format->name) + ")";
    return s;
}

}  // namespace planeq
