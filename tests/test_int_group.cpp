// The int-group format (formats/int_group.hpp): exact pack → dequantize, byte-exact bit accounting,
// bind_weight round trips, every SIMD GEMV path against the scalar int8 reference and against the f32
// dequantize-then-dot reference (within the derived activation-quantization bound), the packed GEMM, and
// the check() messages.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <random>

#include "core/cpu_features.hpp"
#include "core/error.hpp"
#include "core/half.hpp"
#include "formats/int_group.hpp"
#include "kernels/cpu/int_group_kernels.hpp"
#include "test_util.hpp"

namespace planeq::test {
namespace {

struct Source {
    int64_t rows, cols;
    FormatParams p;
    std::vector<uint8_t> codes, zeros;
    std::vector<uint16_t> scales;
    std::vector<int32_t> g_idx;
};

// Random codes, zero points and fp16 scales (both signs, a spread of magnitudes); with g_idx a random
// assignment of exactly g columns to every group.
Source make_source(int64_t rows, int64_t cols, int bits, int group, bool sym, bool gidx, uint32_t seed) {
    Source s{rows, cols, FormatParams{bits, group, sym, gidx}, {}, {}, {}, {}};
    std::mt19937 rng(seed);
    const int maxq = (1 << bits) - 1;
    const int64_t ng = cols / group;
    s.codes.resize(size_t(rows * cols));
    for (auto& c : s.codes) c = uint8_t(rng() % uint32_t(maxq + 1));
    std::uniform_real_distribution<float> mag(-6.0f, 2.0f);
    s.scales.resize(size_t(rows * ng));
    for (auto& v : s.scales) v = f32_to_f16(std::exp2(mag(rng)) * ((rng() & 7) == 0 ? -1.0f : 1.0f));
    if (!sym) {
        s.zeros.resize(size_t(rows * ng));
        for (auto& z : s.zeros) z = uint8_t(rng() % uint32_t(maxq + 1));
    }
    if (gidx) {
        s.g_idx.resize(size_t(cols));
        for (int64_t i = 0; i < cols; ++i) s.g_idx[size_t(i)] = int32_t(i / group);
        std::shuffle(s.g_idx.begin(), s.g_idx.end(), rng);
    }
    return s;
}

PackedWeight pack(const Source& s) {
    return pack_int_group(s.rows, s.cols, s.p, s.codes, s.scales, s.zeros, s.g_idx);
}

// ŵ as the spec defines it: float(s) · float(int(q) − int(z)).
std::vector<float> expected_weights(const Source& s) {
    const int64_t ng = s.cols / s.p.group;
    std::vector<float> w(size_t(s.rows * s.cols));
    for (int64_t r = 0; r < s.rows; ++r)
        for (int64_t c = 0; c < s.cols; ++c) {
            const int64_t j = s.p.g_idx ? s.g_idx[size_t(c)] : c / s.p.group;
            const int z = s.p.sym ? 1 << (s.p.bits - 1) : s.zeros[size_t(r * ng + j)];
            w[size_t(r * s.cols + c)] =
                f16_to_f32(s.scales[size_t(r * ng + j)]) * float(int(s.codes[size_t(r * s.cols + c)]) - z);
        }
    return w;
}

bool bit_equal(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

struct Config {
    int bits, group;
    bool sym, gidx;
    int64_t rows, cols;
};

std::string name(const Config& c) {
    return "b" + std::to_string(c.bits) + " g" + std::to_string(c.group) + (c.sym ? " sym" : " asym") +
           (c.gidx ? " g_idx " : " ") + std::to_string(c.rows) + "x" + std::to_string(c.cols);
}

// Every b, g, sym/asym, g_idx; odd row counts; cols % 64 == 32 tails (g = 32).
std::vector<Config> all_configs() {
    std::vector<Config> out;
    for (int bits : {2, 3, 4})
        for (int group : {32, 64, 128, 256})
            for (bool sym : {false, true})
                for (bool gidx : {false, true}) {
                    out.push_back({bits, group, sym, gidx, 7, 2 * 256});
                    out.push_back({bits, group, sym, gidx, 13, 3 * 256});
                    // Narrow last chunks (W = 128 for 4-bit, 256 for 2/3-bit) of every width, and
                    // cols % 64 == 32.
                    if (group == 32) {
                        out.push_back({bits, group, sym, gidx, 5, 96});
                        out.push_back({bits, group, sym, gidx, 3, 32});
                        out.push_back({bits, group, sym, gidx, 9, 352});   // 256 + 96
                        out.push_back({bits, group, sym, gidx, 6, 480});   // 256 + 224
                    }
                    if (group == 64) {
                        out.push_back({bits, group, sym, gidx, 1, 64});
                        out.push_back({bits, group, sym, gidx, 11, 448});  // 256 + 192
                    }
                    if (group == 128) out.push_back({bits, group, sym, gidx, 5, 384});  // 256 + 128
                    if (group == 32 || group == 128) out.push_back({bits, group, sym, gidx, 37, 512});  // 16-row blocks
                }
    return out;
}

// Restores the SIMD level (and GEMV variant) a test changed.
struct LevelGuard {
    SimdLevel level = simd_level();
    IntGemvVariant variant = int_group_gemv_variant();
    ~LevelGuard() {
        set_simd_level(level);
        set_int_group_gemv_variant(variant);
    }
};

// ---- packing and the reference ------------------------------------------------------------------

TEST(IntGroupPack, DequantizeRowsIsExact) {
    uint32_t seed = 1;
    for (const Config& c : all_configs()) {
        const Source s = make_source(c.rows, c.cols, c.bits, c.group, c.sym, c.gidx, seed++);
        const PackedWeight w = pack(s);
        const std::vector<float> want = expected_weights(s);
        std::vector<float> got(want.size(), -1.0f);
        kFormatIntGroup.dequantize_rows(w, 0, c.rows, got.data());
        ASSERT_TRUE(bit_equal(got.data(), want.data(), want.size())) << name(c);
        // Row sub-ranges.
        std::vector<float> part(size_t(2 * c.cols));
        const int64_t r0 = c.rows / 2, r1 = std::min(c.rows, r0 + 2);
        kFormatIntGroup.dequantize_rows(w, r0, r1, part.data());
        ASSERT_TRUE(bit_equal(part.data(), want.data() + r0 * c.cols, size_t((r1 - r0) * c.cols))) << name(c);
        // Unpacking gives back the codes and zeros.
        ASSERT_EQ(unpack_int_group_codes(w), s.codes) << name(c);
        const std::vector<uint8_t> zeros = unpack_int_group_zeros(w);
        if (c.sym) {
            ASSERT_TRUE(std::all_of(zeros.begin(), zeros.end(), [&](uint8_t z) { return z == 1 << (c.bits - 1); }));
        } else {
            ASSERT_EQ(zeros, s.zeros) << name(c);
        }
        // PackedWeight::dequantize (parallel, through dequantize_rows).
        std::vector<float> whole(want.size());
        w.dequantize(whole.data());
        ASSERT_TRUE(bit_equal(whole.data(), want.data(), want.size())) << name(c);
    }
}

TEST(IntGroupPack, LayoutIsAsDocumented) {
    // Chunks of W = 128 (4-bit) or 256 (2-, 3-bit) columns, the last one narrower. In a chunk of width w:
    // 4-bit byte j = col j | col j + w/2 << 4; 2-bit byte j = cols j + k·w/4 at bits 2k; 3-bit: that 2-bit
    // chunk, then bit i of a w/8-byte plane = high bit of col i.
    for (int bits : {2, 3, 4})
        for (int64_t cols : {32, 96, 352, 384, 544}) {
            const Source s = make_source(3, cols, bits, 32, true, false, uint32_t(77 + cols));
            const PackedWeight w = pack(s);
            const int64_t W = bits == 4 ? 128 : 256, rb = cols * bits / 8;
            ASSERT_EQ(int64_t(w.part("qweight").spec.nbytes()), 3 * rb);
            for (int64_t r = 0; r < 3; ++r) {
                const uint8_t* q = w.part("qweight").data + r * rb;
                const auto code = [&](int64_t c) { return int(s.codes[size_t(r * cols + c)]); };
                int64_t off = 0;
                for (int64_t c0 = 0; c0 < cols; c0 += W) {
                    const int64_t width = std::min(W, cols - c0);
                    if (bits == 4) {
                        for (int64_t j = 0; j < width / 2; ++j)
                            ASSERT_EQ(q[off + j], code(c0 + j) | code(c0 + j + width / 2) << 4) << cols << " " << j;
                    } else {
                        const int64_t qt = width / 4;
                        for (int64_t j = 0; j < qt; ++j) {
                            int want = 0;
                            for (int k = 0; k < 4; ++k) want |= (code(c0 + j + k * qt) & 3) << (2 * k);
                            ASSERT_EQ(q[off + j], want) << bits << " " << cols << " " << j;
                        }
                        if (bits == 3) {
                            for (int64_t i = 0; i < width; ++i)
                                ASSERT_EQ((q[off + qt + i / 8] >> (i % 8)) & 1, code(c0 + i) >> 2) << cols << " " << i;
                        }
                    }
                    off += width * bits / 8;
                }
                ASSERT_EQ(off, rb);
            }
        }
}

TEST(IntGroupPack, DequantizeBlockIsBitExactAtEveryLevel) {
    LevelGuard guard;
    uint32_t seed = 100;
    for (const Config& c : all_configs()) {
        const Source s = make_source(c.rows, c.cols, c.bits, c.group, c.sym, c.gidx, seed++);
        const PackedWeight w = pack(s);
        const std::vector<float> want = expected_weights(s);
        // Aligned blocks (as the GEMM asks), and misaligned ones.
        const std::vector<std::array<int64_t, 4>> blocks = {
            {0, c.rows, 0, c.cols}, {1, c.rows - 1, 0, std::min<int64_t>(c.cols, 64)},
            {0, c.rows, c.cols - 32, 32}, {0, 1, 3, c.cols - 5}, {c.rows - 1, 1, 31, std::min<int64_t>(c.cols - 31, 70)}};
        for (SimdLevel level : available_levels()) {
            set_simd_level(level);
            for (auto [r0, nr, c0, nc] : blocks) {
                if (nr <= 0 || nc <= 0) continue;
                std::vector<float> got(size_t(nr * nc), -1.0f);
                kFormatIntGroup.dequantize_block(w, r0, nr, c0, nc, got.data());
                for (int64_t r = 0; r < nr; ++r)
                    ASSERT_TRUE(bit_equal(got.data() + r * nc, want.data() + (r0 + r) * c.cols + c0, size_t(nc)))
                        << name(c) << " level " << simd_level_name(level) << " block " << r0 << "," << nr << "," << c0
                        << "," << nc;
            }
        }
    }
}

TEST(IntGroupPack, StoredBytesMatchTheFormula) {
    for (const Config& c : all_configs()) {
        const Source s = make_source(c.rows, c.cols, c.bits, c.group, c.sym, c.gidx, 5);
        const PackedWeight w = pack(s);
        const int64_t R = c.rows, C = c.cols, b = c.bits, g = c.group;
        // R·C·b + (R·C/g)·(16 + b) (+ 32·C); sym stores no zeros: R·C·b + (R·C/g)·16.
        const int64_t bits = R * C * b + (R * C / g) * (16 + (c.sym ? 0 : b)) + (c.gidx ? 32 * C : 0);
        EXPECT_EQ(int64_t(w.stored_bytes()), (bits + 7) / 8) << name(c);  // padded only at the end of zeros
        size_t layout_bytes = 0;
        for (const PartSpec& p : kFormatIntGroup.layout(R, C, FormatParams{c.bits, c.group, c.sym, c.gidx})) layout_bytes += p.nbytes();
        EXPECT_EQ(layout_bytes, w.stored_bytes()) << name(c);
    }
    // The GPTQ.md table: 4-bit g128 asym is 4.15625 bpw; 2-bit g32 2.5625; 3-bit g64 3.296875.
    EXPECT_DOUBLE_EQ(pack(make_source(64, 256, 4, 128, false, false, 1)).bits_per_weight(), 4.15625);
    EXPECT_DOUBLE_EQ(pack(make_source(64, 256, 2, 32, false, false, 1)).bits_per_weight(), 2.5625);
    EXPECT_DOUBLE_EQ(pack(make_source(64, 256, 3, 64, false, false, 1)).bits_per_weight(), 3.296875);
    // Padding: 3 rows × 1 group × 3 bits = 9 zero bits → 2 bytes.
    EXPECT_EQ(pack(make_source(3, 32, 3, 32, false, false, 1)).part("zeros").spec.nbytes(), 2u);
}

TEST(IntGroupPack, BindWeightRoundTrip) {
    uint32_t seed = 300;
    for (const Config& c : all_configs()) {
        const Source s = make_source(c.rows, c.cols, c.bits, c.group, c.sym, c.gidx, seed++);
        const PackedWeight packed = pack(s);
        const std::vector<PartSpec> specs = kFormatIntGroup.layout(c.rows, c.cols, s.p);
        ASSERT_EQ(specs.size(), packed.parts.size());
        std::map<std::string, FoundPart> found;
        for (size_t i = 0; i < specs.size(); ++i) {
            const WeightPart& part = packed.parts[i];
            EXPECT_EQ(part.spec.suffix, specs[i].suffix);
            EXPECT_EQ(part.spec.dtype, specs[i].dtype);
            EXPECT_EQ(part.spec.shape, specs[i].shape);
            found[part.spec.suffix] = FoundPart{part.spec.dtype, part.spec.shape, part.data, part.spec.nbytes()};
        }
        ASSERT_EQ(kFormatIntGroup.check(c.rows, c.cols, s.p), "");
        const PackedWeight bound = bind_weight(kFormatIntGroup, c.rows, c.cols, s.p, "layer", "file.safetensors",
                                               [&](const std::string& suffix) -> const FoundPart* {
                                                   auto it = found.find(suffix);
                                                   return it == found.end() ? nullptr : &it->second;
                                               });
        ASSERT_NE(bound.runtime, nullptr);
        std::vector<float> a(size_t(c.rows * c.cols)), b(a.size());
        packed.dequantize(a.data());
        bound.dequantize(b.data());
        ASSERT_TRUE(bit_equal(a.data(), b.data(), a.size())) << name(c);
        std::vector<float> x(size_t(c.cols)), ya(size_t(c.rows)), yb(size_t(c.rows));
        for (int64_t i = 0; i < c.cols; ++i) x[size_t(i)] = std::sin(0.37f * float(i));
        packed.format->gemv(packed, x.data(), ya.data());
        bound.format->gemv(bound, x.data(), yb.data());
        ASSERT_EQ(ya, yb) << name(c);
    }
    // A wrong shape is reported with the tensor's name.
    const Source s = make_source(4, 128, 4, 64, false, false, 9);
    const PackedWeight packed = pack(s);
    const WeightPart& q = packed.part("qweight");
    const FoundPart bad{DType::U8, {4, 63}, q.data, 4 * 63};
    try {
        bind_weight(kFormatIntGroup, 4, 128, s.p, "blk.0.q", "model.safetensors",
                    [&](const std::string& suffix) -> const FoundPart* { return suffix == "qweight" ? &bad : nullptr; });
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("blk.0.q.qweight"), std::string::npos) << e.what();
    }
}

TEST(IntGroupPack, BadParamsGiveTheCheckMessage) {
    EXPECT_EQ(kFormatIntGroup.check(8, 200, FormatParams{4, 128, false, false}),
              "group size 128 does not divide 200 input columns");
    EXPECT_EQ(kFormatIntGroup.check(8, 256, FormatParams{5, 128, false, false}),
              "int format: bits must be 2, 3 or 4 (got 5)");
    EXPECT_EQ(kFormatIntGroup.check(8, 256, FormatParams{4, 100, false, false}),
              "int format: group size must be 32, 64, 128 or 256 (got 100)");
    EXPECT_EQ(kFormatIntGroup.check(8, 256, FormatParams{4, 0, false, false}),
              "int format: group size must be 32, 64, 128 or 256 (got 0)");
    EXPECT_EQ(kFormatIntGroup.check(8, 256, FormatParams{4, 128, true, true}), "");
    EXPECT_EQ(find_format("int"), &kFormatIntGroup);
    // pack_int_group reports the same reason, and bad data.
    std::vector<uint8_t> codes(8 * 200, 0), zeros(8 * 2, 0);
    std::vector<uint16_t> scales(8 * 2, 0x3c00);
    try {
        pack_int_group(8, 200, FormatParams{4, 128, false, false}, codes, scales, zeros, {});
        FAIL();
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "group size 128 does not divide 200 input columns");
    }
    Source s = make_source(2, 64, 2, 32, false, true, 4);
    s.g_idx[0] = s.g_idx[0] == 0 ? 1 : 0;  // one group gets 33 columns, the other 31
    EXPECT_THROW(pack(s), Error);
    s = make_source(2, 64, 2, 32, false, false, 4);
    s.codes[5] = 4;  // does not fit in 2 bits
    EXPECT_THROW(pack(s), Error);
}

// ---- GEMV ------------------------------------------------------------------------------------------

std::vector<float> make_x(int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<size_t>(cols));
    for (auto& v : x) v = nd(rng) * ((rng() % 97) == 0 ? 30.0f : 1.0f);  // a few outliers, as in LLM activations
    return x;
}

