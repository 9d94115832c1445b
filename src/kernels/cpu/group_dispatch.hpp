// The row-block GEMVs are compiled per group size (32, 64, 128 or 256, the only ones the formats allow), so that
// a group's loop unrolls. for_each_block calls f.template operator()<G>(b) for every block b in [b0, b1) with the
// G of `group`, a size other than 32, 64, 128 taking 256 (as the kernels' own switches did).
#pragma once

#include <cstdint>

namespace planeq::cpu {

template <class F>
inline void for_each_block(int group, int64_t b0, int64_t b1, F&& f) {
    auto run = [&]<int G>() {
        for (int64_t b = b0; b < b1; ++b) f.template operator()<G>(b);
    };
    switch (group) {
        case 32: return run.template operator()<32>();
        case 64: return run.template operator()<64>();
        case 128: return run.template operator()<128>();
        default: return run.template operator()<256>();
    }
}

}  // namespace planeq::cpu
