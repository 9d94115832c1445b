// The `quantization_config` object planeq writes into config.json: which format and parameters each
// quantized layer uses. Layers not listed are stored densely.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "formats/format.hpp"

namespace planeq {

struct LayerQuant {
    const WeightFormat* format = nullptr;
    FormatParams params;
    std::string method;  // rtn, gptq, ...
};

struct QuantConfig {
    std::map<std::string, LayerQuant> layers;  // module name -> setting
    nlohmann::json raw;                         // the whole object, as written
    const LayerQuant* find(const std::string& name) const {
        auto it = layers.find(name);
        return it == layers.end() ? nullptr : &it->second;
    }
    bool empty() const { return layers.empty(); }
};

// Empty when config.json has no quantization_config; an error for another tool's quantization
// (GPTQ/AWQ checkpoints need a converter) or a malformed object.
QuantConfig parse_quant_config(const nlohmann::json& config, const std::filesystem::path& where);

}  // namespace planeq
