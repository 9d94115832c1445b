#include "model/slot_cache.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/half.hpp"
#include "core/parallel.hpp"
#include "core/scratch.hpp"
#include "model/kv_quant.hpp"
#include "model/model.hpp"

namespace planeq {

CacheMode parse_cache_mode(const std::string& s) {
    if (s == "full") return CacheMode::Full;
    if (s == "window") return CacheMode::Window;
    if (s == "streaming") return CacheMode::Streaming;
    fail("--cache must be full, window or streaming (got '" + s + "')");
}

const char* cache_mode_name(CacheMode m) {
    switch (m) {
        case CacheMode::Full: return "full";
        case CacheMode::Window: return "window";
        case CacheMode::Streaming: return "streaming";
    }
    return "?";
}

std::string CacheOptions::describe() const {
    std::string s = cache_mode_name(mode);
    if (mode == CacheMode::Streaming) s += " N=" + std::to_string(sinks);
    if (mode != CacheMode::Full) s += " W=" + std::to_string(window);
    if (kv_bits > 0) {
        s += ", kv " + std::to_string(kv_bits) + "-bit g" + std::to_string(kv_group);
        s += keep_sinks > 0 ? ", first " + std::to_string(keep_sinks) + " tokens fp16" : ", no sink protection";
    } else if (mode != CacheMode::Full) {
        s += ", f32 pre-RoPE keys";
    }
    return s;
}

nlohmann::json CacheOptions::to_json() const {
    nlohmann::json j{{"mode", cache_mode_name(mode)}, {"kv_bits", kv_bits == 0 ? 32 : kv_bits}};
    if (mode == CacheMode::Streaming) j["sinks"] = sinks;
    if (mode != CacheMode::Full) j["window"] = window;
    if (kv_bits > 0) j["kv_group"] = kv_group, j["kv_keep_sinks"] = keep_sinks;
    return j;
}

void validate_cache_options(const CacheOptions& o, const ModelConfig& c) {
    if (o.mode == CacheMode::Full && (o.window > 0 || o.sinks > 0))
        fail("--sinks and --window need --cache window or --cache streaming");
    if (o.mode != CacheMode::Full && o.window <= 0) fail("--cache " + std::string(cache_mode_name(o.mode)) + " needs --window W > 0");
    if (o.mode == CacheMode::Window && o.sinks > 0) fail("--cache window keeps no sinks: use --cache streaming --sinks N");
    if (o.mode == CacheMode::Streaming && o.sinks <= 0) fail("--cache streaming needs --sinks N > 0 (N = 0 is --cache window)");
    if (o.sinks < 0 || o.window < 0) fail("--sinks and --window must not be negative");
    if (o.sinks > o.window && o.mode == CacheMode::Streaming)
        fail("--sinks " + std::to_string(o.sinks) + " exceeds --window " + std::to_string(o.window) + " (sinks are a few tokens beside the window)");
    if (c.sliding_window > 0 && o.mode != CacheMode::Full) fail("the model has its own sliding window; --cache window/streaming is not supported for it");
    if (o.kv_bits != 0 && o.kv_bits != 8 && o.kv_bits != 4 && o.kv_bits != 2)
        fail("--kv-bits must be 8, 4 or 2 (16 = unquantized); got " + std::to_string(o.kv_bits));
    if (o.kv_bits == 0 && o.keep_sinks > 0) fail("--kv-keep-sinks protects tokens of a quantized cache: give --kv-bits too");
    if (o.kv_bits > 0) {
        if (o.kv_group < 16 || o.kv_group % 16 != 0 || c.head_dim % o.kv_group != 0)
            fail("--kv-group " + std::to_string(o.kv_group) + " must be a multiple of 16 that divides the head dimension " +
                 std::to_string(c.head_dim));
        if (o.keep_sinks < 0) fail("--kv-keep-sinks must not be negative");
        if (o.mode == CacheMode::Window && o.keep_sinks > 0)
            fail("--kv-keep-sinks needs pinned sinks: with --cache window the first tokens are evicted (use --cache streaming)");
        if (o.mode == CacheMode::Streaming && o.keep_sinks > o.sinks)
            fail("--kv-keep-sinks " + std::to_string(o.keep_sinks) + " exceeds --sinks " + std::to_string(o.sinks) +
                 " (only pinned tokens can be kept in fp16)");
    }
    if (c.head_dim % 2 != 0) fail("head dimension " + std::to_string(c.head_dim) + " is odd: RoPE pairs need an even one");
}

SlotCache::SlotCache(const ModelConfig& c, const CacheOptions& o, int64_t capacity, int64_t max_batch)
    : opt_(o), n_layers_(c.n_layers), kv_dim_(c.kv_dim()), head_dim_(c.head_dim), capacity_(capacity) {
    validate_cache_options(o, c);
    max_batch = std::max<int64_t>(max_batch, 1);
    if (o.mode == CacheMode::Full) {
        if (capacity <= 0) fail("internal: a full cache needs a capacity");
        ring_ = capacity;
    } else {
        n_sinks_ = o.mode == CacheMode::Streaming ? o.sinks : 0;
        window_ = o.window;
        ring_ = window_ + max_batch - 1;
    }
    const int64_t S = slots();
    if (o.kv_bits == 0) {
        kf_.resize(size_t(n_layers_ * S * kv_dim_));
        vf_.resize(size_t(n_layers_ * S * kv_dim_));
        return;
    }
    keep_ = std::min(o.keep_sinks, S);
    code_bytes_ = kvq::code_bytes(kv_dim_, o.kv_bits);
    params_ = kvq::param_count(kv_dim_, o.kv_group);
    kh_.resize(size_t(n_layers_ * keep_ * kv_dim_));
    vh_.resize(kh_.size());
    kq_.resize(size_t(n_layers_ * (S - keep_) * code_bytes_));
    vq_.resize(kq_.size());
    kpar_.resize(size_t(n_layers_ * (S - keep_) * params_));
    vpar_.resize(kpar_.size());
}

int64_t SlotCache::positions() const { return window_ > 0 ? n_sinks_ + window_ : capacity_; }

int64_t SlotCache::max_chunk(int64_t t0) const {
    if (window_ == 0) {
        if (t0 >= capacity_)
            fail("context full: the KV cache holds " + std::to_string(capacity_) + " tokens (use --cache streaming to go on)");
        return capacity_ - t0;
    }
    // Writing t0 … t0 + n − 1 overwrites ring tokens up to t0 + n − 1 − R; the block's first query still
    // needs every token from max(N, t0 − W + 1) on.
    return ring_ + std::max(n_sinks_, t0 - window_ + 1) - t0;
}

SlotCache::View SlotCache::view(int64_t t) const {
    View v;
    const int64_t ns = std::min(n_sinks_, t + 1);
    if (ns > 0) v.slot[0] = 0, v.count[0] = ns, v.pos0[0] = 0, v.runs = 1;
    int64_t cnt = 0;
    if (t >= n_sinks_) {
        const int64_t r0 = window_ > 0 ? std::max(n_sinks_, t - window_ + 1) : n_sinks_;
        cnt = t - r0 + 1;
        const int64_t first = slot_of(r0);
        const int64_t len = std::min(cnt, n_sinks_ + ring_ - first);
        v.slot[v.runs] = first, v.count[v.runs] = len, v.pos0[v.runs] = n_sinks_, ++v.runs;
        if (len < cnt) v.slot[v.runs] = n_sinks_, v.count[v.runs] = cnt - len, v.pos0[v.runs] = n_sinks_ + len, ++v.runs;
    }
    v.length = ns + cnt;
    v.qpos = v.length - 1;
    return v;
}

void SlotCache::write(int64_t layer, int64_t t, const float* k, const float* v) {
    if (window_ == 0 && t >= capacity_) fail("internal: slot cache write past its capacity");
    const int64_t s = slot_of(t), S = slots();
    if (opt_.kv_bits == 0) {
        std::copy_n(k, kv_dim_, kf_.data() + (layer * S + s) * kv_dim_);
        std::copy_n(v, kv_dim_, vf_.data() + (layer * S + s) * kv_dim_);
    } else if (s < keep_) {
        uint16_t* kh = kh_.data() + (layer * keep_ + s) * kv_dim_;
        uint16_t* vh = vh_.data() + (layer * keep_ + s) * kv_dim_;
        for (int64_t i = 0; i < kv_dim_; ++i) kh[i] = f32_to_f16(k[i]), vh[i] = f32_to_f16(v[i]);
    } else {
        const int64_t r = layer * (S - keep_) + (s - keep_);
        kvq::quantize(k, kv_dim_, opt_.kv_bits, opt_.kv_group, kq_.data() + r * code_bytes_, kpar_.data() + r * params_);
        kvq::quantize(v, kv_dim_, opt_.kv_bits, opt_.kv_group, vq_.data() + r * code_bytes_, vpar_.data() + r * params_);
    }
}

int SlotCache::runs(const View& view, int64_t layer, int64_t kv_head, cpu::KvRun* out) const {
    const int64_t S = slots(), off = kv_head * head_dim_;
    int n = 0;
    auto add = [&](int64_t slot, int64_t count, int64_t pos0) {
        cpu::KvRun r;
        r.count = count, r.pos0 = pos0;
        if (opt_.kv_bits == 0) {
            r.kind = cpu::KvStore::F32;
            r.k = kf_.data() + (layer * S + slot) * kv_dim_ + off;
            r.v = vf_.data() + (layer * S + slot) * kv_dim_ + off;
            r.stride = kv_dim_;
        } else if (slot < keep_) {
            r.kind = cpu::KvStore::F16;
            r.k = kh_.data() + (layer * keep_ + slot) * kv_dim_ + off;
            r.v = vh_.data() + (layer * keep_ + slot) * kv_dim_ + off;
            r.stride = kv_dim_;
        } else {
            const int64_t row = layer * (S - keep_) + (slot - keep_);
            r.kind = cpu::KvStore::Quant;
            r.k = kq_.data() + row * code_bytes_ + off * opt_.kv_bits / 8;
            r.v = vq_.data() + row * code_bytes_ + off * opt_.kv_bits / 8;
            r.kp = kpar_.data() + row * params_ + 2 * (off / opt_.kv_group);
            r.vp = vpar_.data() + row * params_ + 2 * (off / opt_.kv_group);
            r.stride = code_bytes_, r.pstride = params_;
        }
        out[n++] = r;
    };
    for (int i = 0; i < view.runs; ++i) {
        const int64_t s0 = view.slot[i], c = view.count[i], p0 = view.pos0[i];
        const int64_t split = std::clamp(keep_ - s0, int64_t(0), c);  // slots below keep_ are fp16
        if (opt_.kv_bits > 0 && split > 0 && split < c) {
            add(s0, split, p0);
            add(s0 + split, c - split, p0 + split);
        } else {
            add(s0, c, p0);
        }
    }
    return n;
}

cpu::KvAttnParams SlotCache::kernel_params(const Rope& rope) const {
    cpu::KvAttnParams p;
    p.head_dim = head_dim_;
    p.bits = opt_.kv_bits;
    p.group = opt_.kv_group;
    p.cos = rope.cos_table();
    p.sin = rope.sin_table();
    p.scale = 1.0f / std::sqrt(float(head_dim_));
    return p;
}

void SlotCache::read(int64_t layer, int64_t slot, float* k, float* v) const {
    const int64_t S = slots();
    if (opt_.kv_bits == 0) {
        std::copy_n(kf_.data() + (layer * S + slot) * kv_dim_, kv_dim_, k);
        std::copy_n(vf_.data() + (layer * S + slot) * kv_dim_, kv_dim_, v);
    } else if (slot < keep_) {
        for (int64_t i = 0; i < kv_dim_; ++i)
            k[i] = f16_to_f32(kh_[size_t((layer * keep_ + slot) * kv_dim_ + i)]), v[i] = f16_to_f32(vh_[size_t((layer * keep_ + slot) * kv_dim_ + i)]);
    } else {
        const int64_t r = layer * (S - keep_) + (slot - keep_);
        kvq::dequantize(kq_.data() + r * code_bytes_, kpar_.data() + r * params_, kv_dim_, opt_.kv_bits, opt_.kv_group, k);
        kvq::dequantize(vq_.data() + r * code_bytes_, vpar_.data() + r * params_, kv_dim_, opt_.kv_bits, opt_.kv_group, v);
    }
}

size_t SlotCache::bytes() const {
    return (kf_.size() + vf_.size()) * 4 + (kh_.size() + vh_.size() + kpar_.size() + vpar_.size()) * 2 + kq_.size() + vq_.size();
}

double SlotCache::bytes_per_token() const {
    const double per_vector = opt_.kv_bits == 0 ? 4.0 * double(kv_dim_) : double(code_bytes_ + 2 * params_);
    return 2.0 * double(n_layers_) * per_vector;
}

// ---- the forward pass through a slot cache ----

namespace {

void cached_block(const Model& m, int64_t layer, float* x, int64_t n, int64_t t0, SlotCache& cache, ForwardBuffers& buf) {
    const ModelConfig& c = m.config;
    const Block& b = m.blocks[size_t(layer)];
    const int64_t d = c.hidden, hd = c.head_dim, q_dim = c.q_dim(), kv_dim = c.kv_dim();
    const int64_t group = c.n_heads / c.n_kv_heads;

    rmsnorm(x, b.attn_norm.data(), n, d, c.rms_eps, buf.h.data());
    const Linear* qkv[] = {&b.q, &b.k, &b.v};
    float* qkv_out[] = {buf.q.data(), buf.k.data(), buf.v.data()};
    forward_shared_input(qkv, buf.h.data(), n, qkv_out);
    // Qwen3 q/k norms per head (in place); keys stay un-rotated, queries are rotated per token below.
    if (!b.q_norm.empty()) rmsnorm(buf.q.data(), b.q_norm.data(), n * c.n_heads, hd, c.rms_eps, buf.q.data());
    if (!b.k_norm.empty()) rmsnorm(buf.k.data(), b.k_norm.data(), n * c.n_kv_heads, hd, c.rms_eps, buf.k.data());
    for (int64_t i = 0; i < n; ++i) cache.write(layer, t0 + i, buf.k.data() + i * kv_dim, buf.v.data() + i * kv_dim);

    const cpu::KvAttnParams params = cache.kernel_params(m.rope);
    const SlotCache::View last = cache.view(t0 + n - 1);
    const bool worth = double(n) * double(c.n_heads) * double(last.length) * double(hd) > 65536.0;
    parallel_for(n * c.n_heads, worth, [&](int64_t idx) {
        const int64_t i = idx / c.n_heads, h = idx % c.n_heads;
        const SlotCache::View v = cache.view(t0 + i);
        float* q = buf.q.data() + i * q_dim + h * hd;
        m.rope.apply(q, v.qpos);
        cpu::KvRun runs[6];
        const int nr = cache.runs(v, layer, h / group, runs);
        float* scores = scratch_floats(size_t(last.length), 2);  // the block's longest view: no regrowth per query
        cpu::kv_attend(params, q, runs, nr, scores, buf.attn.data() + i * q_dim + h * hd);
    });
    b.o.forward(buf.attn.data(), n, buf.h.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += buf.h[size_t(i)];
    ffn_block(m, layer, x, n, buf);
}

}  // namespace

std::span<const float> forward(const Model& m, SlotCache& cache, ForwardBuffers& buf, std::span<const int32_t> tokens,
                               Logits want) {
    const ModelConfig& c = m.config;
    const int64_t n = int64_t(tokens.size());
    if (n == 0) return {};
    const int64_t biggest = std::min(n, cache.max_chunk(cache.length));  // later blocks are never larger
    if (biggest > buf.max_tokens) buf = ForwardBuffers(c, biggest);
    const int64_t rows_out = want == Logits::All ? n : want == Logits::Last ? 1 : 0;
    if (buf.logits.size() < size_t(rows_out * c.vocab)) buf.logits.resize(size_t(rows_out * c.vocab));
    m.rope.reserve(cache.positions());

    for (int64_t done = 0; done < n;) {
        const int64_t t0 = cache.length;
        const int64_t k = std::min({n - done, cache.max_chunk(t0), buf.max_tokens});
        float* x = buf.x.data();
        m.embed_tokens(tokens.data() + done, k, x);
        for (int64_t l = 0; l < c.n_layers; ++l) cached_block(m, l, x, k, t0, cache, buf);
        cache.length = t0 + k;
        if (want == Logits::All) {
            rmsnorm(x, m.final_norm.data(), k, c.hidden, c.rms_eps, buf.h.data());
            m.lm_head.forward(buf.h.data(), k, buf.logits.data() + done * c.vocab);
        } else if (want == Logits::Last && done + k == n) {
            rmsnorm(x + (k - 1) * c.hidden, m.final_norm.data(), 1, c.hidden, c.rms_eps, buf.h.data());
            m.lm_head.forward(buf.h.data(), 1, buf.logits.data());
        }
        done += k;
    }
    return {buf.logits.data(), size_t(rows_out * c.vocab)};
}

}  // namespace planeq
