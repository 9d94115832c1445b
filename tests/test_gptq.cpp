// GPTQ and RTN against the assertable properties of GPTQ.md §7.
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.hpp"
#include "core/half.hpp"
#include "quant/gptq.hpp"
#include "test_util.hpp"

namespace planeq::test {
namespace {

struct Layer {
    int64_t R, C;
    std::vector<float> W;
    std::vector<double> H;  // 2/N XᵀX of correlated inputs
};

// Correlated inputs X = A·Z (A random mixing), as GPTQ.md test 6 prescribes.
Layer random_layer(int64_t R, int64_t C, uint32_t seed, int64_t N = 256) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> nd;
    Layer l{R, C, std::vector<float>(size_t(R * C)), std::vector<double>(size_t(C * C), 0.0)};
    for (float& w : l.W) w = float(nd(rng) * 0.05);
    std::vector<double> A(size_t(C * C)), X(size_t(N * C));
    for (double& a : A) a = nd(rng) / std::sqrt(double(C));
    for (int64_t i = 0; i < C; ++i) A[size_t(i * C + i)] += 1.0;
    std::vector<double> z(static_cast<size_t>(C));
    for (int64_t n = 0; n < N; ++n) {
        for (double& v : z) v = nd(rng);
        for (int64_t i = 0; i < C; ++i) {
            double acc = 0;
            for (int64_t k = 0; k < C; ++k) acc += A[size_t(i * C + k)] * z[size_t(k)];
            X[size_t(n * C + i)] = acc * (1.0 + 3.0 * double(i % 7 == 0));  // a few strong channels
        }
    }
    for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < C; ++i)
            for (int64_t j = 0; j < C; ++j) l.H[size_t(i * C + j)] += 2.0 / double(N) * X[size_t(n * C + i)] * X[size_t(n * C + j)];
    return l;
}

double proxy_loss(const Layer& l, const std::vector<float>& Q) {  // tr(ΔW H ΔWᵀ)
    double total = 0;
    std::vector<double> d(static_cast<size_t>(l.C));
    for (int64_t r = 0; r < l.R; ++r) {
        for (int64_t c = 0; c < l.C; ++c) d[size_t(c)] = double(l.W[size_t(r * l.C + c)]) - Q[size_t(r * l.C + c)];
        for (int64_t i = 0; i < l.C; ++i) {
            double acc = 0;
            for (int64_t j = 0; j < l.C; ++j) acc += l.H[size_t(i * l.C + j)] * d[size_t(j)];
            total += d[size_t(i)] * acc;
        }
    }
    return total;
}

TEST(Gptq, IdentityHessianEqualsRtn) {
    Layer l = random_layer(24, 256, 1, 8);
    std::fill(l.H.begin(), l.H.end(), 0.0);
    for (int64_t i = 0; i < l.C; ++i) l.H[size_t(i * l.C + i)] = 1.0;
    for (int bits : {2, 3, 4}) {
        GptqOptions o;
        o.bits = bits;
        o.group = 64;
        const auto g = gptq_quantize(l.W.data(), l.R, l.C, l.H.data(), o);
        o.compensate = false;
        o.order = ColumnOrder::None;
        const auto rtn = gptq_quantize(l.W.data(), l.R, l.C, nullptr, o);
        EXPECT_EQ(g.codes, rtn.codes) << bits;
        EXPECT_EQ(g.scales, rtn.scales);
        EXPECT_EQ(g.zeros, rtn.zeros);
    }
}

TEST(Gptq, DequantEqualsStoredParametersExactly) {
    Layer l = random_layer(16, 128, 2);
    for (bool sym : {false, true}) {
        GptqOptions o;
        o.bits = 3;
        o.group = 32;
        o.sym = sym;
        const auto r = gptq_quantize(l.W.data(), l.R, l.C, l.H.data(), o);
        const int64_t G = l.C / o.group;
        for (int64_t i = 0; i < l.R; ++i)
            for (int64_t c = 0; c < l.C; ++c) {
                const float s = f16_to_f32(r.scales[size_t(i * G + c / o.group)]);
                const int z = r.zeros[size_t(i * G + c / o.group)];
                if (sym) ASSERT_EQ(z, 4);
                ASSERT_EQ(r.dequant[size_t(i * l.C + c)], s * float(int(r.codes[size_t(i * l.C + c)]) - z));
            }
    }
}

