// The tritplane format (formats/tritplane.hpp): the pinned P5 byte code for all 3^5 patterns, the trit
// geometry, packing round trips for every group size and odd shapes (partial superblocks, tail bytes),
// byte-exact bit accounting, exact reference dequantization, the fast block dequantization, every SIMD
// GEMV level bit-identical to the scalar model of the integer math and within the derived int8
// activation-quantization bound of the f32 reference, every GEMV variant (the superblock row kernel and
// the 16-row blocks with each digit decoder) the same on 37-, 16- and 1-row shapes at every g, the packed
// GEMM, bind_weight and check().
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>

#include "core/cpu_features.hpp"
#include "core/error.hpp"
#include "core/half.hpp"
#include "formats/tritplane.hpp"
#include "kernels/cpu/int_group_kernels.hpp"
#include "kernels/cpu/tritplane_kernels.hpp"
#include "test_util.hpp"

namespace planeq::test {
namespace {

struct SimdGuard {  // restores the SIMD level a test changed
    SimdLevel saved = simd_level();
    ~SimdGuard() { set_simd_level(saved); }
};

TEST(TritplaneP5, AllPatternsRoundTrip) {
    std::set<int> seen;
    for (int n = 0; n < 243; ++n) {
        int8_t t[5], back[5];
        for (int k = 0, m = n; k < 5; ++k) {  // digit 0 most significant
            t[4 - k] = int8_t(m % 3 - 1);
            m /= 3;
        }
        const uint8_t v = p5_encode(t);
        ASSERT_EQ(int(v), (n * 256 + 242) / 243) << "v = ceil(256 n / 243)";
        seen.insert(v);
        p5_decode(v, back);
        for (int k = 0; k < 5; ++k) {
            ASSERT_EQ(back[k], t[k]) << "pattern " << n << " digit " << k;
            // The spec's fixed-point decode, literally: u_k = (((v·3^k) mod 256)·3) >> 8.
            int p3 = 1;
            for (int q = 0; q < k; ++q) p3 *= 3;
            ASSERT_EQ(((((int(v) * p3) % 256) * 3) >> 8) - 1, t[k]);
        }
    }
    EXPECT_EQ(seen.size(), 243u);
    const int8_t zeros[5] = {0, 0, 0, 0, 0}, neg[5] = {-1, -1, -1, -1, -1}, pos[5] = {1, 1, 1, 1, 1};
    const int8_t first[5] = {1, -1, -1, -1, -1};
    EXPECT_EQ(p5_encode(zeros), 128);  // n = 121
    EXPECT_EQ(p5_encode(neg), 0);
    EXPECT_EQ(p5_encode(pos), 255);
    EXPECT_EQ(p5_encode(first), 171);  // n = 2·81 = 162: digit 0 is the most significant
}

TEST(TritplaneGeometry, EveryTritHasOneDigit) {
    for (int g : {32, 64, 128, 256}) {
        const TritplaneGeometry geo(g);
        EXPECT_EQ(geo.nb, (g + 4) / 5);
        EXPECT_EQ(geo.M % 4, 0);
        EXPECT_EQ(geo.M + geo.E, geo.nb);
        std::vector<int> hits(static_cast<size_t>(g), 0);
        int pads = 0;
        for (int b = 0; b < geo.nb; ++b)
            for (int k = 0; k < 5; ++k) {
                const int i = geo.trit_at(b, k);
                if (i < 0) {
                    ++pads;
                    EXPECT_EQ(b, geo.F);
                    continue;
                }
                ++hits[size_t(i)];
                int bb, kk;
                geo.locate(i, bb, kk);
                EXPECT_EQ(bb, b);
                EXPECT_EQ(kk, k);
            }
        for (int h : hits) ASSERT_EQ(h, 1);
        EXPECT_EQ(pads, 5 * geo.nb - g);
    }
    // g = 128: 25 full bytes and a 3-trit tail per plane, 26 bytes (PTQTP.md §3).
    const TritplaneGeometry g128(128);
    EXPECT_EQ(g128.nb, 26);
    EXPECT_EQ(g128.r, 3);
}

struct Source {
    int64_t rows, cols;
    int group;
    std::vector<int8_t> t1, t2;
    std::vector<uint16_t> scales;
};

Source make_source(int64_t rows, int64_t cols, int group, uint32_t seed) {
    Source s{rows, cols, group, {}, {}, {}};
    std::mt19937 rng(seed);
    s.t1.resize(size_t(rows * cols));
    s.t2.resize(size_t(rows * cols));
    for (auto& t : s.t1) t = int8_t(int(rng() % 3) - 1);
    for (auto& t : s.t2) t = int8_t(int(rng() % 3) - 1);
    std::uniform_real_distribution<float> mag(-8.0f, 1.0f);
    s.scales.resize(size_t(rows * 2 * (cols / group)));
    for (auto& v : s.scales) v = f32_to_f16(std::exp2(mag(rng)) * ((rng() & 7) == 0 ? -1.0f : 1.0f));
    return s;
}

PackedWeight pack(const Source& s) { return pack_tritplane(s.rows, s.cols, s.group, s.t1, s.t2, s.scales); }

std::vector<float> expected(const Source& s) {
    const int64_t G = s.cols / s.group;
    std::vector<float> w(size_t(s.rows * s.cols));
    for (int64_t r = 0; r < s.rows; ++r)
        for (int64_t c = 0; c < s.cols; ++c) {
            const int64_t j = c / s.group;
            const float a1 = f16_to_f32(s.scales[size_t(r * 2 * G + 2 * j)]), a2 = f16_to_f32(s.scales[size_t(r * 2 * G + 2 * j + 1)]);
            const size_t k = size_t(r * s.cols + c);
            w[k] = a1 * float(s.t1[k]) + a2 * float(s.t2[k]);
        }
    return w;
}

struct Shape {
    int group;
    int64_t rows, cols;
};
// Odd shapes: partial superblocks (G % 8 != 0), one group, several superblocks, odd row counts.
const Shape kShapes[] = {{32, 7, 32},   {32, 19, 288},  {64, 5, 64},    {64, 33, 1088}, {128, 3, 128}, {128, 37, 384},
                         {128, 17, 1024}, {128, 9, 2176}, {256, 4, 256}, {256, 21, 2304}, {256, 3, 4608}};

std::string name(const Shape& s) { return "g" + std::to_string(s.group) + " " + std::to_string(s.rows) + "x" + std::to_string(s.cols); }

TEST(Tritplane, PackUnpackRoundTripAndBitAccounting) {
    uint32_t seed = 1;
    for (const Shape& sh : kShapes) {
        const Source s = make_source(sh.rows, sh.cols, sh.group, seed++);
        const PackedWeight w = pack(s);
        std::vector<int8_t> t1(s.t1.size()), t2(s.t2.size());
        unpack_tritplane(w, t1.data(), t2.data());
        EXPECT_EQ(t1, s.t1) << name(sh);
        EXPECT_EQ(t2, s.t2) << name(sh);
        const TritplaneGeometry geo(sh.group);
        const int64_t G = sh.cols / sh.group;
        // Byte-exact: 2 planes · nb bytes + 2 fp16 scales per row-group, nothing else.
        EXPECT_EQ(w.stored_bytes(), size_t(sh.rows * G * (2 * geo.nb + 4))) << name(sh);
        EXPECT_EQ(w.part("trits").spec.shape, (std::vector<int64_t>{sh.rows, 2 * G * geo.nb}));
        EXPECT_EQ(w.part("scales").spec.shape, (std::vector<int64_t>{sh.rows, 2 * G}));
    }
    // PTQTP.md §7.8: 2·26·8 + 32 bits per row-group at g = 128 → 3.5 bpw.
    const std::pair<int, double> bpw[] = {{32, 4.5}, {64, 3.75}, {128, 3.5}, {256, 3.375}};
    for (auto [g, b] : bpw) {
        const Source s = make_source(4, 2048, g, 99);
        EXPECT_DOUBLE_EQ(pack(s).bits_per_weight(), b) << g;
    }
    const Source s = make_source(2, 128, 128, 5);
    EXPECT_EQ(pack(s).stored_bytes() * 8, size_t(2 * (2 * 26 * 8 + 32)));
}

TEST(Tritplane, TailByteHoldsThreeTritsAndPadding) {
    // A 128-trit group whose last three trits are +1 and everything else 0: byte 25 of each plane is the
    // tail with digits (u = 2, 2, 2, 1, 1) → n = 2·81 + 2·27 + 2·9 + 3 + 1 = 238.
    Source s{1, 128, 128, std::vector<int8_t>(128, 0), std::vector<int8_t>(128, 0), {f32_to_f16(1.0f), f32_to_f16(0.5f)}};
    s.t1[125] = s.t1[126] = s.t1[127] = 1;
    const PackedWeight w = pack(s);
    const TritplaneGeometry geo(128);
    const uint8_t* row = w.part("trits").data;
    EXPECT_EQ(row[tritplane_byte_offset(geo, 1, 0, 0, 25)], (238 * 256 + 242) / 243);
    EXPECT_EQ(row[tritplane_byte_offset(geo, 1, 0, 1, 25)], 128);  // all zero incl. padding
    for (int b = 0; b < 25; ++b) EXPECT_EQ(row[tritplane_byte_offset(geo, 1, 0, 0, b)], 128);
}

TEST(Tritplane, ReferenceDequantizeIsExact) {
    uint32_t seed = 10;
    for (const Shape& sh : kShapes) {
        const Source s = make_source(sh.rows, sh.cols, sh.group, seed++);
        const PackedWeight w = pack(s);
        std::vector<float> out(size_t(sh.rows * sh.cols));
        w.dequantize(out.data());
        const auto exp = expected(s);
        ASSERT_EQ(std::memcmp(out.data(), exp.data(), out.size() * 4), 0) << name(sh);
    }
}

TEST(Tritplane, DequantizeBlockMatchesReferenceAtEveryLevel) {
    SimdGuard guard;
    uint32_t seed = 20;
    for (const Shape& sh : kShapes) {
        const Source s = make_source(sh.rows, sh.cols, sh.group, seed++);
        const PackedWeight w = pack(s);
        const auto exp = expected(s);
        for (SimdLevel level : available_levels()) {
            set_simd_level(level);
            std::mt19937 rng(seed);
            for (int trial = 0; trial < 12; ++trial) {
                const int64_t r0 = rng() % sh.rows, nr = 1 + rng() % (sh.rows - r0);
                const int64_t c0 = trial == 0 ? 0 : rng() % sh.cols, nc = trial == 0 ? sh.cols : 1 + rng() % (sh.cols - c0);
                std::vector<float> out(size_t(nr * nc));
                w.format->dequantize_block(w, r0, nr, c0, nc, out.data());
                for (int64_t r = 0; r < nr; ++r)
                    for (int64_t c = 0; c < nc; ++c)
                        ASSERT_EQ(out[size_t(r * nc + c)], exp[size_t((r0 + r) * sh.cols + c0 + c)])
                            << name(sh) << " " << simd_level_name(level) << " block " << r0 << "+" << nr << ", " << c0 << "+" << nc;
            }
        }
    }
}

std::vector<float> random_x(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = nd(rng) * ((rng() % 13) == 0 ? 8.0f : 1.0f);  // a few outliers
    return x;
}

// y against the reference: the dequantized weight times the int8-quantized activations every level uses
// (per weight group), within 1e-5 relative (the integer dots are exact; only the f32 combination rounds),
// and against the f32 reference within the activation-quantization bound.
void expect_within_reference(const Shape& sh, const std::vector<float>& wf, const std::vector<float>& x,
                             const std::vector<float>& y, const std::string& where) {
    std::vector<int8_t> xq(size_t(sh.cols + 64));
    const int64_t G = sh.cols / sh.group;
    std::vector<float> d(static_cast<size_t>(G));
    std::vector<int32_t> sx(static_cast<size_t>(G));
    cpu::int_group_quantize_act_scalar(x.data(), sh.cols, sh.group, xq.data(), d.data(), sx.data());
    for (int64_t r = 0; r < sh.rows; ++r) {
        double ref = 0, wx = 0, bound = 0, exact_q = 0;
        for (int64_t c = 0; c < sh.cols; ++c) {
            const double wv = wf[size_t(r * sh.cols + c)];
            ref += wv * x[size_t(c)];
            wx += std::fabs(wv * x[size_t(c)]);
            bound += std::fabs(wv) * 0.5 * d[size_t(c / sh.group)];  // |x − d·xq| ≤ d/2
            exact_q += wv * double(d[size_t(c / sh.group)]) * xq[size_t(c)];
        }
        const double fl = 1e-5 * (wx + bound) + 1e-30;
        ASSERT_NEAR(y[size_t(r)], exact_q, fl) << where << " row " << r;
        ASSERT_NEAR(y[size_t(r)], ref, bound + fl) << where << " row " << r;
    }
}

TEST(Tritplane, GemvLevelsAgreeBitwiseAndWithinActivationBound) {
    SimdGuard guard;
    uint32_t seed = 40;
    for (const Shape& sh : kShapes) {
        const Source s = make_source(sh.rows, sh.cols, sh.group, seed++);
        const PackedWeight w = pack(s);
        const auto x = random_x(sh.cols, seed);
        std::vector<std::vector<float>> ys;
        for (SimdLevel level : available_levels()) {
            set_simd_level(level);
            std::vector<float> y(static_cast<size_t>(sh.rows), -1.0f);
            w.format->gemv(w, x.data(), y.data());
            ys.push_back(y);
        }
        for (size_t l = 1; l < ys.size(); ++l)
            ASSERT_EQ(std::memcmp(ys[l].data(), ys[0].data(), ys[0].size() * 4), 0)
                << name(sh) << ": " << simd_level_name(available_levels()[l]) << " differs from the scalar model";
        expect_within_reference(sh, expected(s), x, ys[0], name(sh));
    }
}

// Every GEMV variant at every level, on shapes for the 16- and 32-row blocks: 37 rows (two full 16-row
// blocks and a partial one; one full 32-row block and a partial one), 16 and 1; group counts 1, 2, 9 and 17 (odd counts leave a half unit at g = 32 and 64, and
// partial superblocks). The row-block variants give the scalar model's bits too (same f32 combination).
TEST(Tritplane, GemvVariantsMatchReferenceOnRowBlockShapes) {
    SimdGuard guard;
    const TritplaneGemvVariant saved = tritplane_gemv_variant();
    uint32_t seed = 300;
    for (int g : {32, 64, 128, 256})
        for (int64_t rows : {37, 16, 1})
            for (int64_t G : {1, 2, 9, 17}) {
                const Shape sh{g, rows, G * g};
                const Source s = make_source(sh.rows, sh.cols, sh.group, seed++);
                const PackedWeight w = pack(s);
                const auto wf = expected(s);
                const auto x = random_x(sh.cols, seed);
                set_simd_level(SimdLevel::Scalar);
                std::vector<float> model(static_cast<size_t>(rows), -1.0f);
                w.format->gemv(w, x.data(), model.data());
                for (TritplaneGemvVariant v : {TritplaneGemvVariant::Int8Superblocks, TritplaneGemvVariant::Int8RowBlocksCmp,
                                               TritplaneGemvVariant::Int8RowBlocksLut, TritplaneGemvVariant::Int8RowBlocksLut7,
                                               TritplaneGemvVariant::Int8Triples}) {
                    set_tritplane_gemv_variant(v);
                    for (SimdLevel level : available_levels()) {
                        set_simd_level(level);
                        std::vector<float> y(static_cast<size_t>(rows), -1.0f);
                        w.format->gemv(w, x.data(), y.data());
                        const std::string where = name(sh) + " " + tritplane_gemv_variant_name(v) + " " + simd_level_name(level);
                        expect_within_reference(sh, wf, x, y, where);
                        ASSERT_EQ(std::memcmp(y.data(), model.data(), y.size() * 4), 0) << where << " differs from the scalar model";
                    }
                }
                set_tritplane_gemv_variant(saved);
            }
}

// The triple lookup's int8 sums at their bounds: activations at ±127 make every full triple's |Σ t·xq| = 381,
// the largest h (12, summed 10 at a time); triples of 127, 127, 114 make it 368, the largest l (16 after the
// sign, summed 7 at a time). Rows of all +1 or all −1 trits put every triple's sign the same way; random rows and
// padding rows ride along. The kernel must give the scalar model's bits (an int8 sum past its range would not).
TEST(Tritplane, TripleLookupAtItsIntegerBounds) {
    SimdGuard guard;
    const TritplaneGemvVariant saved = tritplane_gemv_variant();
    for (int g : {32, 64, 128, 256})
        for (int pattern = 0; pattern < 4; ++pattern) {
            const Shape sh{g, 40, 3 * int64_t(g)};
            Source s = make_source(sh.rows, sh.cols, g, uint32_t(700 + g + pattern));
            for (int64_t r = 0; r < 24; ++r)  // rows 0–23 uniform (+1, −1, mixed per plane); 24–39 random
                for (int64_t c = 0; c < sh.cols; ++c) {
                    const size_t k = size_t(r * sh.cols + c);
                    s.t1[k] = int8_t(r % 2 == 0 ? 1 : -1);
                    s.t2[k] = int8_t(r % 3 == 0 ? 1 : r % 3 == 1 ? -1 : int(c % 3) - 1);
                }
            std::vector<float> x(size_t(sh.cols));
            for (int64_t c = 0; c < sh.cols; ++c) {
                const bool third = (c % g) % 3 == 2;
                const float m = pattern < 2 ? 1.0f : (third ? 114.0f / 127.0f : 1.0f);
                x[size_t(c)] = pattern % 2 == 0 ? m : -m;
            }
            const PackedWeight w = pack(s);
            set_simd_level(SimdLevel::Scalar);
            std::vector<float> model(size_t(sh.rows), -1.0f);
            w.format->gemv(w, x.data(), model.data());
            set_tritplane_gemv_variant(TritplaneGemvVariant::Int8Triples);
            for (SimdLevel level : available_levels()) {
                set_simd_level(level);
                std::vector<float> y(size_t(sh.rows), -1.0f);
                w.format->gemv(w, x.data(), y.data());
                const std::string where = name(sh) + " pattern " + std::to_string(pattern) + " " + simd_level_name(level);
                expect_within_reference(sh, expected(s), x, y, where);
                ASSERT_EQ(std::memcmp(y.data(), model.data(), y.size() * 4), 0) << where << " differs from the scalar model";
            }
            set_tritplane_gemv_variant(saved);
        }
}

// gemv_shared_input (q, k, v as one GEMV): each output has the bits of its own gemv, for every variant and
// level, with row counts that are not multiples of the 16- and 32-row blocks and differ between the weights;
// weights with different groups take the one-at-a-time path; a count mismatch is an error.
TEST(Tritplane, SharedInputGemvEqualsOneGemvEach) {
    SimdGuard guard;
    const TritplaneGemvVariant saved = tritplane_gemv_variant();
    for (int g : {32, 128}) {
        const int64_t cols = 9 * int64_t(g);
        const Source s0 = make_source(37, cols, g, 900), s1 = make_source(5, cols, g, 901), s2 = make_source(64, cols, g, 902);
        const PackedWeight w0 = pack(s0), w1 = pack(s1), w2 = pack(s2);
        const auto x = random_x(cols, 903);
        for (TritplaneGemvVariant v : {TritplaneGemvVariant::Int8Superblocks, TritplaneGemvVariant::Int8RowBlocksCmp,
                                       TritplaneGemvVariant::Int8RowBlocksLut, TritplaneGemvVariant::Int8RowBlocksLut7,
                                       TritplaneGemvVariant::Int8Triples}) {
            set_tritplane_gemv_variant(v);
            for (SimdLevel level : available_levels()) {
                set_simd_level(level);
                const std::string where = "g" + std::to_string(g) + " " + tritplane_gemv_variant_name(v) + " " + simd_level_name(level);
                const PackedWeight* ws[] = {&w0, &w1, &w2};
                std::vector<float> one[3], many[3];
                float* ys[3];
                for (int i = 0; i < 3; ++i) {
                    one[i].assign(size_t(ws[i]->rows), -1.0f);
                    many[i].assign(size_t(ws[i]->rows), -2.0f);
                    ws[i]->format->gemv(*ws[i], x.data(), one[i].data());
                    ys[i] = many[i].data();
                }
                gemv_shared_input(ws, x.data(), ys);
                for (int i = 0; i < 3; ++i)
                    ASSERT_EQ(std::memcmp(many[i].data(), one[i].data(), one[i].size() * 4), 0) << where << ": weight " << i;
            }
        }
    }
    set_tritplane_gemv_variant(saved);
    // Different groups over the same columns: each by its own tables.
    const Source a = make_source(19, 1024, 64, 910), b = make_source(7, 1024, 128, 911);
    const PackedWeight wa = pack(a), wb = pack(b);
    const auto x = random_x(1024, 912);
    std::vector<float> ya(19), yb(7), ea(19), eb(7);
    wa.format->gemv(wa, x.data(), ea.data());
    wb.format->gemv(wb, x.data(), eb.data());
    const PackedWeight* ws[] = {&wa, &wb};
    float* ys[] = {ya.data(), yb.data()};
    gemv_shared_input(ws, x.data(), ys);
    EXPECT_EQ(ya, ea);
    EXPECT_EQ(yb, eb);
    float* too_few[] = {ya.data()};
    EXPECT_THROW(gemv_shared_input(ws, x.data(), too_few), Error);
}

// The repack is also built on the fly where prepare() did not run (a weight packed at a lower level).
TEST(Tritplane, RowBlocksWithoutPrepare) {
    const SimdLevel top = simd_level();
    if (top == SimdLevel::Scalar) GTEST_SKIP() << "needs AVX2 or AVX-512";
    SimdGuard guard;
    const Shape sh{128, 37, 1152};
    const Source s = make_source(sh.rows, sh.cols, sh.group, 9);
    set_simd_level(SimdLevel::Scalar);
    const PackedWeight w = pack(s);  // no runtime
    ASSERT_EQ(w.runtime, nullptr);
    const auto x = random_x(sh.cols, 9);
    std::vector<float> model(size_t(sh.rows)), y(size_t(sh.rows));
    w.format->gemv(w, x.data(), model.data());
    set_simd_level(top);
    w.format->gemv(w, x.data(), y.data());
    EXPECT_EQ(std::memcmp(y.data(), model.data(), y.size() * 4), 0);
}

TEST(Tritplane, GemmMatchesReference) {
    SimdGuard guard;
    for (const Shape& sh : {Shape{128, 40, 384}, Shape{64, 33, 1088}, Shape{256, 9, 2304}, Shape{32, 19, 288}}) {
        const Source s = make_source(sh.rows, sh.cols, sh.group, 77);
        const PackedWeight w = pack(s);
        const auto wf = expected(s);
        const int64_t n = 5;
        std::vector<float> x(size_t(n * sh.cols));
        std::mt19937 rng(3);
        std::normal_distribution<float> nd;
        for (auto& v : x) v = nd(rng);
        for (SimdLevel level : available_levels()) {
            set_simd_level(level);
            std::vector<float> y(size_t(n * sh.rows));
            w.format->gemm(w, x.data(), n, y.data());
            for (int64_t t = 0; t < n; ++t)
                for (int64_t r = 0; r < sh.rows; ++r) {
                    double ref = 0, mag = 0;
                    for (int64_t c = 0; c < sh.cols; ++c) {
                        ref += double(wf[size_t(r * sh.cols + c)]) * x[size_t(t * sh.cols + c)];
                        mag += std::fabs(double(wf[size_t(r * sh.cols + c)]) * x[size_t(t * sh.cols + c)]);
                    }
                    ASSERT_NEAR(y[size_t(t * sh.rows + r)], ref, 1e-5 * mag + 1e-30) << name(sh) << " " << simd_level_name(level);
                }
        }
    }
}

TEST(Tritplane, BindWeightRoundTripAndChecks) {
    const Source s = make_source(6, 640, 64, 8);
    const PackedWeight w = pack(s);
    std::map<std::string, FoundPart> found;
    for (const auto& p : w.parts) found[p.spec.suffix] = FoundPart{p.spec.dtype, p.spec.shape, p.data, p.spec.nbytes()};
    const PackedWeight b = bind_weight(kFormatTritplane, 6, 640, w.params, "layer", "file", [&](const std::string& suf) -> const FoundPart* {
        auto it = found.find(suf);
        return it == found.end() ? nullptr : &it->second;
    });
    std::vector<float> a(size_t(6 * 640)), c(a.size());
    w.dequantize(a.data());
    b.dequantize(c.data());
    EXPECT_EQ(a, c);
    EXPECT_NE(kFormatTritplane.check(4, 256, FormatParams{3, 128, false, false}), "");
    EXPECT_NE(kFormatTritplane.check(4, 256, FormatParams{2, 96, false, false}), "");
    EXPECT_NE(kFormatTritplane.check(4, 320, FormatParams{2, 128, false, false}).find("does not divide"), std::string::npos);
    EXPECT_EQ(kFormatTritplane.check(4, 256, FormatParams{2, 128, false, false}), "");
    EXPECT_EQ(find_format("tritplane"), &kFormatTritplane);
    std::vector<int8_t> bad(s.t1);
    bad[3] = 2;
    EXPECT_THROW(pack_tritplane(s.rows, s.cols, s.group, bad, s.t2, s.scales), Error);
}

TEST(Tritplane, RandomWeightsAreValidEncodings) {
    for (int g : {32, 64, 128, 256}) {
        const PackedWeight w = random_tritplane(9, 8 * g + g, g, 0.05f, 3);
        std::vector<int8_t> t1(size_t(w.rows * w.cols)), t2(t1.size());
        unpack_tritplane(w, t1.data(), t2.data());
        std::vector<uint16_t> sc(w.part("scales").as<uint16_t>(), w.part("scales").as<uint16_t>() + w.rows * 2 * (w.cols / g));
        const PackedWeight again = pack_tritplane(w.rows, w.cols, g, t1, t2, sc);
        EXPECT_EQ(std::memcmp(again.part("trits").data, w.part("trits").data, w.part("trits").spec.nbytes()), 0) << g;
    }
}

}  // namespace
}  // namespace planeq::test