std::vector<float> run_gemv(const PackedWeight& w, const std::vector<float>& x, SimdLevel level, IntGemvVariant v) {
    set_simd_level(level);
    set_int_group_gemv_variant(v);
    std::vector<float> y(size_t(w.rows), NAN);
    w.format->gemv(w, x.data(), y.data());
    return y;
}

// x̂ as the int8 path sees it, in original column order: quantized per block of the kernel's column order
// (groups made contiguous by g_idx, stable).
std::vector<float> quantized_x(const Source& s, const std::vector<float>& x, int block) {
    std::vector<int32_t> perm(size_t(s.cols));
    std::iota(perm.begin(), perm.end(), 0);
    if (s.p.g_idx)
        std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return s.g_idx[size_t(a)] < s.g_idx[size_t(b)]; });
    std::vector<float> xp(size_t(s.cols)), d(size_t(s.cols / block)), xhat(size_t(s.cols));
    for (int64_t k = 0; k < s.cols; ++k) xp[size_t(k)] = x[size_t(perm[size_t(k)])];
    std::vector<int8_t> xq(size_t(s.cols));
    std::vector<int32_t> sx(d.size());
    cpu::int_group_quantize_act_scalar(xp.data(), s.cols, block, xq.data(), d.data(), sx.data());
    for (int64_t k = 0; k < s.cols; ++k) xhat[size_t(perm[size_t(k)])] = d[size_t(k / block)] * float(xq[size_t(k)]);
    return xhat;
}

