// Floating-point work of a forward pass (multiply-add = 2 FLOPs), for throughput figures.
#pragma once

#include <cstdint>

#include "model/model.hpp"

namespace planeq {

// n tokens appended after pos0 cached tokens, logits for `logit_rows` of them.
double forward_flops(const Model& m, int64_t n, int64_t pos0, int64_t logit_rows);

}  // namespace planeq
