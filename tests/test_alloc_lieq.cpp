// LieQ diagnostics against the assertable properties of LIEQ.md §7 (small synthetic models).
#include <cmath>
#include <random>

#include "alloc/lieq.hpp"
#include "alloc/measured.hpp"
#include "alloc/stats.hpp"
#include "test_alloc_util.hpp"
#include "test_util.hpp"

namespace planeq::test {
namespace {

using namespace planeq::alloc;

// §7.1: RC = 1/n for A = I_n/n, RC = 1 for a rank-1 spectrum, RC ∈ [1/rank, 1].
TEST(AllocLieq, CompactnessOfKnownSpectra) {
    for (int n : {1, 4, 37}) EXPECT_NEAR(compactness(std::vector<double>(size_t(n), 1.0 / n)), 1.0 / n, 1e-14);
    EXPECT_DOUBLE_EQ(compactness(std::vector<double>{3.0, 0, 0, 0}), 1.0);
    const std::vector<double> ev = {5, 3, 1, 0.5, 0};
    const double rc = compactness(ev);
    EXPECT_GE(rc, 1.0 / 4);
    EXPECT_LE(rc, 1.0);
    EXPECT_DOUBLE_EQ(compactness(std::vector<double>{1, -1e-17, 0}), 1.0);  // round-off negatives clamp to 0
}

// §7.3: E_k ∈ [0, 1], non-decreasing in k, E_n = 1.
TEST(AllocLieq, TopKEnergy) {
    const std::vector<double> ev = {4, 3, 2, 1};
    double prev = 0;
    for (int k = 0; k <= 6; ++k) {
        const double e = topk_energy(ev, k);
        EXPECT_GE(e, prev);
        EXPECT_LE(e, 1.0);
        prev = e;
    }
    EXPECT_DOUBLE_EQ(topk_energy(ev, 4), 1.0);
    EXPECT_DOUBLE_EQ(topk_energy(ev, 1), 0.4);
}

// A rank-1 Z after centring gives RC = 1; constant rows are skipped and counted.
TEST(AllocLieq, AccumulatorRankOneAndSkippedRows) {
    CompactnessAccumulator acc(5);
    const float z[] = {1, 2, 3, 4, 5, 2, 4, 6, 8, 10, 7, 7, 7, 7, 7};  // rows 0, 1 parallel after centring; row 2 constant
    acc.add(z, 3);
    EXPECT_EQ(acc.rows, 2);
    EXPECT_EQ(acc.skipped, 1);
    EXPECT_NEAR(compactness(acc.eigenvalues()), 1.0, 1e-12);
}

// §7.2: RC is unchanged by permuting output features, scaling Z, scaling single tokens and permuting tokens.
TEST(AllocLieq, CompactnessInvariances) {
    std::mt19937 g(4);
    std::normal_distribution<float> nd;
    const int64_t T = 40, D = 12;
    std::vector<float> z(size_t(T * D));
    for (auto& v : z) v = nd(g);
    auto rc_of = [&](const std::vector<float>& x) {
        CompactnessAccumulator a(D);
        a.add(x.data(), T);
        return compactness(a.eigenvalues());
    };
    const double base = rc_of(z);
    std::vector<int> perm(D);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), g);
    std::vector<float> p(z.size()), s(z.size()), t(z.size());
    for (int64_t r = 0; r < T; ++r)
        for (int64_t c = 0; c < D; ++c) {
            p[size_t(r * D + c)] = z[size_t(r * D + perm[size_t(c)])];
            s[size_t(r * D + c)] = z[size_t(r * D + c)] * float(1 + r % 5);  // per-token scale
            t[size_t(r * D + c)] = z[size_t(((r * 7) % T) * D + c)];         // token permutation (7 ⟂ 40)
        }
    EXPECT_NEAR(rc_of(p), base, 1e-9);
    EXPECT_NEAR(rc_of(s), base, 1e-6);  // float rescaling of the input: not exact in the last bits
    EXPECT_NEAR(rc_of(t), base, 1e-9);
}

// §7.5: fixed seeds → bit-identical random models.
TEST(AllocLieq, RandomInitIsDeterministic) {
    const ModelConfig c = small_config(2, true);
    const auto a = random_init_model(c, 0.02, 1), b = random_init_model(c, 0.02, 1), d = random_init_model(c, 0.02, 2);
    std::vector<float> wa(size_t(c.q_dim() * c.hidden)), wb(wa.size()), wd(wa.size());
    a->blocks[1].q.weight.dequantize(wa.data());
    b->blocks[1].q.weight.dequantize(wb.data());
    d->blocks[1].q.weight.dequantize(wd.data());
    EXPECT_EQ(wa, wb);
    EXPECT_NE(wa, wd);
    double s2 = 0;
    for (float v : wa) s2 += double(v) * v;
    EXPECT_NEAR(std::sqrt(s2 / double(wa.size())), 0.02, 0.002);
    EXPECT_EQ(a->blocks[0].attn_norm, std::vector<float>(size_t(c.hidden), 1.0f));
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
    PortableRng rng(seed);
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& v : ids) v = int32_t(rng.below(uint64_t(vocab)));
    return ids;
}

