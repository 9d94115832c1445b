#include "core/scratch.hpp"

#include <array>

namespace planeq {

float* scratch_floats(size_t n, int slot) {
    thread_local std::array<std::vector<float>, 8> buffers;
    auto& b = buffers.at(size_t(slot));
    if (b.size() < n) {
        b.clear();
        b.shrink_to_fit();
        b.resize(n);
    }
    return b.data();
}

}  // namespace planeq