TEST(Gptq, BlockIdentityHolds) {
    Layer l = random_layer(32, 256, 3);
    GptqOptions o;
    o.bits = 2;
    o.group = 32;
    o.block = 128;
    double wmax = 0;
    for (float w : l.W) wmax = std::max(wmax, double(std::abs(w)));
    int blocks = 0;
    o.trace = [&](int64_t i1, int64_t i2, const float* w0, const float* q, const float* e, const float* U) {
        ++blocks;
        const int64_t n = i2 - i1, R = l.R, C = l.C;
        for (int64_t a = 0; a < n; ++a)      // position within block (a column of W_blk)
            for (int64_t r = 0; r < R; ++r) {
                double eu = 0;  // (Err_blk · U_BB)[r][a] = Σ_b e[b][r] · U[i1 + b][i1 + a]
                for (int64_t b = 0; b <= a; ++b) eu += double(e[b * R + r]) * U[(i1 + b) * C + i1 + a];
                const double lhs = double(w0[a * R + r]) - q[a * R + r];
                ASSERT_NEAR(lhs, eu, 1e-5 * wmax) << "block " << i1 << " pos " << a << " row " << r;
            }
    };
    gptq_quantize(l.W.data(), l.R, l.C, l.H.data(), o);
    EXPECT_EQ(blocks, 2);
}

TEST(Gptq, BlockSizeInvariance) {
    Layer l = random_layer(16, 256, 4);
    GptqOptions o;
    o.bits = 3;
    o.group = 64;
    std::vector<IntQuantResult> rs;
    for (int B : {64, 128, 256}) {
        o.block = B;
        rs.push_back(gptq_quantize(l.W.data(), l.R, l.C, l.H.data(), o));
    }
    for (size_t i = 1; i < rs.size(); ++i) {
        size_t differ = 0;
        for (size_t k = 0; k < rs[0].codes.size(); ++k) differ += rs[0].codes[k] != rs[i].codes[k];
        EXPECT_LE(differ, rs[0].codes.size() / 1000) << "codes differ beyond rounding ties";
        EXPECT_NEAR(rs[i].loss, rs[0].loss, 1e-5 * rs[0].loss);
    }
}

TEST(Gptq, RowPermutationEquivariance) {
    Layer l = random_layer(20, 128, 5);
    GptqOptions o;
    o.bits = 4;
    o.group = 32;
    const auto a = gptq_quantize(l.W.data(), l.R, l.C, l.H.data(), o);
    std::vector<int64_t> rows(static_cast<size_t>(l.R));
    std::iota(rows.begin(), rows.end(), 0);
    std::mt19937 rng(9);
    std::shuffle(rows.begin(), rows.end(), rng);
    std::vector<float> Wp(l.W.size());
    for (int64_t r = 0; r < l.R; ++r)
        std::copy_n(l.W.begin() + rows[size_t(r)] * l.C, l.C, Wp.begin() + r * l.C);
    const auto b = gptq_quantize(Wp.data(), l.R, l.C, l.H.data(), o);
    const int64_t G = l.C / o.group;
    for (int64_t r = 0; r < l.R; ++r) {
        for (int64_t c = 0; c < l.C; ++c)
            ASSERT_EQ(b.codes[size_t(r * l.C + c)], a.codes[size_t(rows[size_t(r)] * l.C + c)]);
        for (int64_t j = 0; j < G; ++j) {
            ASSERT_EQ(b.scales[size_t(r * G + j)], a.scales[size_t(rows[size_t(r)] * G + j)]);
            ASSERT_EQ(b.zeros[size_t(r * G + j)], a.zeros[size_t(rows[size_t(r)] * G + j)]);
        }
    }
}

