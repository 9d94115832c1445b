// Scalar bitplane GEMV: the reference of the int8 bit-serial math (exact integer plane sums, double
// combination), which every SIMD level is tested against.
#include "core/half.hpp"
#include "kernels/cpu/bitplane_kernels.hpp"

namespace planeq::cpu {

void bitplane_gemv_rows_scalar(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y) {
    const int k = w.k;
    const int64_t g = w.group;
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = w.planes + r * w.row_bytes();
        double acc = 0.0;
        for (int64_t j = 0; j < w.ngroups; ++j) {
            const uint16_t* cf = w.coefs + (r * w.ngroups + j) * (k + 1);
            double part = double(bf16_to_f32(cf[0])) * double(a.sx[j]);
            for (int m = 1; m <= k; ++m) {
                int32_t s = 0;  // S_{m,j}: Σ of the int8 activations where plane m is set
                for (int64_t c = j * g; c < (j + 1) * g; ++c)
                    if ((bitplane_mask(row, w.cols, k, c / 64, m) >> (c % 64)) & 1u) s += a.xq[c];
                part += double(bf16_to_f32(cf[m])) * double(s);
            }
            acc += double(a.d[j]) * part;
        }
        y[r] = float(acc);
    }
}

}  // namespace planeq::cpu
