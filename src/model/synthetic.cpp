#include "model/synthetic.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/half.hpp"
#include "formats/bitplane.hpp"
#include "formats/dense.hpp"
#include "formats/int_group.hpp"
#include "formats/tritplane.hpp"
#include "quant/calibration.hpp"

namespace planeq {

ModelConfig shape_config(const std::string& name) {
    ModelConfig c;
    c.rope.theta = 500000.0;
    c.rms_eps = 1e-5;
    c.max_position = 8192;
    c.eos_ids = {0};
    if (name == "llama3-8b") {
        c.arch = Arch::Llama;
        c.architecture = "LlamaForCausalLM";
        c.hidden = 4096, c.intermediate = 14336, c.n_layers = 32, c.n_heads = 32, c.n_kv_heads = 8, c.head_dim = 128;
        c.vocab = 128256;
        c.rope.type = "llama3", c.rope.factor = 8, c.rope.low_freq_factor = 1, c.rope.high_freq_factor = 4;
        c.rope.original_max_position = 8192;
    } else if (name == "llama3.2-1b") {
        c.arch = Arch::Llama;
        c.architecture = "LlamaForCausalLM";
        c.hidden = 2048, c.intermediate = 8192, c.n_layers = 16, c.n_heads = 32, c.n_kv_heads = 8, c.head_dim = 64;
        c.vocab = 128256, c.tie_embeddings = true;
        c.rope.type = "llama3", c.rope.factor = 32, c.rope.low_freq_factor = 1, c.rope.high_freq_factor = 4;
        c.rope.original_max_position = 8192;
    } else if (name == "qwen3-0.6b") {
        c.arch = Arch::Qwen3;
        c.architecture = "Qwen3ForCausalLM";
        c.hidden = 1024, c.intermediate = 3072, c.n_layers = 28, c.n_heads = 16, c.n_kv_heads = 8, c.head_dim = 128;
        c.vocab = 151936, c.tie_embeddings = true, c.qk_norm = true, c.rope.theta = 1e6, c.rms_eps = 1e-6;
    } else if (name == "tiny-llama-shape") {  // the bundled model's shape, for fast tests
        c.arch = Arch::Llama;
        c.architecture = "LlamaForCausalLM";
        c.hidden = 256, c.intermediate = 768, c.n_layers = 6, c.n_heads = 8, c.n_kv_heads = 4, c.head_dim = 32;
        c.vocab = 8192, c.max_position = 2048;
    } else {
        fail("unknown shape '" + name + "' (known: " + shape_names() + ")");
    }
    return c;
}

std::string shape_names() { return "llama3-8b, llama3.2-1b, qwen3-0.6b, tiny-llama-shape"; }

namespace {

// Random bf16 N(0, σ²) values, rows generated in parallel from per-row seeds. Billions of values are
// needed at 8B scale, so 16 random bits index a table of normal quantiles: 4 weights per 64-bit draw.
std::shared_ptr<std::vector<uint8_t>> random_bf16(int64_t rows, int64_t cols, float sigma, uint64_t seed) {
    static const std::vector<float> quantiles = [] {
        std::vector<float> q(65536);
        for (size_t k = 0; k < q.size(); ++k) {  // inverse normal CDF by bisection on erfc
            const double p = (double(k) + 0.5) / 65536.0;
            double lo = -8, hi = 8;
            for (int it = 0; it < 60; ++it) {
                const double mid = 0.5 * (lo + hi);
                (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
            }
            q[k] = float(0.5 * (lo + hi));
        }
        return q;
    }();
    auto buf = std::make_shared<std::vector<uint8_t>>(size_t(rows * cols) * 2);
    auto* p = reinterpret_cast<uint16_t*>(buf->data());
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        PortableRng rng(seed * 0x9e3779b97f4a7c15ull + uint64_t(r));
        for (int64_t c = 0; c < cols; c += 4) {
            uint64_t bits = rng.next();
            for (int64_t k = 0; k < 4 && c + k < cols; ++k, bits >>= 16)
                p[r * cols + c + k] = f32_to_bf16(quantiles[bits & 0xffff] * sigma);
        }
    }
    return buf;
}

PackedWeight dense_random(int64_t rows, int64_t cols, float sigma, uint64_t seed) {
    PackedWeight w;
    w.format = &kFormatBF16;
    w.rows = rows;
    w.cols = cols;
    w.params.bits = 16;
    auto buf = random_bf16(rows, cols, sigma, seed);
    w.parts.push_back(WeightPart{PartSpec{"weight", DType::BF16, {rows, cols}}, buf->data()});
    w.owned.push_back(buf);
    return w;
}

}  // namespace

PackedWeight random_weight(const WeightFormat& format, int64_t rows, int64_t cols, const FormatParams& params, uint64_t seed) {
    const float sigma = 1.0f / std::sqrt(float(cols));
    if (format.name == "bf16") return dense_random(rows, cols, sigma, seed);
    if (format.name == "int") {
        if (std::string why = format.check(rows, cols, params); !why.empty()) fail(why);
        const int64_t G = cols / params.group, maxq = (1 << params.bits) - 1;
        std::vector<uint8_t> codes(size_t(rows * cols)), zeros(size_t(rows * G));
        std::vector<uint16_t> scales(size_t(rows * G));
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            PortableRng rng(seed * 0x9e3779b97f4a7c15ull + uint64_t(r));
            for (int64_t c = 0; c < cols; c += 8) {
                uint64_t bits = rng.next();
                for (int64_t k = 0; k < 8 && c + k < cols; ++k, bits >>= 8) codes[size_t(r * cols + c + k)] = uint8_t((bits & 0xff) % (maxq + 1));
            }
            for (int64_t j = 0; j < G; ++j) {
                scales[size_t(r * G + j)] = f32_to_f16(float(2.0 * sigma / double(maxq) * (0.5 + rng.uniform())));
                zeros[size_t(r * G + j)] = uint8_t((maxq + 1) / 2);
            }
        }
        std::vector<int32_t> g_idx;
        if (params.g_idx) {
            g_idx.resize(size_t(cols));
            for (int64_t c = 0; c < cols; ++c) g_idx[size_t(c)] = int32_t(c / params.group);
        }
        return pack_int_group(rows, cols, params, codes, scales, zeros, g_idx);
    }
    if (format.name == "bitplane") {  // random planes; coefficients of a spread ~ a uniform k-bit grid
        if (std::string why = format.check(rows, cols, params); !why.empty()) fail(why);
        const int k = params.bits;
        const int64_t G = cols / params.group;
        std::vector<uint8_t> codes(size_t(rows * cols));
        std::vector<uint16_t> coefs(size_t(rows * G * (k + 1)));
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            PortableRng rng(seed * 0x9e3779b97f4a7c15ull + uint64_t(r));
            for (int64_t c = 0; c < cols; c += 8) {
                uint64_t bits = rng.next();
                for (int64_t i = 0; i < 8 && c + i < cols; ++i, bits >>= 8) codes[size_t(r * cols + c + i)] = uint8_t(bits & ((1u << k) - 1));
            }
            for (int64_t j = 0; j < G; ++j) {
                const double step = 2.0 * sigma / double((1 << k) - 1) * (0.5 + rng.uniform());
                uint16_t* cf = coefs.data() + (r * G + j) * (k + 1);
                cf[0] = f32_to_bf16(float(-step * double((1 << k) - 1) / 2.0));
                for (int m = 1; m <= k; ++m) cf[m] = f32_to_bf16(float(step * double(1 << (m - 1)) * (0.75 + 0.5 * rng.uniform())));
            }
        }
        return pack_bitplane(rows, cols, params, codes, coefs);
    }
    if (format.name == "tritplane") return random_tritplane(rows, cols, params.group, sigma, seed);  // bits: always 2 planes
    fail("format '" + std::string(format.name) + "' has no random-weight generator for synthetic models");
}

