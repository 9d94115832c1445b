// KV-cache quantization (SINKS.md §4, §7.6): the group format's error bound, fp16 sinks bit-exact,
// bits per element on the stored cache, and quantized-KV attention equal to dequantize-then-attend
// (scalar, AVX2 and AVX-512 kernels).
#include <gtest/gtest.h>

#include <cmath>

#include "core/cpu_features.hpp"
#include "core/error.hpp"
#include "core/half.hpp"
#include "kernels/cpu/kv_attention.hpp"
#include "model/kv_quant.hpp"
#include "model/rope.hpp"
#include "model/slot_cache.hpp"
#include "quant/calibration.hpp"

namespace planeq {
namespace {

TEST(KvQuant, ErrorWithinHalfAStep) {
    PortableRng rng(1);
    for (int bits : {8, 4, 2})
        for (int group : {16, 32, 64}) {
            std::vector<float> x(128), y(128);
            for (int trial = 0; trial < 50; ++trial) {
                const double scale = std::pow(10.0, rng.uniform() * 4 - 2);
                for (auto& v : x) v = float(rng.normal() * scale + (trial % 3) * scale);
                if (trial == 7) std::fill(x.begin(), x.begin() + group, 0.37f);  // a constant group
                std::vector<uint8_t> codes(size_t(kvq::code_bytes(128, bits)));
                std::vector<uint16_t> prm(size_t(kvq::param_count(128, group)));
                kvq::quantize(x.data(), 128, bits, group, codes.data(), prm.data());
                kvq::dequantize(codes.data(), prm.data(), 128, bits, group, y.data());
                for (int64_t i = 0; i < 128; ++i) {
                    const float s = f16_to_f32(prm[size_t(2 * (i / group))]);
                    const float m = f16_to_f32(prm[size_t(2 * (i / group) + 1)]);
                    const float tol = s > 0 ? s / 2 * 1.0001f + 1e-6f * std::abs(x[size_t(i)]) : std::abs(x[size_t(i)] - m);
                    ASSERT_LE(std::abs(y[size_t(i)] - x[size_t(i)]), tol + 1e-7f) << bits << "/" << group << " i=" << i;
                    EXPECT_LE(m, x[size_t(i)] + (s > 0 ? 0.0f : std::abs(x[size_t(i)]) * 1e-3f));
                }
            }
        }
}

TEST(KvQuant, RoundingHelpersBracket) {
    for (float x : {0.1f, -0.1f, 1e-6f, -1e-6f, 3.14159f, -65000.f, 70000.f, 0.0f}) {
        EXPECT_LE(f16_to_f32(kvq::f16_round_down(x)), x);
        EXPECT_GE(f16_to_f32(kvq::f16_round_up(x)), std::min(x, 65504.0f));
    }
}

ModelConfig cfg(int64_t hd) {
    ModelConfig c;
    c.hidden = 128, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = hd, c.vocab = 16, c.intermediate = 64;
    c.max_position = 4096;
    return c;
}

// Stored bytes follow the formula (b + 32/G bits per element; fp16 for kept tokens).
TEST(KvQuant, BitsPerElementOnTheStoredCache) {
    const ModelConfig c = cfg(64);
    for (int bits : {8, 4, 2})
        for (int group : {32, 64}) {
            CacheOptions o;
            o.kv_bits = bits, o.kv_group = group, o.keep_sinks = 3;
            SlotCache cache(c, o, 100);
            const double elems = 2.0 * double(c.n_layers) * double(c.kv_dim());
            EXPECT_DOUBLE_EQ(cache.bytes_per_token() * 8 / elems, kvq::bits_per_element(bits, group));
            EXPECT_EQ(double(cache.bytes()), cache.bytes_per_token() * 97 + elems * 2 * 3);
        }
}

// Query over a mixed fp16 + quantized cache, kernel vs dequantize (SlotCache::read) → rotate → attend in f64.
TEST(KvQuant, AttentionEqualsDequantizeThenAttend) {
    PortableRng rng(9);
    for (int64_t hd : {32, 64, 128})
        for (int bits : {8, 4, 2})
            for (int group : {16, 32}) {
                const ModelConfig c = cfg(hd);
                CacheOptions o;
                o.mode = CacheMode::Streaming, o.sinks = 3, o.window = 40, o.kv_bits = bits, o.kv_group = group, o.keep_sinks = 2;
                SlotCache cache(c, o, 0);
                Rope rope(c.rope, hd, 64);
                rope.reserve(cache.positions());
                std::vector<float> k(size_t(c.kv_dim())), v(k.size()), kk(k.size()), vv(k.size());
                for (int64_t t = 0; t < 90; ++t) {
                    for (auto& x : k) x = float(rng.normal() * 3);
                    for (auto& x : v) x = float(rng.normal());
                    if (t == 0) k[0] = 40.0f;  // a sink-like outlier
                    for (int64_t l = 0; l < 2; ++l) cache.write(l, t, k.data(), v.data());
                    if (t == 0) {  // protected tokens are bit-exact fp16
                        cache.read(1, 0, kk.data(), vv.data());
                        for (size_t i = 0; i < k.size(); ++i) ASSERT_EQ(kk[i], f16_to_f32(f32_to_f16(k[i])));
                    }
                }
                const SlotCache::View view = cache.view(89);
                std::vector<float> q(static_cast<size_t>(hd));
                for (auto& x : q) x = float(rng.normal());
                for (int64_t head = 0; head < 2; ++head) {
                    std::vector<double> s, acc(size_t(hd), 0.0);
                    std::vector<std::vector<float>> vals;
                    for (int r = 0; r < view.runs; ++r)
                        for (int64_t j = 0; j < view.count[r]; ++j) {
                            cache.read(1, view.slot[r] + j, kk.data(), vv.data());
                            float* kh = kk.data() + head * hd;
                            rope.apply(kh, view.pos0[r] + j);
                            double d = 0;
                            for (int64_t i = 0; i < hd; ++i) d += double(q[size_t(i)]) * kh[i];
                            s.push_back(d / std::sqrt(double(hd)));
                            vals.emplace_back(vv.begin() + head * hd, vv.begin() + (head + 1) * hd);
                        }
                    const double mx = *std::max_element(s.begin(), s.end());
                    double z = 0;
                    for (double& x : s) z += x = std::exp(x - mx);
                    for (size_t j = 0; j < s.size(); ++j)
                        for (int64_t i = 0; i < hd; ++i) acc[size_t(i)] += s[j] / z * vals[j][size_t(i)];
                    const SimdLevel detected = simd_level();
                    for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512}) {
                        if (int(level) > int(detected)) continue;
                        set_simd_level(level);
                        cpu::KvRun runs[6];
                        const int nr = cache.runs(view, 1, head, runs);
                        EXPECT_EQ(nr, 4);  // fp16 sinks, the quantized sink, the window in two pieces
                        std::vector<float> scores(static_cast<size_t>(view.length)), out(static_cast<size_t>(hd));
                        const cpu::KvAttnParams kp = cache.kernel_params(rope);
                        EXPECT_EQ(cpu::kv_vectorized(kp), level != SimdLevel::Scalar);  // the level's own kernels ran
                        cpu::kv_attend(kp, q.data(), runs, nr, scores.data(), out.data());
                        set_simd_level(detected);
                        for (int64_t i = 0; i < hd; ++i)
                            ASSERT_NEAR(out[size_t(i)], acc[size_t(i)], 2e-5) << "hd=" << hd << " bits=" << bits << " g=" << group << " level="
                                                                             << int(level) << " i=" << i;
                    }
                }
            }
}

