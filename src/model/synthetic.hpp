// Models with random weights at real shapes (Llama-3-8B, Llama-3.2-1B, Qwen3-0.6B): speed is measured
// at the shapes users run, without multi-gigabyte downloads.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "model/model.hpp"

namespace planeq {

ModelConfig shape_config(const std::string& name);  // llama3-8b | llama3.2-1b | qwen3-0.6b | tiny-llama-shape
std::string shape_names();

// Decoder linears come from make_linear(name, rows, cols); embeddings, head and norms are random bf16.
std::unique_ptr<Model> synthetic_model(const ModelConfig& c,
                                       const std::function<PackedWeight(const std::string& name, int64_t rows, int64_t cols)>& make_linear,
                                       uint64_t seed);

// A weight in `format` with random contents (valid codes, plausible scales), generated in parallel.
PackedWeight random_weight(const WeightFormat& format, int64_t rows, int64_t cols, const FormatParams& params, uint64_t seed);

}  // namespace planeq
