// The bandwidth measurements bench judges decode against: plausible rates from the STREAM pair and from the
// probe sampled beside each decode token, for sizes that are and are not a multiple of the four read chains.
#include <gtest/gtest.h>

#include <cmath>

#include "core/bandwidth.hpp"

namespace planeq {
namespace {

// Any machine this runs on reads memory faster than 0.05 GB/s and slower than 10 TB/s; a rate outside that is
// a wrong byte count or a timer misuse, not a slow machine.
void expect_plausible(double gbs) {
    EXPECT_TRUE(std::isfinite(gbs));
    EXPECT_GT(gbs, 0.05);
    EXPECT_LT(gbs, 1e4);
}

TEST(Bandwidth, StreamPairIsPlausible) {
    const Bandwidth b = measure_bandwidth(size_t(16) << 20, 2);
    expect_plausible(b.copy_gbs);
    expect_plausible(b.read_gbs);
}

TEST(Bandwidth, ReadProbeSamplesArePlausible) {
    for (size_t bytes : {size_t(8) << 20, (size_t(8) << 20) + 40}) {  // the second: not a multiple of 32 bytes
        const ReadProbe probe(bytes);
        for (int i = 0; i < 3; ++i) expect_plausible(probe.sample_gbs());
    }
}

}  // namespace
}  // namespace planeq