// §7.4: a block made an identity (o_proj and down_proj zeroed) has ΔPPL = 0 exactly; scores are finite and
// reproducible.
TEST(AllocLieq, IdentityBlockHasZeroPerplexityDrop) {
    const ModelConfig c = small_config(4, true);
    Weights w = random_weights(c, 31);
    std::fill(w["2.o"].begin(), w["2.o"].end(), 0.0f);
    std::fill(w["2.down"].begin(), w["2.down"].end(), 0.0f);
    const auto m = model_from(c, w);
    const auto ids = random_ids(4000, c.vocab, 3);
    LieqOptions o;
    o.v1 = true;
    o.segments = 3;
    o.seg_len = 32;
    o.ppl_segments = 4;
    const LieqResult r = lieq_scores(*m, ids, -1, o);
    ASSERT_EQ(r.layers.size(), 4u);
    EXPECT_EQ(r.layers[2].dppl, 0.0);
    EXPECT_GT(r.ppl_full, 1.0);
    for (const LieqLayer& l : r.layers) {
        EXPECT_TRUE(std::isfinite(l.score));
        EXPECT_TRUE(l.rc_trained > 0 && l.rc_trained <= 1);
        EXPECT_TRUE(l.score >= 0 && l.score <= 1);  // v1: mean of three min-max normalised metrics
    }
    const LieqResult again = lieq_scores(*m, ids, -1, o);
    for (size_t l = 0; l < 4; ++l) EXPECT_EQ(again.layers[l].score, r.layers[l].score);
    // v2 scores are RCdiff itself.
    o.v1 = false;
    const LieqResult v2 = lieq_scores(*m, ids, -1, o);
    for (size_t l = 0; l < 4; ++l) EXPECT_EQ(v2.layers[l].score, v2.layers[l].rc_diff);
}

// The measured oracle: a unit that quantization cannot change (all-zero weights) scores 0; a real one
// scores > 0; the model's weights come back unchanged.
TEST(AllocMeasured, KldOfUnitsAloneAndWeightsRestored) {
    const ModelConfig c = small_config(3, false);
    Weights w = random_weights(c, 41);
    std::fill(w["1.up"].begin(), w["1.up"].end(), 0.0f);
    auto m = model_from(c, w);
    std::vector<float> before(size_t(c.intermediate * c.hidden));
    m->blocks[0].gate.weight.dequantize(before.data());
    const auto ids = random_ids(3000, c.vocab, 5);
    MeasuredOptions o;
    o.setting.method = "rtn";
    o.setting.bits = 2;
    o.setting.group = 32;
    o.calib_len = 32;
    o.eval_segments = 3;
    const MeasuredResult r = measured_scores(*m, {{"model.layers.1.mlp.up_proj"}, {"model.layers.0.mlp.gate_proj"}}, ids, -1, o);
    ASSERT_EQ(r.kld.size(), 2u);
    EXPECT_NEAR(r.kld[0], 0.0, 1e-12);
    EXPECT_GT(r.kld[1], 0.0);
    std::vector<float> after(before.size());
    m->blocks[0].gate.weight.dequantize(after.data());
    EXPECT_EQ(before, after);
    EXPECT_EQ(m->blocks[0].gate.weight.format->name, "f32");
}

TEST(AllocStats, SpearmanAndRanking) {
    EXPECT_NEAR(spearman(std::vector<double>{1, 2, 3, 4}, std::vector<double>{10, 20, 30, 40}), 1.0, 1e-15);
    EXPECT_NEAR(spearman(std::vector<double>{1, 2, 3, 4}, std::vector<double>{4, 3, 2, 1}), -1.0, 1e-15);
    EXPECT_TRUE(std::isnan(spearman(std::vector<double>{1, 1, 1}, std::vector<double>{1, 2, 3})));
    // With ties (average ranks): x = (1, 2, 2, 3) vs y = (1, 2, 3, 4): Pearson of the ranks (1, 2.5, 2.5, 4) and (1, 2, 3, 4).
    EXPECT_NEAR(spearman(std::vector<double>{1, 2, 2, 3}, std::vector<double>{1, 2, 3, 4}), 4.5 / std::sqrt(4.5 * 5.0), 1e-12);
    EXPECT_EQ(rank_descending(std::vector<double>{0.2, 0.9, 0.2, 0.5}), (std::vector<int64_t>{1, 3, 0, 2}));
}

}  // namespace
}  // namespace planeq::test
