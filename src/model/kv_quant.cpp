#include "model/kv_quant.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.hpp"

namespace planeq::kvq {

namespace {
constexpr uint16_t kF16MaxFinite = 0x7bff;
uint16_t finite(uint16_t h) {  // ±inf → ±max finite (KV values beyond 65504 are clipped, not lost)
    return (h & 0x7fffu) == 0x7c00u ? uint16_t((h & 0x8000u) | kF16MaxFinite) : h;
}
}  // namespace

uint16_t f16_round_down(float x) {
    uint16_t h = finite(f32_to_f16(x));
    if (f16_to_f32(h) <= x) return h;
    if (h & 0x8000u) return (h & 0x7fffu) == kF16MaxFinite ? h : uint16_t(h + 1);  // negative: larger magnitude
    return h == 0 ? uint16_t(0x8001u) : uint16_t(h - 1);
}

uint16_t f16_round_up(float x) {
    uint16_t h = finite(f32_to_f16(x));
    if (f16_to_f32(h) >= x) return h;
    if (h & 0x8000u) return h == 0x8000u ? uint16_t(1) : uint16_t(h - 1);  // negative: smaller magnitude
    return h == kF16MaxFinite ? h : uint16_t(h + 1);
}

void quantize(const float* x, int64_t n, int bits, int group, uint8_t* codes, uint16_t* params) {
    const int qmax = (1 << bits) - 1;
    std::memset(codes, 0, size_t(code_bytes(n, bits)));
    for (int64_t g0 = 0; g0 < n; g0 += group) {
        float lo = x[g0], hi = x[g0];
        for (int64_t i = g0 + 1; i < g0 + group; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
        uint16_t m16, s16;
        if (hi == lo) {  // constant group: the minimum alone codes it
            m16 = finite(f32_to_f16(lo));
            s16 = 0;
        } else {
            m16 = f16_round_down(lo);
            s16 = f16_round_up((hi - f16_to_f32(m16)) / float(qmax));
        }
        const float m = f16_to_f32(m16), s = f16_to_f32(s16);
        const float inv = s > 0 ? 1.0f / s : 0.0f;
        for (int64_t i = g0; i < g0 + group; ++i) {
            const int q = s > 0 ? std::clamp(int(std::nearbyint((x[i] - m) * inv)), 0, qmax) : 0;
            const int64_t bit = i * bits;
            codes[bit >> 3] |= uint8_t(q << (bit & 7));
        }
        params[2 * (g0 / group)] = s16;
        params[2 * (g0 / group) + 1] = m16;
    }
}

void dequantize(const uint8_t* codes, const uint16_t* params, int64_t n, int bits, int group, float* out) {
    for (int64_t i = 0; i < n; ++i) {
        const float s = f16_to_f32(params[2 * (i / group)]), m = f16_to_f32(params[2 * (i / group) + 1]);
        out[i] = std::fma(s, float(code_at(codes, i, bits)), m);  // as the SIMD kernels (one rounding)
    }
}

}  // namespace planeq::kvq
