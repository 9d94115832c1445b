// STREAM-style memory bandwidth of this machine with the current OpenMP thread count: the baseline
// decode speed is judged against, measured in the same run as the benchmark.
#pragma once

#include <cstddef>
#include <memory>

namespace planeq {

struct Bandwidth {
    double copy_gbs = 0;  // STREAM "Copy": (bytes read + bytes written) / s, median of the repetitions
    double read_gbs = 0;  // a read-only sum over the same array (what a weight-streaming GEMV does)
};

// Arrays of `bytes` each (≥ 1 GiB recommended, far beyond the caches).
Bandwidth measure_bandwidth(size_t bytes = size_t(1) << 30, int repetitions = 5);

// Read bandwidth sampled next to the work it judges: one buffer, far beyond the last-level cache,
// read once per sample (the same read-only sum as measure_bandwidth). On a shared VM whose bandwidth
// drifts ±25% within a minute, a rate measured seconds away from a decode token says little about
// the bandwidth that token had; a sample taken just before and just after it does.
class ReadProbe {
public:
    explicit ReadProbe(size_t bytes = size_t(256) << 20);
    double sample_gbs() const;  // reads the buffer once: GB/s

private:
    size_t n_;
    std::unique_ptr<double[]> data_;
};

}  // namespace planeq
