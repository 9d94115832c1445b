#include "model/rope.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.hpp"

namespace planeq {

namespace {

// transformers' _compute_yarn_parameters, with its defaults (truncate = true).
void yarn_inv_freq(const RopeConfig& c, int64_t dim, int64_t max_position, std::vector<float>& inv, float& attn) {
    const double base = c.theta;
    const double factor = c.factor;
    const double orig = c.original_max_position > 0 ? double(c.original_max_position) : double(max_position);
    auto correction_dim = [&](double rotations) {
        return (double(dim) * std::log(orig / (rotations * 2 * std::numbers::pi))) / (2 * std::log(base));
    };
    double low = std::floor(correction_dim(c.beta_fast));
    double high = std::ceil(correction_dim(c.beta_slow));
    low = std::max(low, 0.0);
    high = std::min(high, double(dim - 1));
    if (low == high) high += 0.001;
    attn = c.attention_factor > 0 ? float(c.attention_factor) : float(factor <= 1 ? 1.0 : 0.1 * std::log(factor) + 1.0);
    for (int64_t i = 0; i < dim / 2; ++i) {
        const float pos_freq = std::pow(float(base), float(2 * i) / float(dim));
        const float extrapolation = 1.0f / pos_freq;
        const float interpolation = 1.0f / (float(factor) * pos_freq);
        const float ramp = std::clamp(float((double(i) - low) / (high - low)), 0.0f, 1.0f);
        const float extrapolation_factor = 1.0f - ramp;
        inv[size_t(i)] = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
    }
}

}  // namespace

Rope::Rope(const RopeConfig& cfg, int64_t head_dim, int64_t max_position) : head_dim_(head_dim) {
    const int64_t half = head_dim / 2;
    inv_freq_.resize(size_t(half));
    if (cfg.type == "yarn") {
        yarn_inv_freq(cfg, head_dim, max_position, inv_freq_, attention_factor_);
    } else {
        for (int64_t i = 0; i < half; ++i)
            inv_freq_[size_t(i)] = 1.0f / std::pow(float(cfg.theta), float(2 * i) / float(head_dim));
        if (cfg.type == "linear") {
            for (float& f : inv_freq_) f /= float(cfg.factor);
        } else if (cfg.type == "llama3") {
            const double old_ctx = double(cfg.original_max_position);
            const double low_wavelen = old_ctx / cfg.low_freq_factor;
            const double high_wavelen = old_ctx / cfg.high_freq_factor;
            for (float& f : inv_freq_) {
                const double wavelen = 2 * std::numbers::pi / double(f);
                if (wavelen > low_wavelen) {
                    f = float(double(f) / cfg.factor);
                } else if (wavelen >= high_wavelen) {  // medium band: interpolate smoothly
                    const double smooth = (old_ctx / wavelen - cfg.low_freq_factor) / (cfg.high_freq_factor - cfg.low_freq_factor);
                    f = float((1 - smooth) * double(f) / cfg.factor + smooth * double(f));
                }
            }
        }
    }
    reserve(std::min<int64_t>(std::max<int64_t>(max_position, 1), 8192));
}

void Rope::reserve(int64_t n) const {
    if (n <= cached_) return;
    const int64_t half = head_dim_ / 2;
    cos_.resize(size_t(n * half));
    sin_.resize(size_t(n * half));
    for (int64_t p = cached_; p < n; ++p)
        for (int64_t i = 0; i < half; ++i) {
            const float angle = inv_freq_[size_t(i)] * float(p);  // one f32 rounding, as torch's f32 matmul
            cos_[size_t(p * half + i)] = float(std::cos(double(angle))) * attention_factor_;
            sin_[size_t(p * half + i)] = float(std::sin(double(angle))) * attention_factor_;
        }
    cached_ = n;
}

void Rope::apply(float* v, int64_t position) const {
    if (position >= cached_) fail("internal: rope table not reserved for position " + std::to_string(position));
    const int64_t half = head_dim_ / 2;
    const float* c = cos_.data() + position * half;
    const float* s = sin_.data() + position * half;
    for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
    }
}

}  // namespace planeq