// Keys stored already rotated (the full cache: KvAttnParams without RoPE tables) in a strided run: plain
// scaled dot products, softmax and the weighted sum of values, against fp64 (scalar, AVX2 and AVX-512 kernels).
TEST(KvAttention, RotatedKeysWithoutTablesEqualDoubleReference) {
    PortableRng rng(4);
    for (int64_t hd : {32, 64, 80, 128})
        for (int64_t count : {1, 7, 100}) {
            const int64_t stride = 3 * hd;  // three KV heads a position; this run is the middle one
            std::vector<float> kv(static_cast<size_t>(2 * count * stride)), q(static_cast<size_t>(hd));
            for (auto& x : kv) x = float(rng.normal() * 2);
            for (auto& x : q) x = float(rng.normal());
            const float* k = kv.data() + hd;
            const float* v = kv.data() + count * stride + hd;
            std::vector<double> s(static_cast<size_t>(count)), ref(static_cast<size_t>(hd), 0.0);
            double mx = -1e300, z = 0;
            for (int64_t j = 0; j < count; ++j) {
                double d = 0;
                for (int64_t i = 0; i < hd; ++i) d += double(q[size_t(i)]) * k[j * stride + i];
                mx = std::max(mx, s[size_t(j)] = d / std::sqrt(double(hd)));
            }
            for (double& x : s) z += x = std::exp(x - mx);
            for (int64_t j = 0; j < count; ++j)
                for (int64_t i = 0; i < hd; ++i) ref[size_t(i)] += s[size_t(j)] / z * v[j * stride + i];
            const cpu::KvAttnParams p{hd, 0, 0, nullptr, nullptr, float(1.0 / std::sqrt(double(hd)))};
            const cpu::KvRun run{cpu::KvStore::F32, k, v, nullptr, nullptr, stride, 0, count, 0};
            const SimdLevel detected = simd_level();
            for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512}) {
                if (int(level) > int(detected)) continue;
                set_simd_level(level);
                EXPECT_EQ(cpu::kv_vectorized(p), level != SimdLevel::Scalar);
                std::vector<float> scores(static_cast<size_t>(count)), out(static_cast<size_t>(hd));
                cpu::kv_attend(p, q.data(), &run, 1, scores.data(), out.data());
                set_simd_level(detected);
                for (int64_t i = 0; i < hd; ++i)
                    ASSERT_NEAR(out[size_t(i)], ref[size_t(i)], 2e-5) << "hd=" << hd << " count=" << count << " level=" << int(level);
            }
        }
}

TEST(KvQuant, BadOptionsAreRejected) {
    const ModelConfig c = cfg(64);
    auto bad = [&](CacheOptions o) { EXPECT_THROW(validate_cache_options(o, c), Error); };
    CacheOptions o;
    o.kv_bits = 3;
    bad(o);
    o = {};
    o.kv_bits = 4, o.kv_group = 48;
    bad(o);
    o = {};
    o.mode = CacheMode::Streaming, o.sinks = 8, o.window = 4;
    bad(o);
    o = {};
    o.mode = CacheMode::Window;  // no window
    bad(o);
    o = {};
    o.mode = CacheMode::Streaming, o.sinks = 2, o.window = 16, o.kv_bits = 4, o.keep_sinks = 4;  // keeps more than it pins
    bad(o);
    o = {};
    o.mode = CacheMode::Streaming, o.sinks = 4, o.window = 16, o.kv_bits = 4, o.keep_sinks = 4;
    EXPECT_NO_THROW(validate_cache_options(o, c));
}

}  // namespace
}  // namespace planeq