void check_gemv(const Config& c, uint32_t seed) {
    const Source s = make_source(c.rows, c.cols, c.bits, c.group, c.sym, c.gidx, seed);
    const PackedWeight w = pack(s);
    const std::vector<float> wf = expected_weights(s);
    const std::vector<float> x = make_x(c.cols, seed * 7 + 1);
    for (IntGemvVariant variant : {IntGemvVariant::Int8Act32, IntGemvVariant::Int8ActGroup, IntGemvVariant::F32Act, IntGemvVariant::Int8RowBlocks}) {
        const int block = variant == IntGemvVariant::Int8ActGroup || variant == IntGemvVariant::Int8RowBlocks ? c.group : 32;
        const bool f32_path = variant == IntGemvVariant::F32Act && c.group >= 64;  // (AVX-512 only)
        const std::vector<float> xhat = quantized_x(s, x, block);
        const std::vector<float> scalar = run_gemv(w, x, SimdLevel::Scalar, variant);
        for (SimdLevel level : available_levels()) {
            const std::vector<float> y = run_gemv(w, x, level, variant);
            const bool exact_f32 = f32_path && level == SimdLevel::Avx512;
            for (int64_t r = 0; r < c.rows; ++r) {
                const float* wr = wf.data() + r * c.cols;
                double ref = 0, mag = 0, bound = 0, half_step = 0, qmag = 0;
                for (int64_t i = 0; i < c.cols; ++i) {
                    ref += double(wr[i]) * x[size_t(i)];
                    mag += std::abs(double(wr[i]) * x[size_t(i)]);
                    qmag += std::abs(double(wr[i]) * xhat[size_t(i)]);
                    bound += std::abs(double(wr[i])) * std::abs(double(x[size_t(i)]) - xhat[size_t(i)]);
                }
                const std::string where = name(c) + " " + int_group_gemv_variant_name(variant) + " level " +
                                          simd_level_name(level) + " row " + std::to_string(r);
                if (exact_f32) {  // f32 activations: only f32 rounding
                    ASSERT_LE(std::abs(y[size_t(r)] - ref), 1e-5 * mag + 1e-30) << where;
                    continue;
                }
                // Same int8 math as the scalar reference: equal within 1e-5 relative (to Σ|ŵ x̂|).
                ASSERT_LE(std::abs(double(y[size_t(r)]) - scalar[size_t(r)]), 1e-5 * qmag + 1e-30) << where;
                // Against f32: y_int8 = Σ ŵ_i x̂_i exactly (up to rounding), so |y − Σ ŵ x| ≤ Σ |ŵ_i| |x_i − x̂_i|.
                ASSERT_LE(std::abs(double(y[size_t(r)]) - ref), bound + 1e-5 * (mag + qmag) + 1e-30) << where;
                (void)half_step;
            }
        }
    }
}

