#include "quant/hessian.hpp"

#include <algorithm>
#include <cmath>

#include "core/scratch.hpp"
#include "kernels/cpu/gemm_f32.hpp"

namespace planeq {

HessianAccumulator::HessianAccumulator(int64_t cols) : cols_(cols), sum_(size_t(cols * cols), 0.0f) {}

void HessianAccumulator::add(const float* x, int64_t n, const float* row_weights) {
    const int64_t C = cols_;
    // xt = (diag(w)·x)ᵀ, [C × n], so that H += xt · x = Σ_t w_t·x_t x_tᵀ.
    float* xt = scratch_floats(size_t(C * n), 4);
    for (int64_t t = 0; t < n; ++t) {
        const float w = row_weights ? row_weights[t] : 1.0f;
        for (int64_t c = 0; c < C; ++c) {
            const float v = x[t * C + c];
            max_abs_ = std::max(max_abs_, std::abs(v));
            xt[c * n + t] = v * w;
        }
    }
    count_ += double(n);  // N counts tokens; row weights only reshape their shares
    // Upper block triangle: rows [i0, i0 + T) against columns [i0, C).
    const int64_t T = 256;
    for (int64_t i0 = 0; i0 < C; i0 += T) {
        const int64_t rows = std::min(T, C - i0);
        cpu::gemm_f32(rows, C - i0, n, xt + i0 * n, n, cpu::BOperand{x + i0, DType::F32, C, false}, sum_.data() + i0 * C + i0, C,
                      /*accumulate=*/true);
    }
}

std::vector<double> HessianAccumulator::finalize() const {
    const int64_t C = cols_;
    std::vector<double> h(size_t(C * C));
    const double scale = count_ > 0 ? 2.0 / count_ : 0.0;
    for (int64_t i = 0; i < C; ++i)
        for (int64_t j = 0; j < C; ++j)  // only the upper triangle (row ≤ column) was accumulated
            h[size_t(i * C + j)] = double(sum_[size_t(std::min(i, j) * C + std::max(i, j))]) * scale;
    return h;
}

}  // namespace planeq
