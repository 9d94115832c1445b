#include "quant/calibration.hpp"

#include <cmath>
#include <numbers>

#include "core/error.hpp"

namespace planeq {

uint64_t PortableRng::next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t PortableRng::below(uint64_t bound) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t v;
    do v = next();
    while (v >= limit);
    return v % bound;
}

double PortableRng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

double PortableRng::normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
}

std::vector<std::vector<int32_t>> calibration_segments(std::span<const int32_t> ids, int64_t n, int64_t len, uint64_t seed,
                                                       int32_t bos) {
    if (n <= 0 || len <= 1) fail("calibration needs at least one segment of at least 2 tokens");
    if (int64_t(ids.size()) <= len)
        fail("calibration text has " + std::to_string(ids.size()) + " tokens, too few for " + std::to_string(len) + "-token segments");
    PortableRng rng(seed);
    std::vector<std::vector<int32_t>> out;
    out.reserve(size_t(n));
    const uint64_t starts = uint64_t(ids.size()) - uint64_t(len);
    for (int64_t i = 0; i < n; ++i) {
        const auto s = int64_t(rng.below(starts));
        out.emplace_back(ids.begin() + s, ids.begin() + s + len);
        if (bos >= 0) out.back()[0] = bos;
    }
    return out;
}

}  // namespace planeq
