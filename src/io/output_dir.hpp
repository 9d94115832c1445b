// Writes a model (some layers in packed formats) as a Hugging Face-style directory: config.json with a
// `quantization_config`, safetensors (sharded past 5 GB) holding packed parts under the layer names
// plus suffixes, every other tensor copied verbatim, tokenizer files, and quant_report.json.
// Everything is written into a hidden temporary directory beside the target and renamed at the end,
// so an interrupted run never leaves a half-written output directory.
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

#include "model/model.hpp"

namespace planeq {

struct OutputOptions {
    bool force = false;                          // replace an existing directory
    uint64_t max_shard_bytes = 5'000'000'000ull; // as transformers' default max_shard_size
};

// quant_config goes into config.json as "quantization_config" (it must hold "layers"); report is
// written as quant_report.json. Returns the total bytes of tensor data written.
uint64_t write_model_dir(const Model& m, const std::filesystem::path& out, const nlohmann::json& quant_config,
                         const nlohmann::json& report, const OutputOptions& opt = {});

// Removes the temporary directory if the process is interrupted (SIGINT/SIGTERM) while writing.
void install_interrupt_cleanup();

}  // namespace planeq
