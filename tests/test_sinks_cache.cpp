// Sink + window cache (SINKS.md §3, §7): slot bookkeeping, streaming == full while the stream fits,
// pre-RoPE keys rotated at read time == keys rotated when written, blocks == token by token, and bounded
// memory over 100k generated tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/cpu_features.hpp"
#include "core/process_memory.hpp"
#include "eval/perplexity.hpp"
#include "formats/format.hpp"
#include "model/forward.hpp"
#include "model/generate.hpp"
#include "model/slot_cache.hpp"
#include "model/synthetic.hpp"
#include "quant/calibration.hpp"
#include "test_util.hpp"

namespace planeq {
namespace {

ModelConfig tiny_config(bool qwen) {
    ModelConfig c;
    c.arch = qwen ? Arch::Qwen3 : Arch::Llama;
    c.architecture = qwen ? "Qwen3ForCausalLM" : "LlamaForCausalLM";
    c.hidden = 128, c.intermediate = 256, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 32, c.vocab = 512;
    c.max_position = 4096, c.rope.theta = 10000.0, c.rms_eps = 1e-5, c.qk_norm = qwen, c.eos_ids = {0};
    return c;
}

std::unique_ptr<Model> tiny_model(bool qwen, uint64_t seed = 3) {
    const WeightFormat* bf16 = find_format("bf16");
    uint64_t s = seed;
    // Larger weights than 1/√n so attention is far from uniform and positions matter.
    return synthetic_model(tiny_config(qwen), [&](const std::string&, int64_t r, int64_t k) {
        return random_weight(*bf16, r, k, FormatParams{16, 0, false, false}, s++);
    }, seed);
}

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
    PortableRng rng(seed);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = int32_t(rng.below(uint64_t(vocab)));
    return t;
}

double max_rel_diff(std::span<const float> a, std::span<const float> b) {
    double mx = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i) mx = std::max(mx, double(std::abs(a[i] - b[i]))), scale = std::max(scale, double(std::abs(b[i])));
    return mx / std::max(scale, 1e-30);
}

TEST(SinkCache, HoldsExactlySinksAndTheLastWindow) {
    const ModelConfig c = tiny_config(false);
    for (int64_t B : {1, 5}) {
        CacheOptions o;
        o.mode = CacheMode::Streaming, o.sinks = 3, o.window = 10;
        SlotCache cache(c, o, 0, B);
        std::vector<float> k(size_t(c.kv_dim())), v(k.size());
        for (int64_t t = 0; t < 200; ++t) {
            std::fill(k.begin(), k.end(), float(t));
            for (int64_t l = 0; l < c.n_layers; ++l) cache.write(l, t, k.data(), v.data());
            const SlotCache::View view = cache.view(t);
            std::set<int64_t> held;
            int64_t expect_pos = 0;
            for (int r = 0; r < view.runs; ++r)
                for (int64_t j = 0; j < view.count[r]; ++j) {
                    cache.read(1, view.slot[r] + j, k.data(), v.data());
                    held.insert(int64_t(k[0]));
                    EXPECT_EQ(view.pos0[r] + j, expect_pos++);  // positions are 0 … L − 1 in order
                }
            std::set<int64_t> want;
            for (int64_t u = 0; u < std::min<int64_t>(3, t + 1); ++u) want.insert(u);
            for (int64_t u = std::max<int64_t>(3, t - 10 + 1); u <= t; ++u) want.insert(u);
            ASSERT_EQ(held, want) << "t=" << t << " B=" << B;
            EXPECT_EQ(view.qpos, view.length - 1);
            EXPECT_LE(view.length, 13);
        }
        EXPECT_EQ(cache.slots(), 3 + 10 + B - 1);
    }
}

// With C ≥ stream length nothing is evicted: streaming logits equal the dense forward (SINKS.md §7.3).
TEST(SinkCache, StreamingEqualsFullWhileItFits) {
    for (bool qwen : {false, true}) {
        auto m = tiny_model(qwen);
        const auto toks = random_tokens(150, m->config.vocab, 11);
        KVCache full(m->config, 150);
        ForwardBuffers buf(m->config, 150);
        const auto ref_span = forward(*m, full, buf, toks, Logits::All);
        const std::vector<float> ref(ref_span.begin(), ref_span.end());

        CacheOptions o;
        o.mode = CacheMode::Streaming, o.sinks = 4, o.window = 200;
        // (a) one prefill of everything, (b) a prompt then token by token.
        SlotCache a(m->config, o, 0, 1);
        ForwardBuffers ba(m->config, 1);
        const auto la = forward(*m, a, ba, toks, Logits::All);
        EXPECT_LT(max_rel_diff(la, ref), 1e-5) << "qwen=" << qwen;

        SlotCache b(m->config, o, 0, 1);
        ForwardBuffers bb(m->config, 1);
        forward(*m, b, bb, std::span<const int32_t>(toks.data(), 20), Logits::None);
        for (size_t t = 20; t < toks.size(); ++t) {
            const auto lb = forward(*m, b, bb, std::span<const int32_t>(&toks[t], 1), Logits::Last);
            ASSERT_LT(max_rel_diff(lb, std::span<const float>(ref.data() + t * m->config.vocab, size_t(m->config.vocab))), 1e-5)
                << "qwen=" << qwen << " t=" << t;
        }
        // A full slot cache (pre-RoPE keys, no eviction) equals it too.
        SlotCache s(m->config, CacheOptions{}, 150, 1);
        ForwardBuffers bs(m->config, 150);
        EXPECT_LT(max_rel_diff(forward(*m, s, bs, toks, Logits::All), ref), 1e-5);
    }
}

