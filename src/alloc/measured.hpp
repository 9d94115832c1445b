// The `measured` oracle: quantize one allocation unit (a block or a single linear) alone at the low bit
// width with the chosen backend, everything else in its original precision, and measure the mean KL
// divergence of the model's next-token distributions from the unquantized model's on calibration text.
// It costs a quantization and forward passes per unit; it is the yardstick the cheap scorers are judged by.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "alloc/lieq.hpp"
#include "model/model.hpp"
#include "quant/method.hpp"

namespace planeq::alloc {

struct MeasuredOptions {
    LayerSetting setting;                           // backend at the low width
    int64_t calib_segments = 32, calib_len = 512;   // Hessian data for GPTQ/BPDQ (ours: 32 × 512)
    int64_t eval_segments = 8;                      // KLD windows (calibration text, other random segments)
    uint64_t seed = 0;
};

struct MeasuredResult {
    std::vector<double> kld;  // per unit: mean KLD (nats/token) of "this unit quantized alone" vs the base
    int64_t eval_tokens = 0;
    double seconds = 0;
};

// units: layer names per unit (e.g. the 7 linears of a block). m's weights are restored after each unit.
MeasuredResult measured_scores(Model& m, const std::vector<std::vector<std::string>>& units, std::span<const int32_t> calib_ids,
                               int32_t bos, const MeasuredOptions& opt, const AllocProgress& progress = {});

}  // namespace planeq::alloc
