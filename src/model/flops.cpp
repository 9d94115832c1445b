#include "model/flops.hpp"

namespace planeq {

double forward_flops(const Model& m, int64_t n, int64_t pos0, int64_t logit_rows) {
    const ModelConfig& c = m.config;
    const double linear = 2.0 * double(m.linear_params()) * double(n);
    const double head = 2.0 * double(c.vocab * c.hidden) * double(logit_rows);
    // Causal attention: query i sees pos0 + i + 1 keys; QKᵀ and PV each cost 2·head_dim per key and head.
    double keys = 0;
    for (int64_t i = 0; i < n; ++i) keys += double(pos0 + i + 1);
    const double attention = 4.0 * double(c.head_dim * c.n_heads * c.n_layers) * keys;
    return linear + head + attention;
}

}  // namespace planeq