// The full cache's decode step (one query: dot products over the cache rows, forward.cpp) equals the
// prefill's chunked GEMM path over the same positions, with and without a sliding window.
TEST(FullCache, DecodeStepEqualsPrefill) {
    for (bool qwen : {false, true})
        for (int64_t window : {0, 16}) {
            auto m = tiny_model(qwen);
            m->config.sliding_window = window;
            const auto toks = random_tokens(90, m->config.vocab, 12);
            KVCache full(m->config, 90);
            ForwardBuffers buf(m->config, 90);
            const auto ref_span = forward(*m, full, buf, toks, Logits::All);
            const std::vector<float> ref(ref_span.begin(), ref_span.end());
            KVCache inc(m->config, 90);
            ForwardBuffers bi(m->config, 1);
            forward(*m, inc, bi, std::span<const int32_t>(toks.data(), 5), Logits::None);
            for (size_t t = 5; t < toks.size(); ++t) {
                const auto l = forward(*m, inc, bi, std::span<const int32_t>(&toks[t], 1), Logits::Last);
                ASSERT_LT(max_rel_diff(l, std::span<const float>(ref.data() + t * m->config.vocab, size_t(m->config.vocab))), 1e-5)
                    << "qwen=" << qwen << " window=" << window << " t=" << t;
            }
        }
}

// Pre-RoPE keys rotated by their slot position at read time equal keys rotated at that position when
// they were written (the recomputation StreamingLLM's pos-shift replaces), for every view of a ring
// that has wrapped several times.
TEST(SinkCache, ReadTimeRotationEqualsRecomputation) {
    const ModelConfig c = tiny_config(true);
    Rope rope(c.rope, c.head_dim, 64);
    CacheOptions o;
    o.mode = CacheMode::Streaming, o.sinks = 2, o.window = 12;
    SlotCache cache(c, o, 0, 1);
    rope.reserve(cache.positions());
    PortableRng rng(5);
    std::vector<float> k(size_t(c.kv_dim())), v(k.size()), q(size_t(c.head_dim)), out(q.size()), kk(k.size()), vv(k.size());
    for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx512}) {
        if (level == SimdLevel::Avx512 && simd_level() != SimdLevel::Avx512) continue;
        for (int64_t t = 0; t < 70; ++t) {
            for (auto& x : k) x = float(rng.normal() * 2);
            for (auto& x : v) x = float(rng.normal());
            cache.write(0, t, k.data(), v.data());
            for (auto& x : q) x = float(rng.normal());
            const SlotCache::View view = cache.view(t);
            // Reference: rotate each cached key by its position (Rope::apply, as the dense path does at
            // write time), softmax in f64.
            std::vector<double> s, acc(size_t(c.head_dim), 0.0);
            std::vector<float> qr = q;
            rope.apply(qr.data(), view.qpos);
            std::vector<std::vector<float>> vals;
            for (int r = 0; r < view.runs; ++r)
                for (int64_t j = 0; j < view.count[r]; ++j) {
                    cache.read(0, view.slot[r] + j, kk.data(), vv.data());
                    float* kh = kk.data() + c.head_dim;  // KV head 1
                    rope.apply(kh, view.pos0[r] + j);
                    double d = 0;
                    for (int64_t i = 0; i < c.head_dim; ++i) d += double(qr[size_t(i)]) * kh[i];
                    s.push_back(d / std::sqrt(double(c.head_dim)));
                    vals.emplace_back(vv.begin() + c.head_dim, vv.begin() + 2 * c.head_dim);
                }
            const double mx = *std::max_element(s.begin(), s.end());
            double z = 0;
            for (double& x : s) z += x = std::exp(x - mx);
            for (size_t j = 0; j < s.size(); ++j)
                for (int64_t i = 0; i < c.head_dim; ++i) acc[size_t(i)] += s[j] / z * vals[j][size_t(i)];

            set_simd_level(level);
            cpu::KvRun runs[6];
            const int nr = cache.runs(view, 0, 1, runs);
            std::vector<float> scores(static_cast<size_t>(view.length));
            cpu::kv_attend(cache.kernel_params(rope), qr.data(), runs, nr, scores.data(), out.data());
            set_simd_level(SimdLevel::Avx512);
            for (int64_t i = 0; i < c.head_dim; ++i) ASSERT_NEAR(out[size_t(i)], acc[size_t(i)], 2e-5) << "t=" << t << " i=" << i;
        }
    }
}

