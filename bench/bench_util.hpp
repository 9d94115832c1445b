// Helpers shared by the kernel benchmarks.
#pragma once

#include <chrono>

#include "formats/format.hpp"

namespace planeq::bench {

// An independent copy (its own bytes), so cycling through copies streams from DRAM.
inline PackedWeight clone(const PackedWeight& w) {
    PackedWeight c;
    c.format = w.format;
    c.rows = w.rows;
    c.cols = w.cols;
    c.params = w.params;
    for (const WeightPart& p : w.parts) c.add_part(p.spec, {p.data, p.spec.nbytes()});
    if (c.format->prepare) c.format->prepare(c);
    return c;
}

inline double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace planeq::bench
