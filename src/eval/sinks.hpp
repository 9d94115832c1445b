// Attention-sink diagnostics (SINKS.md §2): per layer and head, how much attention each position
// receives, the sink ratio at ε = 0.3, key/value norms of position 0, and the massive-activation tracker
// (the largest |hidden| values per layer, their tokens and channels). Runs a reference forward that
// materializes every attention matrix A (T × T per head), so it is meant for short windows (T = 64 … 512).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.hpp"

namespace planeq {

struct SinkReportOptions {
    double eps = 0.3;       // sink indicator threshold on received attention r(0)
    double tau_ma = 100.0;  // massive-activation threshold on ρ = max|x| / median|x|
    int top = 3;            // top positions reported per head
    int top_activations = 5;
};

struct HeadSinkStats {
    double m0 = 0;          // mean over samples of m(0): attention share of position 0, self excluded
    double r0 = 0;          // mean received attention r(0) = (1/T) Σ_i A_{i,0}
    double sink_ratio = 0;  // fraction of samples with r(0) > ε
    std::vector<int64_t> top_pos;     // positions with the largest mean m(j)
    std::vector<double> top_share;
    double k_norm0 = 0, v_norm0 = 0;  // ‖k_0‖ / median_t ‖k_t‖ (KV head of this head), same for v
};

struct MassiveActivation {
    double value = 0, rho = 0;
    int64_t sample = 0, token = 0, channel = 0;
};

struct LayerSinkStats {
    std::vector<HeadSinkStats> heads;
    double mean_m0 = 0, sink_ratio = 0;
    double rho_max = 0, median_abs = 0;  // median |x| averaged over samples
    int64_t flagged = 0;                 // (sample, token) pairs with ρ > τ_MA
    std::vector<MassiveActivation> top;  // largest |x| after this block (one per token)
};

struct SinkReport {
    int64_t ctx = 0, samples = 0;
    double sink_ratio = 0;           // over every (sample, layer, head)
    double max_row_sum_error = 0;    // |Σ_j (T − j) r(j) − T| / T, the row-sum identity (should be ~1e-7)
    std::vector<LayerSinkStats> layers;
    nlohmann::json to_json() const;
};

using SinkProgress = std::function<void(int64_t done, int64_t total)>;
// windows: the token sequences to analyse (all the same length T).
SinkReport sink_report(const Model& m, const std::vector<std::vector<int32_t>>& windows, const SinkReportOptions& opt,
                       const SinkProgress& progress = {});

}  // namespace planeq
