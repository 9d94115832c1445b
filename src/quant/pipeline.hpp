// The quantization pipeline (DESIGN §1, GPTQ.md step 8): calibration segments run block by block
// through the model as it is being quantized, so block l sees the outputs of the already quantized
// block l − 1; inside a block the layers are quantized in true-sequential order
//   [q, k, v] → [o] → [gate, up] → [down]
// each sub-group's Hessian built from inputs produced by its quantized predecessors.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.hpp"
#include "quant/method.hpp"

namespace planeq {

// Sink-aware calibration (SINKS.md §5): how the sink tokens' rows enter the Hessians. The sink set of a
// calibration segment is its first `calib_sink_tokens` positions plus the tokens whose input to the layer
// has a massive activation (max|x_t| / median|x| > 100).
//   keep: every row weighs 1 (GPTQ's Hessian); exclude: sink rows weigh 0;
//   downweight: every row t weighs min(1, (10·median_t′‖x_t′‖ / ‖x_t‖)²), capping any token's share of tr(H).
enum class CalibSinks { Keep, Exclude, Downweight };
CalibSinks parse_calib_sinks(const std::string& s);
const char* calib_sinks_name(CalibSinks c);

struct QuantizeOptions {
    LayerSetting defaults;
    std::map<std::string, LayerSetting> plan;  // per-layer overrides (allocation plans)
    bool quantize_head = false;                // lm_head (untied models only)
    // Non-empty: quantize only these layers; the others keep their weights and blocks after the last
    // listed one are not visited (the `measured` allocation scorer quantizes one block or module alone).
    std::set<std::string> only;
    CalibSinks calib_sinks = CalibSinks::Keep;
    int64_t calib_sink_tokens = 1;             // N_c: first positions of each segment counted as sinks
    // Non-null: Hessians and the methods with a device path (gptq, bpdq) run there (--device cuda); the
    // calibration forward stays on the CPU.
    const QuantDevice* device = nullptr;
};

struct LayerReport {
    std::string name, method, format;
    int64_t rows = 0, cols = 0;
    LayerSetting setting;
    double bpw = 0;
    double proxy_loss = 0;
    double rel_output_error = -1;  // tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) on the calibration inputs (−1: not computed)
    double rel_weight_error = 0;   // ‖ΔW‖_F / ‖W‖_F
    double seconds = 0;
    double damp_used = 0;
    std::vector<std::string> log;
    nlohmann::json to_json() const;
};

struct QuantizeReport {
    std::vector<LayerReport> layers;
    double seconds = 0, forward_seconds = 0, hessian_seconds = 0, method_seconds = 0;
    std::string device = "cpu";
    int64_t calib_segments = 0, calib_len = 0;
    std::string calib_sinks = "keep";
    std::vector<double> sink_trace_share;  // per block: share of tr(H_qkv) the sink rows carry before weighting
    nlohmann::json to_json() const;
};

using QuantizeProgress = std::function<void(int64_t blocks_done, int64_t blocks_total, const std::string& note)>;

// The setting a layer gets: its plan entry, else the defaults.
const LayerSetting& setting_for(const QuantizeOptions& opt, const std::string& layer);

// Quantizes every decoder linear of m in place (their weights become packed formats). segments are
// calibration token sequences (equal length); methods that need no data accept an empty list.
QuantizeReport quantize_model(Model& m, const std::vector<std::vector<int32_t>>& segments, const QuantizeOptions& opt,
                              const QuantizeProgress& progress = {});

}  // namespace planeq