// Blocks of B queries, each with its own attention set, equal token-by-token decoding (--batch).
TEST(SinkCache, BlocksEqualTokenByToken) {
    auto m = tiny_model(true);
    const auto toks = random_tokens(400, m->config.vocab, 21);
    for (int kv_bits : {0, 4}) {
        StreamPplOptions o;
        o.cache.mode = CacheMode::Streaming, o.cache.sinks = 2, o.cache.window = 40;
        o.cache.kv_bits = kv_bits, o.cache.keep_sinks = kv_bits ? 2 : 0;
        o.skip = 50;
        o.batch = 1;
        const StreamPplResult one = stream_perplexity(*m, toks, o);
        o.batch = 17;
        const StreamPplResult blocks = stream_perplexity(*m, toks, o);
        ASSERT_EQ(one.scored_tokens, 400 - 1 - 50);
        ASSERT_EQ(blocks.scored_tokens, one.scored_tokens);
        // f32: only GEMM-vs-GEMV rounding differs. Quantized: that rounding can move a value across a code
        // boundary (one step of a 4-bit grid), so the bound is looser.
        const double tol = kv_bits ? 3e-2 : 1e-4;
        for (size_t i = 0; i < one.token_nll.size(); ++i) ASSERT_NEAR(one.token_nll[i], blocks.token_nll[i], tol) << "kv_bits=" << kv_bits << " i=" << i;
        EXPECT_NEAR(one.ppl, blocks.ppl, (kv_bits ? 1e-3 : 1e-6) * one.ppl);
    }
}

// Window-only drops the first tokens; streaming keeps them: different results once eviction starts,
// identical before.
TEST(SinkCache, EvictionChangesResultsOnlyAfterTheCacheFills) {
    auto m = tiny_model(false);
    const auto toks = random_tokens(120, m->config.vocab, 8);
    CacheOptions w, s;
    w.mode = CacheMode::Window, w.window = 32;
    s.mode = CacheMode::Streaming, s.sinks = 4, s.window = 28;
    SlotCache cw(m->config, w, 0), cs(m->config, s, 0);
    ForwardBuffers bw(m->config, 1), bs(m->config, 1);
    for (size_t t = 0; t < toks.size(); ++t) {
        const auto a = forward(*m, cw, bw, std::span<const int32_t>(&toks[t], 1), Logits::Last);
        const std::vector<float> av(a.begin(), a.end());
        const auto b = forward(*m, cs, bs, std::span<const int32_t>(&toks[t], 1), Logits::Last);
        if (t < 32) {
            ASSERT_EQ(max_rel_diff(av, b), 0.0) << t;
        } else if (t > 40) {
            ASSERT_GT(max_rel_diff(av, b), 1e-6) << t;
        }
    }
}

// 100k generated tokens through a streaming cache: the cache never grows and neither does the process.
TEST(SinkCache, MemoryStaysBoundedOver100kGeneratedTokens) {
    ModelConfig c = tiny_config(false);
    c.hidden = 64, c.intermediate = 128, c.n_heads = 2, c.n_kv_heads = 1, c.vocab = 64, c.n_layers = 2;
    const WeightFormat* bf16 = find_format("bf16");
    uint64_t s = 1;
    auto m = synthetic_model(c, [&](const std::string&, int64_t r, int64_t k) {
        return random_weight(*bf16, r, k, FormatParams{16, 0, false, false}, s++);
    }, 1);
    GenerateOptions opt;
    opt.max_new_tokens = 100000;
    opt.sampler.temperature = 1.0f, opt.sampler.top_k = 0, opt.sampler.top_p = 1, opt.sampler.min_p = 0, opt.sampler.seed = 4;
    opt.cache.mode = CacheMode::Streaming, opt.cache.sinks = 4, opt.cache.window = 64;
    opt.cache.kv_bits = 4, opt.cache.keep_sinks = 4;
    const std::vector<int32_t> prompt{1, 2, 3};
    int64_t n = 0, rss_10k = 0, rss_end = 0;
    const GenerateStats st = generate(*m, prompt, opt, [&](int32_t) {
        ++n;
        if (n == 10000) rss_10k = rss_kib();
        if (n == 100000) rss_end = rss_kib();
        return true;
    });
    EXPECT_EQ(st.generated_tokens, 100000);
    EXPECT_LT(st.cache_bytes, 100000u);  // 68 slots × 2 layers, not 100k tokens
    if (rss_10k > 0) EXPECT_LT(rss_end - rss_10k, 1024) << "VmRSS grew from " << rss_10k << " to " << rss_end << " KiB";
}

}  // namespace
}  // namespace planeq
