// Scalar int-group kernels: the reference of the int8-activation GEMV (double accumulation of the exact
// integer dots) and the activation quantizer every SIMD level reproduces bit for bit.
#include <algorithm>
#include <cmath>

#include "core/half.hpp"
#include "kernels/cpu/int_group_kernels.hpp"

namespace planeq::cpu {

void int_group_quantize_act_scalar(const float* x, int64_t cols, int block, int8_t* xq, float* d, int32_t* sx) {
    for (int64_t k = 0; k * block < cols; ++k) {
        const float* xb = x + k * block;
        float amax = 0.0f;
        for (int i = 0; i < block; ++i) amax = std::max(amax, std::fabs(xb[i]));
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int i = 0; i < block; ++i) {
            const float p = xb[i] * id;
            const int v = std::clamp(int(std::nearbyint(p)), -127, 127);  // round half to even, as cvtps2dq
            xq[k * block + i] = int8_t(v);
            sum += v;
        }
        d[k] = amax / 127.0f;
        sx[k] = sum;
    }
}

void int_group_gemv_rows_scalar(const IntGroupView& w, const Int8Act& a, int64_t r0, int64_t r1, float* y) {
    const int64_t g = w.group, A = a.block, blocks_per_group = g / A;
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = w.qweight + r * w.row_bytes();
        const uint16_t* s = w.scales + r * w.ngroups;
        const uint8_t* z = w.zeros + r * w.ngroups;
        double acc = 0.0;
        for (int64_t j = 0; j < w.ngroups; ++j) {
            double dot = 0.0;  // Σ_k d_k · Σ_i q_i xq_i
            for (int64_t kb = 0; kb < blocks_per_group; ++kb) {
                const int64_t k = j * blocks_per_group + kb;
                int32_t idot = 0;
                for (int64_t c = k * A; c < (k + 1) * A; ++c) idot += int_group_code(row, w.cols, w.bits, c) * a.xq[c];
                dot += double(a.d[k]) * idot;
            }
            const double sj = f16_to_f32(s[j]);
            acc += sj * dot - sj * double(z[j]) * double(a.zsum[j]);
        }
        y[r] = float(acc);
    }
}

}  // namespace planeq::cpu
