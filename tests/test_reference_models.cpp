// The correctness bar of the engine: Hugging Face transformers' own figures (reference.json) for the
// bundled tiny-llama and, when ../shared is present, small-qwen3. Per-window NLL sums to 1e-4 relative,
// top-5 logits of a 64-token prefix exact in ids and to 1e-3 relative in value.
#include <cmath>

#include "core/text_file.hpp"
#include "eval/perplexity.hpp"
#include "model/forward.hpp"
#include "test_util.hpp"
#include "tokenizer/tokenizer.hpp"

namespace planeq::test {
namespace {

struct Loaded {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tok;
    nlohmann::json ref;
};

Loaded load(const fs::path& dir) {
    Loaded l;
    l.model = Model::load(dir);
    l.tok = std::make_unique<Tokenizer>(Tokenizer::load(dir / "tokenizer.json"));
    l.ref = read_json(dir / "reference.json");
    return l;
}

void check_top5(const fs::path& dir) {
    PLANEQ_REQUIRE_PATH(dir);
    Loaded l = load(dir);
    const auto ids = l.ref["logits_prefix_ids"].get<std::vector<int32_t>>();
    KVCache cache(l.model->config, int64_t(ids.size()));
    ForwardBuffers buf(l.model->config, int64_t(ids.size()));
    const auto logits = forward(*l.model, cache, buf, ids, Logits::All);
    const int64_t vocab = l.model->config.vocab;
    for (size_t p = 0; p < ids.size(); ++p) {
        const float* row = logits.data() + p * size_t(vocab);
        std::vector<int32_t> order(static_cast<size_t>(vocab));
        for (int32_t i = 0; i < vocab; ++i) order[size_t(i)] = i;
        std::partial_sort(order.begin(), order.begin() + 5, order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
        const auto want_ids = l.ref["logits_top5_ids"][p].get<std::vector<int32_t>>();
        const auto want_vals = l.ref["logits_top5_values"][p].get<std::vector<double>>();
        for (int k = 0; k < 5; ++k) {
            // Ids must match unless two logits are within 1e-4 (then the order is a coin toss).
            if (order[size_t(k)] != want_ids[size_t(k)])
                EXPECT_NEAR(row[order[size_t(k)]], row[want_ids[size_t(k)]], 1e-4) << "position " << p << " rank " << k;
            EXPECT_NEAR(row[want_ids[size_t(k)]], want_vals[size_t(k)], 1e-3 * std::max(1.0, std::abs(want_vals[size_t(k)])))
                << "position " << p << " rank " << k;
        }
        double mx = row[0], s = 0;
        for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, double(row[i]));
        for (int64_t i = 0; i < vocab; ++i) s += std::exp(double(row[i]) - mx);
        EXPECT_NEAR(mx + std::log(s), l.ref["logits_logsumexp"][p].get<double>(), 1e-3) << "position " << p;
    }
}

// Compares the first `windows` windows (0 = all) of reference protocols that share one set of windows
// (same ctx): one forward pass per window scores them all (full-window and second-half differ only in
// which positions count).
void check_ppl(const fs::path& dir, const std::string& file_key, const fs::path& text,
               const std::vector<std::string>& proto_keys, int64_t windows) {
    PLANEQ_REQUIRE_PATH(dir);
    PLANEQ_REQUIRE_PATH(text);
    Loaded l = load(dir);
    const auto ids = l.tok->encode(read_text_file(text), false);
    PplOptions opt;
    opt.ctx = l.ref[file_key][proto_keys[0]]["ctx"].get<int64_t>();
    opt.protocol = PplProtocol::Full;
    opt.bos_id = l.tok->adds_bos() ? l.tok->bos_id() : -1;
    opt.window_bos_replace = opt.bos_id >= 0;
    opt.max_windows = windows;
    const PplResult r = perplexity(*l.model, ids, opt);
    const int64_t per_window = opt.ctx - 1;
    ASSERT_EQ(int64_t(r.token_nll.size()), r.windows * per_window);

    for (const std::string& key : proto_keys) {
        const auto& ref = l.ref[file_key][key];
        ASSERT_EQ(ref["ctx"].get<int64_t>(), opt.ctx);
        const int64_t first = ref["scored_from"].get<int64_t>();
        const auto want = ref["chunk_nll_sums"].get<std::vector<double>>();
        ASSERT_EQ(int64_t(want.size()), ref["chunks"].get<int64_t>());
        ASSERT_EQ(ref["scored_per_chunk"].get<int64_t>(), per_window - first);
        if (windows == 0) ASSERT_EQ(r.windows, int64_t(want.size()));
        double max_rel = 0, total = 0;
        for (int64_t w = 0; w < r.windows; ++w) {
            double sum = 0;
            for (int64_t p = first; p < per_window; ++p) sum += r.token_nll[size_t(w * per_window + p)];
            total += sum;
            const double rel = std::abs(sum - want[size_t(w)]) / std::abs(want[size_t(w)]);
            max_rel = std::max(max_rel, rel);
            EXPECT_LE(rel, 1e-4) << key << " window " << w << ": " << sum << " vs " << want[size_t(w)];
        }
        const double ppl = std::exp(total / double(r.windows * (per_window - first)));
        if (windows == 0) EXPECT_LE(std::abs(ppl - ref["ppl"].get<double>()) / ref["ppl"].get<double>(), 1e-4);
        std::printf("[%s %s %s] %lld windows, ppl %.5f (reference over all windows %.5f), max window rel err %.2e\n",
                    dir.filename().c_str(), file_key.c_str(), key.c_str(), (long long)r.windows, ppl,
                    ref["ppl"].get<double>(), max_rel);
    }
}

const fs::path kWiki = shared_dir() / "data" / "wikitext2" / "wiki.test.raw";
const fs::path kValid = shared_dir() / "data" / "corpus" / "valid-00.txt";

TEST(ReferenceTinyLlama, Top5LogitsOfPrefix) { check_top5(bundled_model()); }
TEST(ReferenceTinyLlama, WikiCtx512AllWindowsBothProtocols) {
    check_ppl(bundled_model(), "wikitext2_test_ppl", kWiki, {"full_window_ctx512", "second_half_ctx512"}, 0);
}
TEST(ReferenceTinyLlama, WikiCtx2048) { check_ppl(bundled_model(), "wikitext2_test_ppl", kWiki, {"full_window_ctx2048"}, 24); }
TEST(ReferenceTinyLlama, GutenbergCtx512) { check_ppl(bundled_model(), "gutenberg_valid_ppl", kValid, {"full_window_ctx512"}, 96); }
TEST(ReferenceTinyLlama, GutenbergCtx2048) { check_ppl(bundled_model(), "gutenberg_valid_ppl", kValid, {"full_window_ctx2048"}, 16); }

TEST(ReferenceSmallQwen3, Top5LogitsOfPrefix) { check_top5(shared_model("small-qwen3")); }
TEST(ReferenceSmallQwen3, WikiCtx512BothProtocols) {
    check_ppl(shared_model("small-qwen3"), "wikitext2_test_ppl", kWiki, {"full_window_ctx512", "second_half_ctx512"}, 24);
}
TEST(ReferenceSmallQwen3, WikiCtx2048) { check_ppl(shared_model("small-qwen3"), "wikitext2_test_ppl", kWiki, {"full_window_ctx2048"}, 6); }
TEST(ReferenceSmallQwen3, GutenbergCtx512) { check_ppl(shared_model("small-qwen3"), "gutenberg_valid_ppl", kValid, {"full_window_ctx512"}, 24); }
TEST(ReferenceSmallQwen3, GutenbergCtx2048) { check_ppl(shared_model("small-qwen3"), "gutenberg_valid_ppl", kValid, {"full_window_ctx2048"}, 6); }

}  // namespace
}  // namespace planeq::test
