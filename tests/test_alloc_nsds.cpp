// NSDS against the assertable properties of NSDS.md §7, on small f32 models whose weights the tests set.
#include <omp.h>

#include <cmath>
#include <numeric>
#include <random>

#include <Eigen/Dense>

#include "alloc/nsds.hpp"
#include "alloc/spectral.hpp"
#include "alloc/stats.hpp"
#include "core/error.hpp"
#include "test_alloc_util.hpp"
#include "test_util.hpp"

extern "C" void openblas_set_num_threads(int);

namespace planeq::test {
namespace {

using namespace planeq::alloc;

void expect_same_scores(const NsdsResult& a, const NsdsResult& b, double rel = 1e-6) {
    ASSERT_EQ(a.layers.size(), b.layers.size());
    auto close = [&](double x, double y) { return std::abs(x - y) <= rel * std::max({1.0, std::abs(x), std::abs(y)}); };
    for (size_t l = 0; l < a.layers.size(); ++l) {
        EXPECT_TRUE(close(a.layers[l].nv, b.layers[l].nv)) << "layer " << l << " NV " << a.layers[l].nv << " vs " << b.layers[l].nv;
        EXPECT_TRUE(close(a.layers[l].se, b.layers[l].se)) << "layer " << l << " SE " << a.layers[l].se << " vs " << b.layers[l].se;
        EXPECT_TRUE(close(a.layers[l].nsds, b.layers[l].nsds)) << "layer " << l;
        for (int c = 0; c < kComponents; ++c) {
            EXPECT_TRUE(close(a.layers[l].raw_nv[c], b.layers[l].raw_nv[c])) << "layer " << l << " " << component_name(c);
            EXPECT_TRUE(close(a.layers[l].raw_se[c], b.layers[l].raw_se[c])) << "layer " << l << " " << component_name(c);
        }
    }
}

// Moves row block `from` of a [blocks·bs × cols] matrix to position `to` for every pair of perm (to ← from).
std::vector<float> permute_row_blocks(const std::vector<float>& w, int64_t cols, int64_t bs, const std::vector<int>& perm) {
    std::vector<float> out(w.size());
    for (size_t to = 0; to < perm.size(); ++to)
        std::copy_n(w.begin() + perm[to] * bs * cols, bs * cols, out.begin() + int64_t(to) * bs * cols);
    return out;
}
std::vector<float> permute_col_blocks(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t bs, const std::vector<int>& perm) {
    std::vector<float> out(w.size());
    for (int64_t r = 0; r < rows; ++r)
        for (size_t to = 0; to < perm.size(); ++to)
            std::copy_n(w.begin() + r * cols + perm[to] * bs, bs, out.begin() + r * cols + int64_t(to) * bs);
    return out;
}

// §7.1: heads permuted within a KV group, and KV groups permuted with their query heads, consistently
// across q (row blocks), k and v (row blocks) and o (column blocks).
TEST(AllocNsds, HeadPermutationInvariantAcrossQKVO) {
    const ModelConfig c = small_config(5);
    const Weights w = random_weights(c, 3);
    const NsdsResult base = nsds_scores(*model_from(c, w));
    const int64_t hd = c.head_dim;
    // 4 query heads, 2 KV groups of 2: swap heads inside group 0 and, separately, swap the two groups.
    const std::vector<std::pair<std::vector<int>, std::vector<int>>> cases = {
        {{1, 0, 2, 3}, {0, 1}},  // query heads 0 ↔ 1 (same group), KV untouched
        {{2, 3, 0, 1}, {1, 0}},  // groups swapped: query heads follow their KV head
        {{3, 2, 0, 1}, {1, 0}},  // both at once
    };
    for (const auto& [qperm, kvperm] : cases) {
        Weights p = w;
        for (int64_t l = 0; l < c.n_layers; ++l) {
            const std::string s = std::to_string(l) + ".";
            p[s + "q"] = permute_row_blocks(w.at(s + "q"), c.hidden, hd, qperm);
            p[s + "o"] = permute_col_blocks(w.at(s + "o"), c.hidden, c.q_dim(), hd, qperm);
            p[s + "k"] = permute_row_blocks(w.at(s + "k"), c.hidden, hd, kvperm);
            p[s + "v"] = permute_row_blocks(w.at(s + "v"), c.hidden, hd, kvperm);
        }
        expect_same_scores(base, nsds_scores(*model_from(c, p)));
    }
    // A permutation that breaks the GQA pairing (a query head moved to the other group alone) must change
    // the scores: the invariance above is not vacuous.
    Weights bad = w;
    for (int64_t l = 0; l < c.n_layers; ++l) {
        const std::string s = std::to_string(l) + ".";
        bad[s + "k"] = permute_row_blocks(w.at(s + "k"), c.hidden, hd, {1, 0});
    }
    const NsdsResult other = nsds_scores(*model_from(c, bad));
    double diff = 0;
    for (size_t l = 0; l < base.layers.size(); ++l) diff += std::abs(base.layers[l].raw_se[kQK] - other.layers[l].raw_se[kQK]);
    EXPECT_GT(diff, 1e-6);
}

// §7.2: MLP neurons permuted consistently (rows of up and gate, columns of down).
TEST(AllocNsds, MlpNeuronPermutationInvariant) {
    const ModelConfig c = small_config(4);
    const Weights w = random_weights(c, 5);
    std::vector<int> perm(size_t(c.intermediate));
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937 g(1);
    std::shuffle(perm.begin(), perm.end(), g);
    Weights p = w;
    for (int64_t l = 0; l < c.n_layers; ++l) {
        const std::string s = std::to_string(l) + ".";
        p[s + "up"] = permute_row_blocks(w.at(s + "up"), c.hidden, 1, perm);
        p[s + "gate"] = permute_row_blocks(w.at(s + "gate"), c.hidden, 1, perm);
        p[s + "down"] = permute_col_blocks(w.at(s + "down"), c.hidden, c.intermediate, 1, perm);
    }
    expect_same_scores(nsds_scores(*model_from(c, w)), nsds_scores(*model_from(c, p)));
}

// §7.4: scaling one component type in every layer leaves NSDS unchanged; so does scaling W_U.
TEST(AllocNsds, ScaleInvariant) {
    const ModelConfig c = small_config(6);
    const Weights w = random_weights(c, 7);
    const NsdsResult base = nsds_scores(*model_from(c, w));
    for (const std::string kind : {"up", "down", "unembed", "v"}) {
        Weights p = w;
        for (auto& [name, v] : p)
            if (name == kind || name.ends_with("." + kind))
                for (float& x : v) x *= 2.5f;  // a power of two would be exact; 2.5 exercises rounding
        const NsdsResult s = nsds_scores(*model_from(c, p));
        for (size_t l = 0; l < base.layers.size(); ++l) EXPECT_NEAR(s.layers[l].nsds, base.layers[l].nsds, 1e-6) << kind << " layer " << l;
    }
}

// §7.5: the thin SVD of A Bᵀ equals the dense SVD of the d×d product; the entry kurtosis equals the
// two-pass kurtosis of the formed matrix.
TEST(AllocNsds, ThinSvdMatchesDense) {
    std::mt19937 g(3);
    std::normal_distribution<double> nd;
    for (int64_t d : {16, 48}) {
        const int64_t r = 6;
        MatrixD a(d, r), b(d, r);
        for (int64_t i = 0; i < d * r; ++i) a.data()[i] = nd(g) * (i % 7 == 0 ? 3 : 1), b.data()[i] = nd(g);
        const MatrixD M = a * b.transpose();
        Eigen::JacobiSVD<MatrixD> dense(M, Eigen::ComputeFullU | Eigen::ComputeFullV);
        const ThinSvd t = thin_svd_of_product(a, b);
        ASSERT_EQ(int64_t(t.s.size()), r);
        for (int64_t i = 0; i < r; ++i) {
            EXPECT_NEAR(t.s[size_t(i)], dense.singularValues()(i), 1e-9 * dense.singularValues()(0));
            // Vectors up to sign: |⟨u_thin, u_dense⟩| = 1, and the α's built from them agree.
            EXPECT_NEAR(std::abs(t.u.col(i).dot(dense.matrixU().col(i))), 1.0, 1e-7);
            EXPECT_NEAR(std::abs(t.v.col(i).dot(dense.matrixV().col(i))), 1.0, 1e-7);
            EXPECT_NEAR(qk_alpha(t.u.col(i), t.v.col(i)), qk_alpha(dense.matrixU().col(i), dense.matrixV().col(i)), 1e-5);
        }
        EXPECT_NEAR(t.s[0] * t.s[0] + 0, (M.transpose() * M).eigenvalues().real().maxCoeff(), 1e-6 * t.s[0] * t.s[0]);
        const std::vector<double> all(M.data(), M.data() + M.size());
        EXPECT_NEAR(product_kurtosis(a, b), excess_kurtosis(std::span<const double>(all)), 1e-10);
    }
}

// Gram-based one-sided spectra equal the dense SVD's.
TEST(AllocNsds, GramSpectrumMatchesDenseSvd) {
    const auto w = random_matrix(40, 24, 11);
    Eigen::Map<const Eigen::Matrix<float, -1, -1, Eigen::RowMajor>> wm(w.data(), 40, 24);
    const MatrixD W = wm.cast<double>();
    Eigen::JacobiSVD<MatrixD> dense(W, Eigen::ComputeThinU | Eigen::ComputeThinV);
    const Spectrum r = right_singular(w.data(), 40, 24), l = left_singular(w.data(), 40, 24);
    for (int i = 0; i < 24; ++i) {
        const double s = dense.singularValues()(i);
        EXPECT_NEAR(std::sqrt(r.s2[size_t(i)]), s, 1e-9 * dense.singularValues()(0));
        EXPECT_NEAR(std::sqrt(l.s2[size_t(i)]), s, 1e-9 * dense.singularValues()(0));
        if (i < 20) {  // well-separated singular values: vectors agree up to sign
            EXPECT_NEAR(std::abs(r.vectors.col(i).dot(dense.matrixV().col(i))), 1.0, 1e-6);
            EXPECT_NEAR(std::abs(l.vectors.col(i).dot(dense.matrixU().col(i))), 1.0, 1e-6);
        }
    }
    for (int i = 24; i < 40; ++i) EXPECT_NEAR(l.s2[size_t(i)], 0.0, 1e-9);
}

// §7.6: kurtosis of large normal and Laplace samples.
TEST(AllocNsds, KurtosisOfKnownDistributions) {
    std::mt19937_64 g(42);
    std::normal_distribution<double> nd;
    std::exponential_distribution<double> ed(1.0);
    std::vector<double> normal(1000000), laplace(1000000);
    for (auto& v : normal) v = nd(g);
    for (auto& v : laplace) v = ed(g) * (g() & 1 ? 1 : -1);
    EXPECT_LT(std::abs(excess_kurtosis(std::span<const double>(normal))), 0.02);
    EXPECT_NEAR(excess_kurtosis(std::span<const double>(laplace)), 3.0, 0.1);
    // Small exact case: {0, 0, 0, 4}: mean 1, m2 = 3, m4 = (3·1 + 81)/4 = 21 → 21/9 − 3.
    const std::vector<double> x = {0, 0, 0, 4};
    EXPECT_DOUBLE_EQ(excess_kurtosis(std::span<const double>(x)), 21.0 / 9.0 - 3.0);
    const std::vector<float> xf = {0, 0, 0, 4};
    EXPECT_DOUBLE_EQ(excess_kurtosis(std::span<const float>(xf)), 21.0 / 9.0 - 3.0);
}

// §7.7: energy rank.
TEST(AllocNsds, EnergyRank) {
    std::vector<double> one(10, 0.0);
    one[0] = 1;
    EXPECT_EQ(energy_rank_sq(one), 2);
    for (int n : {1, 2, 7, 100, 1000}) {
        const std::vector<double> eq(size_t(n), 1.0);
        EXPECT_EQ(energy_rank_sq(eq), std::min<int64_t>(n, std::max<int64_t>(2, int64_t(std::ceil(0.99 * n))))) << n;
    }
}

// §7.8 and §6: MAD-sigmoid of a constant vector is 0.5 everywhere (no NaN, no ±∞); MAD = 0 with a spread
// falls back to the standard deviation; identical layers give NSDS = 0.5 for every layer.
TEST(AllocNsds, MadSigmoidConstantFallsBack) {
    for (size_t n : {1u, 2u, 5u, 12u}) {
        const std::vector<double> x(n, 3.7);
        for (double s : mad_sigmoid(x)) EXPECT_EQ(s, 0.5);
    }
    const std::vector<double> spiky = {1, 1, 1, 1, 5};  // median 1, MAD 0, but one layer stands out
    const auto s = mad_sigmoid(spiky);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(s[size_t(i)], 0.5);
    EXPECT_GT(s[4], 0.8);
    EXPECT_LT(s[4], 1.0);
    for (double v : mad_sigmoid(std::vector<double>{1, 2, 3, 4, 10})) EXPECT_TRUE(v > 0 && v < 1);
    // An extreme outlier saturates the sigmoid to 1 in double; the 1e-12 inside Soft-OR's log keeps it finite.
    const auto sat = mad_sigmoid(std::vector<double>{1, 2, 3, 4, 100});
    EXPECT_EQ(sat[4], 1.0);
    EXPECT_TRUE(std::isfinite(soft_or(std::vector<double>{sat[4], 0.5})));
    EXPECT_LT(soft_or(std::vector<double>{sat[4], 0.5}), 1.0);

    const ModelConfig c = small_config(4);
    Weights w = random_weights(c, 9);
    for (int64_t l = 1; l < c.n_layers; ++l)
        for (const char* k : {"q", "k", "v", "o", "gate", "up", "down"}) w[std::to_string(l) + "." + k] = w.at(std::string("0.") + k);
    const NsdsResult r = nsds_scores(*model_from(c, w));
    for (const NsdsLayer& l : r.layers) {
        EXPECT_NEAR(l.nsds, 0.5, 1e-9);
        EXPECT_FALSE(std::isnan(l.nv) || std::isnan(l.se));
    }
}

// §7.8: ranges on a random model.
TEST(AllocNsds, ScoresInUnitIntervalAndRankingDescending) {
    const ModelConfig c = small_config(6);
    const NsdsResult r = nsds_scores(*model_from(c, random_weights(c, 13)));
    for (const NsdsLayer& l : r.layers) {
        EXPECT_GT(l.nsds, 0);
        EXPECT_LT(l.nsds, 1);
        EXPECT_GT(l.nv, 0);
        EXPECT_LT(l.nv, 1);
        for (int k = 0; k < kComponents; ++k) EXPECT_TRUE(l.s_nv[k] > 0 && l.s_nv[k] < 1 && l.s_se[k] > 0 && l.s_se[k] < 1);
    }
    for (size_t i = 1; i < r.ranking.size(); ++i)
        EXPECT_GE(r.layers[size_t(r.ranking[i - 1])].nsds, r.layers[size_t(r.ranking[i])].nsds);
    EXPECT_GE(r.k_unembed, 2);
}

// §7.10: a model without gate_proj is scored over 4 component types (gate is not a 0 score).
TEST(AllocNsds, MissingComponentIsSkipped) {
    const ModelConfig c = small_config(4);
    const Weights w = random_weights(c, 21);
    const NsdsResult r = nsds_scores(*model_from(c, w, /*no_gate=*/true));
    EXPECT_FALSE(r.present[kGate]);
    EXPECT_TRUE(r.present[kUp]);
    // Soft-OR over the 4 present types, recomputed by hand.
    for (const NsdsLayer& l : r.layers) {
        const std::vector<double> s = {l.s_nv[kQK], l.s_nv[kOV], l.s_nv[kUp], l.s_nv[kDown]};
        EXPECT_DOUBLE_EQ(l.nv, soft_or(s));
    }
}

// §7.11: bit-identical across runs and thread counts.
TEST(AllocNsds, DeterministicAcrossThreadCounts) {
    const ModelConfig c = small_config(4, /*qwen=*/true);
    const auto m = model_from(c, random_weights(c, 17));
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const NsdsResult a = nsds_scores(*m);
    omp_set_num_threads(std::max(2, saved));
    const NsdsResult b = nsds_scores(*m);
    omp_set_num_threads(saved);
    for (size_t l = 0; l < a.layers.size(); ++l) {
        EXPECT_EQ(a.layers[l].nsds, b.layers[l].nsds);
        EXPECT_EQ(a.layers[l].nv, b.layers[l].nv);
        EXPECT_EQ(a.layers[l].se, b.layers[l].se);
    }
}

// Soft-OR per layer (the authors' helper averaged over all layers at once: every layer would get the same
// value). Here layers with different component scores get different values.
TEST(AllocNsds, SoftOrIsPerLayer) {
    EXPECT_NEAR(soft_or(std::vector<double>{0.5, 0.5}), 0.5, 1e-12);
    EXPECT_NEAR(soft_or(std::vector<double>{0.9, 0.1}), 1.0 - std::sqrt(0.1 * 0.9), 1e-11);
    const ModelConfig c = small_config(5);
    const NsdsResult r = nsds_scores(*model_from(c, random_weights(c, 23)));
    double lo = 1, hi = 0;
    for (const NsdsLayer& l : r.layers) lo = std::min(lo, l.nv), hi = std::max(hi, l.nv);
    EXPECT_GT(hi - lo, 1e-3);
}

// Writers' α is ‖P_Uᵀ u‖ per singular vector (the spec's fix for down_proj): a vector inside the subspace
// has α = 1, one orthogonal to it α = 0.
TEST(AllocNsds, WriterAlphaIsPerVectorProjectionNorm) {
    MatrixD p = MatrixD::Zero(6, 2);
    p(0, 0) = 1;
    p(1, 1) = 1;
    Eigen::VectorXd u = Eigen::VectorXd::Zero(6);
    u(0) = 0.6, u(1) = 0.8;
    EXPECT_NEAR(writer_alpha(p, u), 1.0, 1e-15);
    u.setZero();
    u(4) = 1;
    EXPECT_EQ(writer_alpha(p, u), 0.0);
    EXPECT_EQ(structural_score({1, 2}, {0, 0}), 0.0);  // Σσ̃ = 0 → SE = 0
    // SE = Σσ̃ / e^H: two equal weights → 2/2.
    EXPECT_NEAR(structural_score({1, 1}, {1, 1}), 1.0, 1e-15);
}

}  // namespace
}  // namespace planeq::test
