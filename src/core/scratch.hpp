// Reusable per-thread scratch buffers, so hot paths do not allocate on every call.
#pragma once

#include <cstddef>
#include <vector>

namespace planeq {

// Returns a thread-local float buffer of at least n elements, tagged by `slot` so that nested users
// (e.g. a GEMM called from the forward pass) do not share one buffer.
float* scratch_floats(size_t n, int slot = 0);

}  // namespace planeq
