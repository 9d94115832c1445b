// The bitplane format (formats/bitplane.hpp): exact pack → dequantize with the documented level
// expression, the documented byte layout, the released layout round trip (BPDQ.md §3, §7.8), byte-exact
// bit accounting (§7.10), bind_weight, every SIMD GEMV variant against the references (§7.9: f32 paths
// within 1e-5 of the f32 reference; the int8 path within 1e-5 of the scalar model of the same integer math
// and of dequantize-then-multiply with the int8-quantized activations x̂ it sees, and within the derived
// activation-quantization bound of the f32 reference), and the packed GEMM. The configs include
// cols % 64 = 32 (a 32-column last chunk), which the f32 LUT path must not overrun.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "core/cpu_features.hpp"
#include "core/error.hpp"
#include "core/half.hpp"
#include "formats/bitplane.hpp"
#include "kernels/cpu/bitplane_kernels.hpp"
#include "kernels/cpu/int_group_kernels.hpp"
#include "model/synthetic.hpp"
#include "test_util.hpp"

namespace planeq::test {
namespace {

struct Source {
    int64_t rows, cols;
    FormatParams p;
    std::vector<uint8_t> codes;
    std::vector<uint16_t> coefs;  // [R][G][k+1]
};

// Random codes and bf16 coefficients (both signs, magnitudes over 2^-8 … 2^2, some exact zeros and −0).
Source make_source(int64_t rows, int64_t cols, int k, int group, uint32_t seed) {
    Source s{rows, cols, FormatParams{k, group, false, false}, {}, {}};
    std::mt19937 rng(seed);
    s.codes.resize(size_t(rows * cols));
    for (auto& c : s.codes) c = uint8_t(rng() % (1u << k));
    std::uniform_real_distribution<float> mag(-8.0f, 2.0f);
    s.coefs.resize(size_t(rows * (cols / group) * (k + 1)));
    for (auto& v : s.coefs) {
        const uint32_t u = rng() % 40;
        v = u == 0 ? uint16_t(0) : u == 1 ? uint16_t(0x8000) : f32_to_bf16(std::exp2(mag(rng)) * (rng() % 3 == 0 ? -1.0f : 1.0f));
    }
    return s;
}

PackedWeight pack(const Source& s) { return pack_bitplane(s.rows, s.cols, s.p, s.codes, s.coefs); }

std::vector<float> expected_weights(const Source& s) {
    const int k = s.p.bits;
    const int64_t ng = s.cols / s.p.group;
    std::vector<float> w(size_t(s.rows * s.cols));
    for (int64_t r = 0; r < s.rows; ++r)
        for (int64_t c = 0; c < s.cols; ++c) {
            float cf[5];
            for (int m = 0; m <= k; ++m) cf[m] = bf16_to_f32(s.coefs[size_t((r * ng + c / s.p.group) * (k + 1) + m)]);
            float v = cf[0];  // the documented expression, spelled out
            for (int m = 1; m <= k; ++m)
                if ((s.codes[size_t(r * s.cols + c)] >> (m - 1)) & 1) v = v + cf[m];
            w[size_t(r * s.cols + c)] = v;
        }
    return w;
}

bool bit_equal(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

struct Config {
    int k, group;
    int64_t rows, cols;
};
std::string name(const Config& c) {
    return "k" + std::to_string(c.k) + " g" + std::to_string(c.group) + " " + std::to_string(c.rows) + "x" + std::to_string(c.cols);
}

std::vector<Config> all_configs() {
    std::vector<Config> out;
    for (int k : {2, 3, 4})
        for (int g : {32, 64, 128, 256}) {
            out.push_back({k, g, 7, 2 * g});
            out.push_back({k, g, 1, g});
            if (g == 32) {  // cols % 64 == 32: a 32-column last chunk
                out.push_back({k, g, 5, 96});
                out.push_back({k, g, 3, 32});
                out.push_back({k, g, 9, 352});
            }
            if (g == 64) out.push_back({k, g, 11, 448});
            if (g == 128) out.push_back({k, g, 5, 384});
            if (g == 32 || g == 128) out.push_back({k, g, 37, 4 * g});  // 16-row blocks: two full and a partial one
            if (g == 256) out.push_back({k, g, 3, 768});
        }
    return out;
}

struct LevelGuard {
    SimdLevel level = simd_level();
    BitplaneGemvVariant variant = bitplane_gemv_variant();
    ~LevelGuard() {
        set_simd_level(level);
        set_bitplane_gemv_variant(variant);
    }
};

// ---- packing, layouts, accounting ---------------------------------------------------------------------

TEST(BitplanePack, DequantizeRowsIsExact) {
    uint32_t seed = 1;
    for (const Config& c : all_configs()) {
        const Source s = make_source(c.rows, c.cols, c.k, c.group, seed++);
        const PackedWeight w = pack(s);
        const std::vector<float> want = expected_weights(s);
        std::vector<float> got(want.size(), -1.0f);
        kFormatBitplane.dequantize_rows(w, 0, c.rows, got.data());
        ASSERT_TRUE(bit_equal(got.data(), want.data(), want.size())) << name(c);
        std::vector<float> whole(want.size());
        w.dequantize(whole.data());
        ASSERT_TRUE(bit_equal(whole.data(), want.data(), want.size())) << name(c);
        ASSERT_EQ(unpack_bitplane_codes(w), s.codes) << name(c);
        ASSERT_EQ(bitplane_coefs(w), s.coefs) << name(c);
        // bitplane_level / bitplane_level_bf16 are that expression.
        for (int64_t i = 0; i < std::min<int64_t>(c.cols, 64); ++i) {
            const uint16_t* cf = s.coefs.data() + (i / c.group) * (c.k + 1);
            float f[5];
            for (int m = 0; m <= c.k; ++m) f[m] = bf16_to_f32(cf[m]);
            ASSERT_EQ(bitplane_level_bf16(cf, c.k, s.codes[size_t(i)]), want[size_t(i)]);
            ASSERT_EQ(bitplane_level(f, c.k, s.codes[size_t(i)]), want[size_t(i)]);
        }
    }
}

TEST(BitplanePack, LayoutIsAsDocumented) {
    // Row: 64-column chunks of k u64 words (plane m = word m − 1, bit i = column 64t + i); a 32-column last
    // chunk of k u32 words. coefs [R][G][k+1] with c_0 first.
    for (int k : {2, 3, 4})
        for (int64_t cols : {32, 96, 128, 352}) {
            const Source s = make_source(3, cols, k, 32, uint32_t(11 + cols + k));
            const PackedWeight w = pack(s);
            const int64_t rb = cols * k / 8;
            ASSERT_EQ(int64_t(w.part("planes").spec.nbytes()), 3 * rb);
            for (int64_t r = 0; r < 3; ++r) {
                const uint8_t* row = w.part("planes").data + r * rb;
                for (int64_t c = 0; c < cols; ++c)
                    for (int m = 1; m <= k; ++m) {
                        const int64_t t = c / 64, i = c % 64;
                        const bool full = 64 * t + 64 <= cols;
                        const int64_t byte = 8 * k * t + (full ? 8 : 4) * (m - 1) + i / 8;
                        ASSERT_EQ((row[byte] >> (i % 8)) & 1, (s.codes[size_t(r * cols + c)] >> (m - 1)) & 1)
                            << "k" << k << " cols " << cols << " row " << r << " col " << c << " plane " << m;
                    }
            }
            ASSERT_EQ(std::memcmp(w.part("coefs").data, s.coefs.data(), s.coefs.size() * 2), 0);
        }
}

TEST(BitplanePack, ReleasedLayoutRoundTrip) {
    uint32_t seed = 50;
    for (const Config& c : all_configs()) {
        const Source s = make_source(c.rows, c.cols, c.k, c.group, seed++);
        const PackedWeight w = pack(s);
        const BitplaneReleased rel = bitplane_to_released(w);
        const int64_t R = c.rows, C = c.cols, k = c.k, ng = C / c.group;
        ASSERT_EQ(int64_t(rel.planes.size()), C / 32 * k * R);
        ASSERT_EQ(int64_t(rel.c.size()), ng * (k + 1) * R);
        // Bit j of word (t, m, r) is plane m of column 32t + j; c[j, m−1, r] = c_m, c[j, k, r] = c_0.
        for (int64_t r = 0; r < R; ++r) {
            for (int64_t col = 0; col < C; ++col)
                for (int64_t m = 1; m <= k; ++m) {
                    const uint32_t word = uint32_t(rel.planes[size_t((col / 32 * k + m - 1) * R + r)]);
                    ASSERT_EQ((word >> (col % 32)) & 1, (s.codes[size_t(r * C + col)] >> (m - 1)) & 1u) << name(c);
                }
            for (int64_t j = 0; j < ng; ++j) {
                const uint16_t* cf = s.coefs.data() + (r * ng + j) * (k + 1);
                for (int64_t m = 1; m <= k; ++m) ASSERT_EQ(rel.c[size_t((j * (k + 1) + m - 1) * R + r)], cf[m]);
                ASSERT_EQ(rel.c[size_t((j * (k + 1) + k) * R + r)], cf[0]);
            }
        }
        const PackedWeight back = bitplane_from_released(R, C, s.p, rel.planes, rel.c);
        ASSERT_EQ(back.parts.size(), w.parts.size());
        for (size_t i = 0; i < w.parts.size(); ++i) {
            ASSERT_EQ(back.parts[i].spec.nbytes(), w.parts[i].spec.nbytes());
            ASSERT_EQ(std::memcmp(back.parts[i].data, w.parts[i].data, w.parts[i].spec.nbytes()), 0) << name(c) << " part " << i;
        }
        // And the other direction: arbitrary released words survive engine → released.
        std::mt19937 rng(seed);
        BitplaneReleased rnd{std::vector<int32_t>(rel.planes.size()), rel.c};
        for (auto& v : rnd.planes) v = int32_t(rng());
        const BitplaneReleased again = bitplane_to_released(bitplane_from_released(R, C, s.p, rnd.planes, rnd.c));
        ASSERT_EQ(again.planes, rnd.planes) << name(c);
        ASSERT_EQ(again.c, rnd.c) << name(c);
    }
}

TEST(BitplanePack, DequantizeBlockIsBitExactAtEveryLevel) {
    LevelGuard guard;
    uint32_t seed = 100;
    for (const Config& c : all_configs()) {
        const Source s = make_source(c.rows, c.cols, c.k, c.group, seed++);
        const PackedWeight w = pack(s);
        const std::vector<float> want = expected_weights(s);
        const std::vector<std::array<int64_t, 4>> blocks = {
            {0, c.rows, 0, c.cols}, {1, c.rows - 1, 0, std::min<int64_t>(c.cols, 64)},
            {0, c.rows, c.cols - 32, 32}, {0, 1, 3, c.cols - 5}, {c.rows - 1, 1, 31, std::min<int64_t>(c.cols - 31, 70)}};
        for (SimdLevel level : available_levels()) {
            set_simd_level(level);
            for (auto [r0, nr, c0, nc] : blocks) {
                if (nr <= 0 || nc <= 0) continue;
                std::vector<float> got(size_t(nr * nc), -1.0f);
                kFormatBitplane.dequantize_block(w, r0, nr, c0, nc, got.data());
                for (int64_t r = 0; r < nr; ++r)
                    ASSERT_TRUE(bit_equal(got.data() + r * nc, want.data() + (r0 + r) * c.cols + c0, size_t(nc)))
                        << name(c) << " level " << simd_level_name(level) << " block " << r0 << "," << nr << "," << c0 << "," << nc;
            }
        }
    }
}

TEST(BitplanePack, StoredBytesMatchTheFormula) {
    for (const Config& c : all_configs()) {
        const PackedWeight w = pack(make_source(c.rows, c.cols, c.k, c.group, 5));
        const int64_t R = c.rows, C = c.cols, k = c.k, g = c.group;
        const int64_t bits = R * C * k + (R * C / g) * (k + 1) * 16;  // BPDQ.md §7.10
        EXPECT_EQ(bits % 8, 0);
        EXPECT_EQ(int64_t(w.stored_bytes()), bits / 8) << name(c);
        size_t layout_bytes = 0;
        for (const PartSpec& p : kFormatBitplane.layout(R, C, w.params)) layout_bytes += p.nbytes();
        EXPECT_EQ(layout_bytes, w.stored_bytes());
    }
    // The BPDQ.md §3 table: bpw = k + 16(k+1)/g.
    const std::map<std::pair<int, int>, double> table = {{{2, 64}, 2.75},  {{2, 128}, 2.375}, {{2, 256}, 2.1875},
                                                         {{3, 64}, 4.00},  {{3, 128}, 3.50},  {{3, 256}, 3.25},
                                                         {{4, 64}, 5.25},  {{4, 128}, 4.625}, {{4, 256}, 4.3125}};
    for (const auto& [kg, bpw] : table)
        EXPECT_DOUBLE_EQ(pack(make_source(16, 512, kg.first, kg.second, 3)).bits_per_weight(), bpw) << kg.first << " " << kg.second;
}

TEST(BitplanePack, BindWeightRoundTrip) {
    uint32_t seed = 300;
    for (const Config& c : all_configs()) {
        const Source s = make_source(c.rows, c.cols, c.k, c.group, seed++);
        const PackedWeight packed = pack(s);
        std::map<std::string, FoundPart> found;
        for (const WeightPart& part : packed.parts) found[part.spec.suffix] = FoundPart{part.spec.dtype, part.spec.shape, part.data, part.spec.nbytes()};
        const PackedWeight bound = bind_weight(kFormatBitplane, c.rows, c.cols, s.p, "layer", "file.safetensors",
                                               [&](const std::string& suffix) -> const FoundPart* {
                                                   auto it = found.find(suffix);
                                                   return it == found.end() ? nullptr : &it->second;
                                               });
        std::vector<float> a(size_t(c.rows * c.cols)), b(a.size());
        packed.dequantize(a.data());
        bound.dequantize(b.data());
        ASSERT_TRUE(bit_equal(a.data(), b.data(), a.size())) << name(c);
    }
}

TEST(BitplanePack, BadParamsGiveTheCheckMessage) {
    EXPECT_EQ(find_format("bitplane"), &kFormatBitplane);
    EXPECT_EQ(kFormatBitplane.check(8, 256, FormatParams{2, 128, false, false}), "");
    EXPECT_EQ(kFormatBitplane.check(8, 200, FormatParams{2, 128, false, false}), "group size 128 does not divide 200 input columns");
    EXPECT_EQ(kFormatBitplane.check(8, 256, FormatParams{5, 128, false, false}),
              "bitplane format: bits (planes k) must be 2, 3 or 4 (got 5)");
    EXPECT_EQ(kFormatBitplane.check(8, 256, FormatParams{2, 100, false, false}),
              "bitplane format: group size must be 32, 64, 128 or 256 (got 100)");
    EXPECT_NE(kFormatBitplane.check(8, 256, FormatParams{2, 128, true, false}), "");
    Source s = make_source(2, 64, 2, 32, 4);
    s.codes[3] = 4;  // does not fit in 2 planes
    EXPECT_THROW(pack(s), Error);
    s = make_source(2, 64, 2, 32, 4);
    s.coefs.pop_back();
    EXPECT_THROW(pack(s), Error);
}

TEST(BitplanePack, RandomWeightForSyntheticModels) {
    const PackedWeight w = random_weight(kFormatBitplane, 64, 512, FormatParams{2, 128, false, false}, 3);
    EXPECT_EQ(w.format, &kFormatBitplane);
    EXPECT_DOUBLE_EQ(w.bits_per_weight(), 2.375);
    std::vector<float> f(size_t(64 * 512));
    w.dequantize(f.data());
    double s2 = 0;
    for (float v : f) s2 += double(v) * v;
    const double rms = std::sqrt(s2 / double(f.size()));
    EXPECT_GT(rms, 0.2 / std::sqrt(512.0));
    EXPECT_LT(rms, 5.0 / std::sqrt(512.0));
}

// ---- GEMV ------------------------------------------------------------------------------------------

std::vector<float> make_x(int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<size_t>(cols));
    for (auto& v : x) v = nd(rng) * ((rng() % 97) == 0 ? 30.0f : 1.0f);
    return x;
}

std::vector<float> run_gemv(const PackedWeight& w, const std::vector<float>& x, SimdLevel level, BitplaneGemvVariant v) {
    set_simd_level(level);
    set_bitplane_gemv_variant(v);
    std::vector<float> y(size_t(w.rows), NAN);
    w.format->gemv(w, x.data(), y.data());
    return y;
}

// x̂ as the int8 path sees it: quantized per weight group.
std::vector<float> quantized_x(const std::vector<float>& x, int group) {
    const int64_t cols = int64_t(x.size());
    std::vector<int8_t> xq(static_cast<size_t>(cols));
    std::vector<float> d(size_t(cols / group)), xhat(static_cast<size_t>(cols));
    std::vector<int32_t> sx(d.size());
    cpu::int_group_quantize_act_scalar(x.data(), cols, group, xq.data(), d.data(), sx.data());
    for (int64_t i = 0; i < cols; ++i) xhat[size_t(i)] = d[size_t(i / group)] * float(xq[size_t(i)]);
    return xhat;
}

void check_gemv(const Config& c, uint32_t seed) {
    const Source s = make_source(c.rows, c.cols, c.k, c.group, seed);
    const PackedWeight w = pack(s);
    const std::vector<float> wf = expected_weights(s);
    const std::vector<float> x = make_x(c.cols, seed * 7 + 1);
    const std::vector<float> xhat = quantized_x(x, c.group);
    for (BitplaneGemvVariant variant : {BitplaneGemvVariant::Int8BitSerial, BitplaneGemvVariant::F32Levels, BitplaneGemvVariant::F32Lut,
                                         BitplaneGemvVariant::Int8RowBlocks}) {
        const std::vector<float> scalar = run_gemv(w, x, SimdLevel::Scalar, variant);
        for (SimdLevel level : available_levels()) {
            const std::vector<float> y = run_gemv(w, x, level, variant);
            const bool f32_path = (variant == BitplaneGemvVariant::F32Levels || variant == BitplaneGemvVariant::F32Lut) && level == SimdLevel::Avx512;
            for (int64_t r = 0; r < c.rows; ++r) {
                const float* wr = wf.data() + r * c.cols;
                double ref = 0, mag = 0, bound = 0, qmag = 0, qref = 0;
                for (int64_t i = 0; i < c.cols; ++i) {
                    ref += double(wr[i]) * x[size_t(i)];
                    qref += double(wr[i]) * xhat[size_t(i)];
                    mag += std::abs(double(wr[i]) * x[size_t(i)]);
                    qmag += std::abs(double(wr[i]) * xhat[size_t(i)]);
                    bound += std::abs(double(wr[i])) * std::abs(double(x[size_t(i)]) - xhat[size_t(i)]);
                }
                const std::string where = name(c) + " " + bitplane_gemv_variant_name(variant) + " level " + simd_level_name(level) +
                                          " row " + std::to_string(r);
                if (f32_path) {  // f32 activations: only f32 rounding (1e-5 relative to Σ|ŵ x|)
                    ASSERT_LE(std::abs(y[size_t(r)] - ref), 1e-5 * mag + 1e-30) << where;
                    continue;
                }
                // The same integer math as the scalar model: within 1e-5 relative (to Σ|ŵ x̂|).
                ASSERT_LE(std::abs(double(y[size_t(r)]) - scalar[size_t(r)]), 1e-5 * qmag + 1e-30) << where;
                // And the reference dequantize-then-multiply with the activations it sees (x̂): 1e-5 relative.
                ASSERT_LE(std::abs(double(y[size_t(r)]) - qref), 1e-5 * qmag + 1e-30) << where;
                // y = Σ ŵ_i x̂_i up to rounding, so |y − Σ ŵ x| ≤ Σ |ŵ_i| |x_i − x̂_i|.
                ASSERT_LE(std::abs(double(y[size_t(r)]) - ref), bound + 1e-5 * (mag + qmag) + 1e-30) << where;
            }
        }
    }
}

TEST(BitplaneGemv, EveryPathMatchesTheReferences) {
    LevelGuard guard;
    uint32_t seed = 1000;
    for (const Config& c : all_configs()) check_gemv(c, seed++);
}

TEST(BitplaneGemv, LargerShapes) {
    LevelGuard guard;
    check_gemv({2, 128, 67, 4096}, 1);
    check_gemv({3, 64, 45, 1024}, 2);
    check_gemv({4, 256, 33, 2048}, 3);
    check_gemv({2, 32, 19, 1056}, 4);
}

TEST(BitplaneGemv, ActivationBoundIsTight) {
    // For Gaussian activations the bound Σ|ŵ_i||x_i − x̂_i| is well under 1% of Σ|ŵ_i x_i|: the
    // comparison with the f32 reference above is a real check.
    const Source s = make_source(16, 1024, 2, 128, 42);
    const std::vector<float> wf = expected_weights(s);
    std::mt19937 rng(43);
    std::normal_distribution<float> nd;
    std::vector<float> x(1024);
    for (auto& v : x) v = nd(rng);
    const std::vector<float> xhat = quantized_x(x, 128);
    for (int64_t r = 0; r < 16; ++r) {
        double bound = 0, mag = 0;
        for (int64_t i = 0; i < 1024; ++i) {
            const double wi = wf[size_t(r * 1024 + i)];
            mag += std::abs(wi * x[size_t(i)]);
            bound += std::abs(wi) * std::abs(double(x[size_t(i)]) - xhat[size_t(i)]);
        }
        EXPECT_LE(bound, 0.01 * mag) << "row " << r;
    }
}

// ---- GEMM --------------------------------------------------------------------------------------------

TEST(BitplaneGemm, PackedGemmMatchesDoubleReference) {
    LevelGuard guard;
    uint32_t seed = 7;
    for (const Config& c : std::vector<Config>{{2, 128, 67, 512}, {3, 64, 40, 640}, {2, 32, 33, 352}, {4, 256, 70, 1024}}) {
        const PackedWeight w = pack(make_source(c.rows, c.cols, c.k, c.group, seed));
        const std::vector<float> wf = expected_weights(make_source(c.rows, c.cols, c.k, c.group, seed++));
        EXPECT_EQ(w.format->gemm, &gemm_packed);
        for (int64_t n : {2, 7, 33}) {
            const std::vector<float> x = make_x(n * c.cols, seed++);
            for (SimdLevel level : available_levels()) {
                set_simd_level(level);
                std::vector<float> y(size_t(n * c.rows), NAN);
                w.format->gemm(w, x.data(), n, y.data());
                for (int64_t t = 0; t < n; ++t)
                    for (int64_t r = 0; r < c.rows; ++r) {
                        double ref = 0, mag = 0;
                        for (int64_t i = 0; i < c.cols; ++i) {
                            const double p = double(wf[size_t(r * c.cols + i)]) * x[size_t(t * c.cols + i)];
                            ref += p;
                            mag += std::abs(p);
                        }
                        ASSERT_LE(std::abs(y[size_t(t * c.rows + r)] - ref), 1e-5 * mag + 1e-30)
                            << name(c) << " n=" << n << " level " << simd_level_name(level) << " token " << t << " row " << r;
                    }
            }
        }
    }
}

}  // namespace
}  // namespace planeq::test
