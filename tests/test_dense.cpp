// Dense f32 / bf16 / f16 GEMV (the bf16 checkpoint's own path and every lm_head): every SIMD level against a
// double-precision dot product of the dequantized weights, on shapes with row tails (not a multiple of the
// 4-row unroll) and column tails (not a multiple of 16).
#include <cmath>
#include <cstring>
#include <random>

#include "core/cpu_features.hpp"
#include "core/half.hpp"
#include "formats/dense.hpp"
#include "test_util.hpp"

namespace planeq::test {
namespace {

PackedWeight random_dense(DType dtype, int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    const size_t n = size_t(rows * cols), esize = dtype == DType::F32 ? 4 : 2;
    std::vector<uint8_t> bytes(n * esize);
    for (size_t i = 0; i < n; ++i) {
        const float v = nd(rng);
        if (dtype == DType::F32) std::memcpy(bytes.data() + 4 * i, &v, 4);
        else {
            const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
            std::memcpy(bytes.data() + 2 * i, &h, 2);
        }
    }
    PackedWeight pw;
    pw.format = &dense_format_for(dtype);
    pw.rows = rows;
    pw.cols = cols;
    pw.add_part(PartSpec{"weight", dtype, {rows, cols}}, {bytes.data(), bytes.size()});
    return pw;
}

struct Restore {
    SimdLevel level = simd_level();
    ~Restore() { set_simd_level(level); }
};

TEST(DenseGemv, EveryKernelMatchesDoubleReference) {
    Restore restore;
    const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {7, 31}, {5, 33}, {13, 64}, {4, 48}, {37, 100}, {9, 4097}, {66, 511}};
    for (DType dtype : {DType::F32, DType::BF16, DType::F16})
        for (auto [rows, cols] : shapes) {
            const PackedWeight w = random_dense(dtype, rows, cols, uint32_t(rows * 131 + cols));
            std::vector<float> wf(static_cast<size_t>(rows * cols)), x(static_cast<size_t>(cols));
            w.format->dequantize_rows(w, 0, rows, wf.data());
            std::mt19937 rng{static_cast<uint32_t>(cols)};
            std::normal_distribution<float> nd;
            for (auto& v : x) v = nd(rng);
            for (SimdLevel level : available_levels()) {
                set_simd_level(level);
                std::vector<float> y(size_t(rows), NAN);
                w.format->gemv(w, x.data(), y.data());
                for (int64_t r = 0; r < rows; ++r) {
                    double ref = 0, mag = 0;
                    for (int64_t c = 0; c < cols; ++c) {
                        ref += double(wf[size_t(r * cols + c)]) * x[size_t(c)];
                        mag += std::fabs(double(wf[size_t(r * cols + c)]) * x[size_t(c)]);
                    }
                    // f32 accumulation in a different order: relative to Σ|w·x| (the sum's own scale).
                    ASSERT_NEAR(y[size_t(r)], ref, 1e-5 * mag + 1e-30)
                        << dtype_name(dtype) << " " << rows << "x" << cols << " row " << r << " level "
                        << simd_level_name(simd_level());
                }
            }
        }
}

}  // namespace
}  // namespace planeq::test
