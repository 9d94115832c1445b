// STREAM-style memory bandwidth of this machine with the current OpenMP thread count: the baseline
// decode speed is judged against, measured in the same run as the benchmark.
#pragma once

#include <cstddef>

namespace planeq {

struct Bandwidth {
    double copy_gbs = 0;  // STREAM "Copy": (bytes read + bytes written) / s, median of the repetitions
    double read_gbs = 0;  // a read-only sum over the same array (what a weight-streaming GEMV does)
};

// Arrays of `bytes` each (≥ 1 GiB recommended, far beyond the caches).
Bandwidth measure_bandwidth(size_t bytes = size_t(1) << 30, int repetitions = 5);

}  // namespace planeq