TEST(Gptq, GarKeepsGroupsWhole) {
    std::mt19937 rng(6);
    std::uniform_real_distribution<double> u(0.1, 10);
    std::vector<double> diag(512);
    for (double& d : diag) d = u(rng);
    const auto perm = column_permutation(diag, 128, ColumnOrder::Gar);
    for (int64_t j = 0; j < 4; ++j) {
        std::vector<int64_t> members(perm.begin() + j * 128, perm.begin() + (j + 1) * 128);
        const int64_t grp = members[0] / 128;
        for (int64_t m : members) ASSERT_EQ(m / 128, grp) << "a GAR block mixes groups";
        for (size_t k = 1; k < members.size(); ++k) ASSERT_GE(diag[size_t(members[k - 1])], diag[size_t(members[k])]);
    }
    std::vector<int64_t> sorted = perm;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 512; ++i) ASSERT_EQ(sorted[size_t(i)], i);  // a permutation
}

TEST(Gptq, ProxyLossBeatsRtnOnCorrelatedInputs) {
    int wins = 0;
    const int trials = 100;
    for (int t = 0; t < trials; ++t) {
        Layer l = random_layer(8, 64, 100 + uint32_t(t), 96);
        GptqOptions o;
        o.bits = 3;
        o.group = 32;
        const auto g = gptq_quantize(l.W.data(), l.R, l.C, l.H.data(), o);
        o.compensate = false;
        o.order = ColumnOrder::None;
        const auto rtn = gptq_quantize(l.W.data(), l.R, l.C, nullptr, o);
        wins += proxy_loss(l, g.dequant) <= proxy_loss(l, rtn.dequant);
    }
    EXPECT_GE(wins, 95) << "GPTQ should beat RTN in the H-metric on almost every random layer";
}

TEST(Gptq, DeadColumnQuantizesToZero) {
    Layer l = random_layer(8, 64, 7);
    for (int64_t i = 0; i < l.C; ++i) {
        l.H[size_t(5 * l.C + i)] = 0;
        l.H[size_t(i * l.C + 5)] = 0;
    }
    GptqOptions o;
    o.bits = 2;
    o.group = 32;
    const auto r = gptq_quantize(l.W.data(), l.R, l.C, l.H.data(), o);
    for (int64_t row = 0; row < l.R; ++row) EXPECT_EQ(r.dequant[size_t(row * l.C + 5)], 0.0f);
}

TEST(Gptq, DynamicOrderStoresGroupIndex) {
    Layer l = random_layer(8, 128, 8);
    GptqOptions o;
    o.bits = 4;
    o.group = 32;
    o.order = ColumnOrder::Dynamic;
    const auto r = gptq_quantize(l.W.data(), l.R, l.C, l.H.data(), o);
    ASSERT_EQ(r.g_idx.size(), 128u);
    std::vector<int> count(4, 0);
    for (int32_t gi : r.g_idx) count[size_t(gi)]++;
    for (int c : count) EXPECT_EQ(c, 32);
    const int64_t G = 4;
    for (int64_t row = 0; row < l.R; ++row)
        for (int64_t c = 0; c < l.C; ++c) {
            const int64_t j = r.g_idx[size_t(c)];
            ASSERT_EQ(r.dequant[size_t(row * l.C + c)],
                      f16_to_f32(r.scales[size_t(row * G + j)]) * float(int(r.codes[size_t(row * l.C + c)]) - int(r.zeros[size_t(row * G + j)])));
        }
}

TEST(Gptq, DeterministicAndNotWorseWithActOrder) {
    Layer l = random_layer(16, 128, 10);
    GptqOptions o;
    o.bits = 2;
    o.group = 32;
    const auto a = gptq_quantize(l.W.data(), l.R, l.C, l.H.data(), o);
    const auto b = gptq_quantize(l.W.data(), l.R, l.C, l.H.data(), o);
    EXPECT_EQ(a.codes, b.codes);
    EXPECT_EQ(a.scales, b.scales);
    EXPECT_EQ(a.dequant, b.dequant);
}

TEST(Gptq, BadParametersRejected) {
    Layer l = random_layer(4, 96, 11, 8);
    GptqOptions o;
    o.group = 64;
    EXPECT_THROW(gptq_quantize(l.W.data(), l.R, l.C, l.H.data(), o), Error);
    o.group = 32;
    o.bits = 9;
    EXPECT_THROW(gptq_quantize(l.W.data(), l.R, l.C, l.H.data(), o), Error);
}

}  // namespace
}  // namespace planeq::test
