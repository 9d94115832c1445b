// The uniform b-bit grid of GPTQ.md §2/§5: per (row, group) scale s (rounded to fp16 at once, so the
// quantizer uses exactly the stored value) and zero point z; q = clamp(round(w/s) + z, 0, maxq),
// ŵ = s·(q − z). Rounding is to nearest, ties to even (torch.round).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/half.hpp"

namespace planeq {

struct GridParams {
    float scale = 1.0f;  // fp16-representable
    uint8_t zero = 0;
};

struct UniformGrid {
    int bits = 4;
    bool sym = false;
    int maxq() const { return (1 << bits) - 1; }

    // Parameters from the value range of a group (min-max, the range always includes 0).
    GridParams fit(float vmin, float vmax) const {
        float xmin = std::min(vmin, 0.0f), xmax = std::max(vmax, 0.0f);
        if (sym) {
            xmax = std::max(-xmin, xmax);
            xmin = -xmax;
        }
        if (xmin == 0.0f && xmax == 0.0f) {
            xmin = -1.0f;
            xmax = 1.0f;
        }
        GridParams p;
        p.scale = round_to_f16((xmax - xmin) / float(maxq()));
        if (p.scale == 0.0f) p.scale = f16_to_f32(1);  // range below fp16's smallest subnormal
        if (sym) p.zero = uint8_t((maxq() + 1) / 2);
        else p.zero = uint8_t(std::clamp(std::nearbyint(-xmin / p.scale), 0.0f, float(maxq())));
        return p;
    }
    uint8_t code(float w, const GridParams& p) const {
        return uint8_t(std::clamp(std::nearbyint(w / p.scale) + float(p.zero), 0.0f, float(maxq())));
    }
    static float value(uint8_t q, const GridParams& p) { return p.scale * float(int(q) - int(p.zero)); }
};

}  // namespace planeq
