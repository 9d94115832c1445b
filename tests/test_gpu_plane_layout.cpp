// The GPU plane layout's index math (src/kernels/cuda/plane_layout.hpp), checked on the CPU: this runs in CI
// (no GPU) and pins down the int8 decode path's permutation before any device time is spent on it.
//   - pack_plane matches the layout as originally written (word / k-step / register slots);
//   - the int8 B-fragment map is a bijection of the superchunk's 256 columns onto 4 lanes × 64 bytes, and
//     i8_col_byte inverts i8_byte_col;
//   - an emulation of the kernel (masks with no shift, mma.m16n8k32 fragment semantics, the Horner combine
//     of the MMA types at the group end) gives exactly Σ code · x for both rows of every lane, every bit width.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/cuda/plane_layout.hpp"

namespace planeq::cuda {
namespace {

// The layout's original definition (upload.cpp before plane_cell existed), as an independent reference.
std::vector<uint32_t> pack_plane_reference(const std::vector<uint8_t>& codes, int64_t R, int64_t C, int b) {
    const int words = 4 * b, per_word = 4 / b;
    const int64_t tiles = (R + 15) / 16, supers = (C + 255) / 256;
    std::vector<uint32_t> out(size_t(tiles * supers * 32 * words), 0u);
    auto code = [&](int64_t r, int64_t c) -> uint32_t { return r < R && c < C ? codes[size_t(r * C + c)] : 0u; };
    for (int64_t T = 0; T < tiles; ++T)
        for (int64_t S = 0; S < supers; ++S)
            for (int lane = 0; lane < 32; ++lane) {
                const int g = lane >> 2, t = lane & 3;
                for (int w = 0; w < words; ++w) {
                    uint32_t v = 0;
                    for (int j = 0; j < per_word; ++j) {
                        const int64_t ks = S * 16 + w * per_word + j;
                        for (int r = 0; r < 4; ++r) {
                            const int slot = j * 4 + r;
                            const int64_t row = T * 16 + g + 8 * (r & 1), col = ks * 16 + 2 * t + 8 * (r >> 1);
                            v |= code(row, col) << (b * slot);
                            v |= code(row, col + 1) << (16 + b * slot);
                        }
                    }
                    out[size_t(((T * supers + S) * 32 + lane) * words + w)] = v;
                }
            }
    return out;
}

std::vector<uint8_t> random_codes(int64_t n, int b, std::mt19937& rng) {
    std::vector<uint8_t> c(static_cast<size_t>(n));
    for (auto& v : c) v = uint8_t(rng() & ((1u << b) - 1));
    return c;
}

TEST(GpuPlaneLayout, PackPlaneMatchesTheOriginalDefinition) {
    std::mt19937 rng(1);
    for (int b : {1, 2, 4}) {
        const int64_t R = 37, C = 700;
        const std::vector<uint8_t> codes = random_codes(R * C, b, rng);
        EXPECT_EQ(pack_plane(codes, R, C, b, (R + 15) / 16, (C + 255) / 256), pack_plane_reference(codes, R, C, b)) << "b" << b;
    }
}

TEST(GpuPlaneLayout, Int8FragmentMapIsABijection) {
    for (int b : {1, 2, 4}) {
        std::vector<int> seen(256, 0);
        for (int t = 0; t < 4; ++t)
            for (int o = 0; o < kI8LaneBytes; ++o) {
                const int c = i8_byte_col(b, t, o);
                ASSERT_GE(c, 0);
                ASSERT_LT(c, 256);
                ++seen[size_t(c)];
                const I8Slot s = i8_col_byte(b, c);
                EXPECT_EQ(s.t, t) << "b" << b << " col " << c;
                EXPECT_EQ(s.offset, o) << "b" << b << " col " << c;
            }
        for (int c = 0; c < 256; ++c) EXPECT_EQ(seen[size_t(c)], 1) << "b" << b << " col " << c;
    }
}

// The int8 kernel's arithmetic on one 16 × 256 tile, lane by lane, with mma.m16n8k32's fragment layout:
// A a0/a2 row g, a1/a3 row g + 8, k = 4t + byte (a0, a1) and 16 + 4t + byte (a2, a3); B b0 k = 4t + byte,
// b1 k = 16 + 4t + byte, column g. Each lane's k slots meet only its own B bytes, so the row sum over the four
// lanes of a quad is Σ_t Σ_bytes. One B column (one activation vector) is enough to check the permutation.
TEST(GpuPlaneLayout, Int8MmaEmulationGivesTheExactDotProduct) {
    std::mt19937 rng(7);
    for (int b : {1, 2, 4}) {
        const int T = 4 / b, NP = 2 * b;  // MMA types per word pair, word pairs per superchunk
        const std::vector<uint8_t> codes = random_codes(16 * 256, b, rng);
        std::vector<int> x(256);
        for (int& v : x) v = int(rng() % 255) - 127;
        const std::vector<uint32_t> words = pack_plane(codes, 16, 256, b, 1, 1);
        // The prep's scatter: column c → (lane t, byte offset).
        std::vector<int8_t> xb(4 * kI8LaneBytes);
        for (int c = 0; c < 256; ++c) {
            const I8Slot s = i8_col_byte(b, c);
            xb[size_t(s.t * kI8LaneBytes + s.offset)] = int8_t(x[size_t(c)]);
        }
        auto byte = [](uint32_t v, int i) { return int((v >> (8 * i)) & 0xffu); };
        for (int g = 0; g < 8; ++g) {
            // Per word pair (the smallest group the path allows): both rows, combined as in the kernel.
            for (int p = 0; p < NP; ++p) {
                int64_t got[2] = {0, 0};
                int64_t acc[4][2] = {};  // [type][row half], summed over the quad's lanes
                for (int t = 0; t < 4; ++t) {
                    const uint32_t* w = words.data() + (g * 4 + t) * 4 * b;
                    for (int tau = 0; tau < T; ++tau) {
                        const int m = p * T + tau;
                        const uint32_t a[4] = {w[2 * p] & i8_class_mask(b, 2 * tau), w[2 * p] & i8_class_mask(b, 2 * tau + 1),
                                               w[2 * p + 1] & i8_class_mask(b, 2 * tau), w[2 * p + 1] & i8_class_mask(b, 2 * tau + 1)};
                        const int8_t* bb = xb.data() + t * kI8LaneBytes + 8 * m;
                        for (int i = 0; i < 4; ++i) {
                            acc[tau][0] += byte(a[0], i) * bb[i] + byte(a[2], i) * bb[4 + i];
                            acc[tau][1] += byte(a[1], i) * bb[i] + byte(a[3], i) * bb[4 + i];
                        }
                    }
                }
                for (int h = 0; h < 2; ++h) {
                    int64_t v = 0;  // Horner: Σ_τ acc_τ · 2^(2b(T−1−τ)) = 2^(8−2b) (row g) or 2^(8−b) (row g + 8) × the sum
                    for (int tau = 0; tau < T; ++tau) v = v * (int64_t(1) << (2 * b)) + acc[tau][h];
                    const int sh = h == 0 ? 8 - 2 * b : 8 - b;
                    ASSERT_EQ(v % (int64_t(1) << sh), 0) << "b" << b;
                    got[h] = v >> sh;
                }
                for (int h = 0; h < 2; ++h) {
                    int64_t want = 0;
                    const int cols = 128 / b;
                    for (int c = p * cols; c < (p + 1) * cols; ++c) want += int64_t(codes[size_t((g + 8 * h) * 256 + c)]) * x[size_t(c)];
                    EXPECT_EQ(got[h], want) << "b" << b << " row " << g + 8 * h << " pair " << p;
                }
            }
        }
    }
}

}  // namespace
}  // namespace planeq::cuda
