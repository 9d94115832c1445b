// --device cpu|cuda for run, ppl, kld and bench: a Runner (model/runner.hpp) on the chosen device. The CUDA
// runner owns the model's GPU upload; without a CUDA build, --device cuda is one clear error.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "model/runner.hpp"

namespace planeq::cli {

void add_device_option(CLI::App& cmd, std::string& device);
// Validates the name; true for cuda (fails when this planeq has no CUDA backend).
bool device_is_cuda(const std::string& device);
// capacity: KV positions of a full cache; max_batch: SlotCache's B (CPU window/streaming caches).
// `verbose`: report the GPU upload (bytes, seconds) on stderr.
std::unique_ptr<Runner> make_device_runner(const Model& m, const std::string& device, const CacheOptions& cache, int64_t capacity,
                                           int64_t max_batch = 1, bool verbose = true);
// Device bytes of the weights one decode step streams (GPU layout) for a runner made by make_device_runner on
// cuda; 0 for the CPU.
size_t device_weight_bytes(const Runner& r);

}  // namespace planeq::cli