std::unique_ptr<Model> synthetic_model(const ModelConfig& c,
                                       const std::function<PackedWeight(const std::string&, int64_t, int64_t)>& make_linear,
                                       uint64_t seed) {
    auto m = std::make_unique<Model>();
    m->config = c;
    m->config.raw = nlohmann::json{{"architectures", {c.architecture}}, {"synthetic", true}};
    m->embed = dense_random(c.vocab, c.hidden, 0.02f, seed);
    uint64_t s = seed + 1;
    auto make = [&](const std::string& name, int64_t rows, int64_t cols) {
        Linear l;
        l.name = name;
        l.weight = make_linear(name, rows, cols);
        ++s;
        return l;
    };
    m->blocks.resize(size_t(c.n_layers));
    for (int64_t i = 0; i < c.n_layers; ++i) {
        Block& b = m->blocks[size_t(i)];
        const std::string p = "model.layers." + std::to_string(i) + ".";
        b.attn_norm.assign(size_t(c.hidden), 1.0f);
        b.ffn_norm.assign(size_t(c.hidden), 1.0f);
        if (c.qk_norm) {
            b.q_norm.assign(size_t(c.head_dim), 1.0f);
            b.k_norm.assign(size_t(c.head_dim), 1.0f);
        }
        b.q = make(p + "self_attn.q_proj", c.q_dim(), c.hidden);
        b.k = make(p + "self_attn.k_proj", c.kv_dim(), c.hidden);
        b.v = make(p + "self_attn.v_proj", c.kv_dim(), c.hidden);
        b.o = make(p + "self_attn.o_proj", c.hidden, c.q_dim());
        b.gate = make(p + "mlp.gate_proj", c.intermediate, c.hidden);
        b.up = make(p + "mlp.up_proj", c.intermediate, c.hidden);
        b.down = make(p + "mlp.down_proj", c.hidden, c.intermediate);
        m->small_tensor_bytes += size_t(2 * c.hidden + (c.qk_norm ? 2 * c.head_dim : 0)) * 2;
    }
    m->final_norm.assign(size_t(c.hidden), 1.0f);
    m->small_tensor_bytes += size_t(c.hidden) * 2;
    m->lm_head.name = "lm_head";
    m->lm_head.weight = c.tie_embeddings ? m->embed : dense_random(c.vocab, c.hidden, 0.02f, seed + 7777);
    m->rope = Rope(c.rope, c.head_dim, c.max_position);
    return m;
}

}  // namespace planeq
