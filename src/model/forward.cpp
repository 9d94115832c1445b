#include "model/forward.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "core/scratch.hpp"
#include "kernels/cpu/gemm_f32.hpp"
#include "kernels/cpu/kv_attention.hpp"
#include "kernels/cpu/vec_math.hpp"

namespace planeq {

ForwardBuffers::ForwardBuffers(const ModelConfig& c, int64_t n) : max_tokens(n) {
    x.resize(size_t(n * c.hidden));
    h.resize(size_t(n * c.hidden));
    q.resize(size_t(n * c.q_dim()));
    k.resize(size_t(n * c.kv_dim()));
    v.resize(size_t(n * c.kv_dim()));
    attn.resize(size_t(n * std::max(c.q_dim(), c.hidden)));
    gate.resize(size_t(n * c.intermediate));
    up.resize(size_t(n * c.intermediate));
}

namespace {

// One row of RMSNorm (also used per head, inside parallel loops: see core/parallel.hpp for why it must
// not open an OpenMP region itself).
inline void rmsnorm_row(const float* xt, const float* weight, int64_t dim, double eps, float* ot) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(xt[i]) * xt[i];
    const float inv = 1.0f / std::sqrt(float(ss / double(dim)) + float(eps));
    for (int64_t i = 0; i < dim; ++i) ot[i] = weight[i] * (xt[i] * inv);
}

}  // namespace

void rmsnorm(const float* x, const float* weight, int64_t n, int64_t dim, double eps, float* out) {
    parallel_for(n, n * dim > 32768, [&](int64_t t) { rmsnorm_row(x + t * dim, weight, dim, eps, out + t * dim); });
}

// Per-head RMSNorm (Qwen3 q_norm / k_norm) then RoPE, for n tokens of `heads` heads each.
void norm_and_rotate(const Model& m, const std::vector<float>& norm, float* qk, int64_t n, int64_t heads, int64_t pos0) {
    const int64_t hd = m.config.head_dim;
    parallel_for(n * heads, n * heads > 64, [&](int64_t i) {
        float* v = qk + i * hd;
        if (!norm.empty()) rmsnorm_row(v, norm.data(), hd, m.config.rms_eps, v);
        m.rope.apply(v, pos0 + i / heads);
    });
}

void swiglu(float* gate, const float* up, int64_t n) {
    const int64_t chunk = 16384;  // a decode step's 14336 in one piece; prefill's n·I in parallel pieces
    parallel_for((n + chunk - 1) / chunk, n > 65536, [&](int64_t c) {
        const int64_t lo = c * chunk;
        cpu::silu_mul(gate + lo, up + lo, std::min(chunk, n - lo));
    });
}

void attention(const ModelConfig& c, const KVCache& cache, int64_t layer, const float* q, int64_t n, int64_t pos0, float* out) {
    const int64_t hd = c.head_dim, q_dim = c.q_dim(), kv_dim = c.kv_dim();
    const int64_t group = c.n_heads / c.n_kv_heads;
    const float scale = 1.0f / std::sqrt(float(hd));
    const int64_t chunk = 128;  // query rows per step: keys beyond the chunk's last query are never computed
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    const float* kbase = cache.k_at(layer, 0);
    const float* vbase = cache.v_at(layer, 0);

    // Decode (one query): dot products and a weighted sum straight over the cache rows. Through the GEMM,
    // packing K and V into panels for a single query cost ~3% of an 8B-shape decode token at 64 positions.
    const cpu::KvAttnParams kvp{hd, 0, 0, nullptr, nullptr, scale};
    if (n == 1 && cpu::kv_vectorized(kvp)) {
        const int64_t first = c.sliding_window > 0 ? std::max<int64_t>(0, pos0 - c.sliding_window + 1) : 0;
        const int64_t span = pos0 + 1 - first;
        parallel_for(c.n_heads, span * hd >= 4096, [&](int64_t h) {
            const int64_t off = first * kv_dim + (h / group) * hd;
            const cpu::KvRun run{cpu::KvStore::F32, kbase + off, vbase + off, nullptr, nullptr, kv_dim, 0, span, first};
            cpu::kv_attend(kvp, q + h * hd, &run, 1, scratch_floats(size_t(span), 1), out + h * hd);
        });
        return;
    }

#pragma omp parallel for schedule(dynamic) collapse(2)
    for (int64_t h = 0; h < c.n_heads; ++h)
        for (int64_t ci = 0; ci < n_chunks; ++ci) {
            const int64_t i0 = ci * chunk, i1 = std::min(n, i0 + chunk), rows = i1 - i0;
            const int64_t kv_head = h / group;
            // Keys visible to this chunk: [first, last) — causal, and a sliding window when the model has one.
            const int64_t last = pos0 + i1;
            const int64_t first = c.sliding_window > 0 ? std::max<int64_t>(0, pos0 + i0 - c.sliding_window + 1) : 0;
            const int64_t span = last - first;
            float* s = scratch_floats(size_t(rows * span), 1);
            cpu::gemm_f32(rows, span, hd, q + i0 * q_dim + h * hd, q_dim,
                          cpu::BOperand{kbase + first * kv_dim + kv_head * hd, DType::F32, kv_dim, true}, s, span, false, 1);
            for (int64_t r = 0; r < rows; ++r) {
                const int64_t qpos = pos0 + i0 + r;
                const int64_t lo = c.sliding_window > 0 ? std::max<int64_t>(first, qpos - c.sliding_window + 1) : first;
                float* row = s + r * span;
                // Visible keys [lo, qpos]: scale, softmax; everything else gets weight 0.
                float* vis = row + (lo - first);
                const int64_t nvis = qpos - lo + 1;
                float mx = -std::numeric_limits<float>::infinity();
                for (int64_t j = 0; j < nvis; ++j) mx = std::max(mx, vis[j] *= scale);
                const float inv = float(1.0 / cpu::exp_shift_sum(vis, nvis, mx));
                for (int64_t j = 0; j < nvis; ++j) vis[j] *= inv;
                std::fill(row, vis, 0.0f);
                std::fill(vis + nvis, row + span, 0.0f);
            }
            cpu::gemm_f32(rows, hd, span, s, span, cpu::BOperand{vbase + first * kv_dim + kv_head * hd, DType::F32, kv_dim, false},
                          out + i0 * q_dim + h * hd, q_dim, false, 1);
        }
}

