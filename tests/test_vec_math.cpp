// The vectorized exp reductions against f64 references.
#include <cmath>
#include <algorithm>
#include <iterator>
#include <random>

#include "core/cpu_features.hpp"
#include "kernels/cpu/vec_math.hpp"
#include "test_util.hpp"

namespace planeq::test {
namespace {

TEST(VecMath, ExpShiftSumAndLogSumExpMatchF64) {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 6.0f);
    for (int64_t n : {1, 7, 16, 17, 100, 8192}) {
        std::vector<float> x(static_cast<size_t>(n));
        for (float& v : x) v = nd(rng);
        x[0] = -200.0f;  // underflows to exactly 0
        double mx = -1e300, ref = 0;
        for (float v : x) mx = std::max(mx, double(v));
        for (float v : x) ref += std::exp(double(v) - mx);
        const double ref_lse = mx + std::log(ref);
        for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512}) {
            set_simd_level(level);  // capped at what this CPU has: a level it lacks repeats the one below
            EXPECT_NEAR(cpu::log_sum_exp(x.data(), n), ref_lse, 1e-13 * std::max(1.0, std::abs(ref_lse))) << n;
            std::vector<float> y = x;
            const double s = cpu::exp_shift_sum(y.data(), n, float(mx));
            EXPECT_NEAR(s, ref, 4e-7 * ref) << n;
            // The kernel subtracts the shift in f32 (as the callers do), so compare exp on that argument:
            // what is left is the polynomial's own error.
            for (int64_t i = 0; i < n; ++i) {
                const double e = std::exp(double(x[size_t(i)] - float(mx)));
                EXPECT_NEAR(y[size_t(i)], e, 3e-7 * e + 1e-38) << n << " " << i;
            }
            if (n > 1) EXPECT_EQ(y[0], 0.0f);  // exp(-200 - max) underflows
        }
        set_simd_level(SimdLevel::Avx512);
    }
}

// silu(g)·up against the f64 formula, on normal values, the tails where exp over- or underflows, and ±0.
TEST(VecMath, SiluMulMatchesF64) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 4.0f);
    for (int64_t n : {1, 15, 16, 33, 14336}) {
        std::vector<float> g(static_cast<size_t>(n)), up(static_cast<size_t>(n));
        for (size_t i = 0; i < g.size(); ++i) g[i] = nd(rng), up[i] = nd(rng);
        const float special[] = {0.0f, -0.0f, 87.0f, 88.0f, 100.0f, -87.0f, -88.5f, -100.0f, -1e4f, 1e4f};
        for (size_t i = 0; i < std::min(g.size(), std::size(special)); ++i) g[i] = special[i];
        for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512}) {
            set_simd_level(level);
            std::vector<float> y = g;
            cpu::silu_mul(y.data(), up.data(), n);
            for (size_t i = 0; i < g.size(); ++i) {
                const double ref = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * up[i];
                EXPECT_NEAR(y[i], ref, 4e-7 * std::abs(ref) + 1e-30) << simd_level_name(level) << " n " << n << " g " << g[i];
            }
        }
        set_simd_level(SimdLevel::Avx512);
    }
}

}  // namespace
}  // namespace planeq::test
