// Quantization methods: how a format's parameters are chosen for one linear layer. A method takes the
// layer's f32 weights (and the calibration Hessian when it needs one) and returns the packed weight.
// Methods and formats are separate axes: GPTQ and RTN both produce the "int" format, BPDQ "bitplane".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/format.hpp"
#include "quant/gptq.hpp"

namespace planeq {

class QuantDevice;

// One layer's setting (from the CLI defaults or a plan). Fields a method does not use are ignored.
struct LayerSetting {
    std::string method = "gptq";
    int bits = 4;
    int group = 128;
    bool sym = false;
    ColumnOrder order = ColumnOrder::Gar;
    double damp = 0.01;
    int iters = 10;  // iterative methods (BPDQ)

    nlohmann::json to_json() const;
};

struct LinearQuantResult {
    PackedWeight weight;
    std::vector<float> dequant;  // R×C, exactly what the packed weight dequantizes to
    double proxy_loss = 0;       // the method's own objective, when it has one
    double damp_used = 0;
    std::vector<std::string> log;
};

struct QuantMethod {
    std::string_view name;
    std::string_view summary;
    bool needs_hessian;
    // Why the setting cannot be used on a layer of this shape ("" = fine).
    std::string (*check)(const LayerSetting& s, int64_t rows, int64_t cols);
    LinearQuantResult (*run)(const float* W, int64_t rows, int64_t cols, const double* H, const LayerSetting& s);
    // Exact stored bits per weight of this setting on this shape (the budget solver plans with it).
    double (*bits_per_weight)(const LayerSetting& s, int64_t rows, int64_t cols);
    // The same as run on a device (--device cuda), or null when the method has no device path.
    LinearQuantResult (*run_on)(const float* W, int64_t rows, int64_t cols, const double* H, const LayerSetting& s,
                                const QuantDevice& device) = nullptr;
};

const QuantMethod* find_method(std::string_view name);
std::string method_names();
// One line per method (name, summary, whether it needs calibration text): the `quantize --help` footer.
std::string method_help();

}  // namespace planeq