TEST(IntGroupGemv, EveryPathMatchesTheReferences) {
    LevelGuard guard;
    uint32_t seed = 1000;
    for (const Config& c : all_configs()) check_gemv(c, seed++);
}

TEST(IntGroupGemv, LargerShapes) {
    LevelGuard guard;
    // Row counts that leave remainders for every row step; columns across several groups.
    check_gemv({4, 128, false, false, 67, 4096}, 1);
    check_gemv({2, 128, false, false, 45, 1024}, 2);
    check_gemv({3, 128, false, true, 33, 1024}, 3);
    check_gemv({3, 32, true, false, 19, 1056}, 4);
    check_gemv({4, 256, true, true, 21, 2048}, 5);
}

TEST(IntGroupGemv, ActivationBoundIsTight) {
    // The derived bound Σ_i |ŵ_i| |x_i − x̂_i| is at most Σ_i |ŵ_i| d_k / 2; for Gaussian activations it is
    // well under 1% of Σ_i |ŵ_i x_i|, so the comparison with the f32 reference is a real check.
    LevelGuard guard;
    for (int block : {32, 128}) {
        const Source s = make_source(16, 1024, 4, 128, false, false, 42);
        const PackedWeight w = pack(s);
        const std::vector<float> wf = expected_weights(s);
        std::mt19937 rng(43);
        std::normal_distribution<float> nd;
        std::vector<float> x(1024);
        for (auto& v : x) v = nd(rng);
        const std::vector<float> xhat = quantized_x(s, x, block);
        const std::vector<float> y = run_gemv(w, x, available_levels().back(),
                                              block == 32 ? IntGemvVariant::Int8Act32 : IntGemvVariant::Int8ActGroup);
        for (int64_t r = 0; r < 16; ++r) {
            double ref = 0, bound = 0, mag = 0;
            for (int64_t i = 0; i < 1024; ++i) {
                const double wi = wf[size_t(r * 1024 + i)];
                ref += wi * x[size_t(i)];
                mag += std::abs(wi * x[size_t(i)]);
                bound += std::abs(wi) * std::abs(double(x[size_t(i)]) - xhat[size_t(i)]);
            }
            EXPECT_LE(std::abs(y[size_t(r)] - ref), bound + 1e-5 * mag);
            EXPECT_LE(bound, 0.01 * mag) << "block " << block << " row " << r;
        }
    }
}

// ---- GEMM --------------------------------------------------------------------------------------------

TEST(IntGroupGemm, PackedGemmMatchesDoubleReference) {
    LevelGuard guard;
    uint32_t seed = 7;
    for (const Config& c : std::vector<Config>{{4, 128, false, false, 67, 512},
                                               {3, 64, true, false, 40, 640},
                                               {2, 32, false, false, 33, 352},
                                               {4, 128, false, true, 35, 768},
                                               {3, 256, false, false, 70, 1024}}) {
        const Source s = make_source(c.rows, c.cols, c.bits, c.group, c.sym, c.gidx, seed++);
        const PackedWeight w = pack(s);
        EXPECT_EQ(w.format->gemm, &gemm_packed);
        const std::vector<float> wf = expected_weights(s);
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
                            << name(c) << " n=" << n << " level " << simd_level_name(level) << " token " << t
                            << " row " << r;
                    }
            }
        }
    }
}

}  // namespace
}  // namespace planeq::test