void block_forward(const Model& m, int64_t layer, float* x, int64_t n, int64_t pos0, KVCache& cache, ForwardBuffers& buf) {
    const ModelConfig& c = m.config;
    const Block& b = m.blocks[size_t(layer)];
    const int64_t d = c.hidden;

    // Attention sub-block.
    rmsnorm(x, b.attn_norm.data(), n, d, c.rms_eps, buf.h.data());
    const Linear* qkv[] = {&b.q, &b.k, &b.v};
    float* qkv_out[] = {buf.q.data(), buf.k.data(), buf.v.data()};
    forward_shared_input(qkv, buf.h.data(), n, qkv_out);
    norm_and_rotate(m, b.q_norm, buf.q.data(), n, c.n_heads, pos0);
    norm_and_rotate(m, b.k_norm, buf.k.data(), n, c.n_kv_heads, pos0);
    for (int64_t t = 0; t < n; ++t) {
        std::copy_n(buf.k.data() + t * c.kv_dim(), c.kv_dim(), cache.k_at(layer, pos0 + t));
        std::copy_n(buf.v.data() + t * c.kv_dim(), c.kv_dim(), cache.v_at(layer, pos0 + t));
    }
    attention(c, cache, layer, buf.q.data(), n, pos0, buf.attn.data());
    b.o.forward(buf.attn.data(), n, buf.h.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += buf.h[size_t(i)];
    ffn_block(m, layer, x, n, buf);
}

void ffn_block(const Model& m, int64_t layer, float* x, int64_t n, ForwardBuffers& buf) {
    const ModelConfig& c = m.config;
    const Block& b = m.blocks[size_t(layer)];
    const int64_t d = c.hidden;
    // Feed-forward sub-block (SwiGLU).
    rmsnorm(x, b.ffn_norm.data(), n, d, c.rms_eps, buf.h.data());
    const Linear* gate_up[] = {&b.gate, &b.up};
    float* gate_up_out[] = {buf.gate.data(), buf.up.data()};
    forward_shared_input(gate_up, buf.h.data(), n, gate_up_out);
    swiglu(buf.gate.data(), buf.up.data(), n * c.intermediate);
    b.down.forward(buf.gate.data(), n, buf.h.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += buf.h[size_t(i)];
}

std::span<const float> forward(const Model& m, KVCache& cache, ForwardBuffers& buf, std::span<const int32_t> tokens,
                               Logits want) {
    const ModelConfig& c = m.config;
    const int64_t n = int64_t(tokens.size());
    const int64_t pos0 = cache.length;
    if (n == 0) return {};
    if (n > buf.max_tokens) buf = ForwardBuffers(c, n);
    if (pos0 + n > cache.capacity)
        fail("context full: " + std::to_string(pos0 + n) + " positions needed, the KV cache holds " + std::to_string(cache.capacity));
    m.rope.reserve(pos0 + n);  // grows the cos/sin table before parallel use

    float* x = buf.x.data();
    m.embed_tokens(tokens.data(), n, x);
    for (int64_t l = 0; l < c.n_layers; ++l) block_forward(m, l, x, n, pos0, cache, buf);
    cache.length = pos0 + n;

    if (want == Logits::None) return {};
    const int64_t rows = want == Logits::All ? n : 1;
    const float* last = want == Logits::All ? x : x + (n - 1) * c.hidden;
    rmsnorm(last, m.final_norm.data(), rows, c.hidden, c.rms_eps, buf.h.data());
    if (buf.logits.size() < size_t(rows * c.vocab)) buf.logits.resize(size_t(rows * c.vocab));
    m.lm_head.forward(buf.h.data(), rows, buf.logits.data());
    return {buf.logits.data(), size_t(rows * c.vocab)};
}

}  // namespace planeq
