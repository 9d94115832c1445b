#include "quant/hessian.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.hpp"
#include "core/scratch.hpp"
#include "kernels/cpu/gemm_f32.hpp"
#include "quant/device.hpp"

namespace planeq {

HessianAccumulator::HessianAccumulator(int64_t cols, const QuantDevice* device) : cols_(cols) {
    if (device) dev_ = device->hessian_sum(cols);
    else sum_.assign(size_t(cols * cols), 0.0f);
}

HessianAccumulator::~HessianAccumulator() = default;

void HessianAccumulator::add(const float* x, int64_t n, const float* row_weights) {
    const int64_t C = cols_;
    // H += xᵀ · diag(w) · x = Σ_t w_t·x_t x_tᵀ. The GEMM reads x transposed in place (a_trans), so the
    // only extra passes are contiguous: max |x|, and the weighted copy when there are row weights.
    const int64_t TB = 64;  // tokens per parallel item
    const int64_t items = (n + TB - 1) / TB;
    std::vector<float> item_max(size_t(items), 0.0f);
    const float* xw = x;
    float* weighted = row_weights ? scratch_floats(size_t(C * n), 4) : nullptr;
    parallel_for(items, C * n > 65536, [&](int64_t b) {
        float mx = 0.0f;
        for (int64_t t = b * TB; t < std::min(n, b * TB + TB); ++t) {
            const float* xr = x + t * C;
            for (int64_t c = 0; c < C; ++c) mx = std::max(mx, std::abs(xr[c]));
            if (weighted)
                for (int64_t c = 0; c < C; ++c) weighted[t * C + c] = xr[c] * row_weights[t];
        }
        item_max[size_t(b)] = mx;
    });
    if (weighted) xw = weighted;
    for (float m : item_max) max_abs_ = std::max(max_abs_, m);
    count_ += double(n);  // N counts tokens; row weights only reshape their shares
    if (dev_) {
        dev_->add(x, weighted, n);
        return;
    }
    // Upper block triangle: rows [i0, i0 + T) against columns [i0, C).
    const int64_t T = 256;
    for (int64_t i0 = 0; i0 < C; i0 += T) {
        const int64_t rows = std::min(T, C - i0);
        cpu::gemm_f32(rows, C - i0, n, x + i0, C, cpu::BOperand{xw + i0, DType::F32, C, false}, sum_.data() + i0 * C + i0, C,
                      /*accumulate=*/true, /*threads=*/0, /*a_trans=*/true);
    }
}

std::vector<double> HessianAccumulator::finalize() const {
    const int64_t C = cols_;
    std::vector<double> h(size_t(C * C));
    const std::vector<float> dev_sum = dev_ ? dev_->sum() : std::vector<float>{};
    const std::vector<float>& sum = dev_ ? dev_sum : sum_;
    const double scale = count_ > 0 ? 2.0 / count_ : 0.0;
    for (int64_t i = 0; i < C; ++i)
        for (int64_t j = 0; j < C; ++j)  // only the upper triangle (row ≤ column) was accumulated
            h[size_t(i * C + j)] = double(sum[size_t(std::min(i, j) * C + std::max(i, j))]) * scale;
    return h;
}

}  // namespace planeq
