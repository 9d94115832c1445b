// Calibration data: random fixed-length segments of a tokenized text (GPTQ's recipe: 128 random
// 2048-token windows of C4; for the local models 128 × 512 tokens of their training text).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace planeq {

// n segments of len ids at uniformly random starts (seed-deterministic, portable across platforms);
// with bos >= 0 every segment's first id is replaced by BOS, as the model saw in training.
std::vector<std::vector<int32_t>> calibration_segments(std::span<const int32_t> ids, int64_t n, int64_t len, uint64_t seed,
                                                       int32_t bos);

// A portable uniform integer in [0, bound) (rejection sampling on splitmix64): std::uniform_int_distribution
// differs between standard libraries, and the same seed must give the same file everywhere.
struct PortableRng {
    uint64_t state;
    explicit PortableRng(uint64_t seed) : state(seed) {}
    uint64_t next();
    uint64_t below(uint64_t bound);
    double uniform();  // [0, 1)
    double normal();   // standard normal (Box–Muller)
};

}  // namespace planeq
