// The KV-cache flags `run`, `ppl` and `bench` share: --cache full|window|streaming --sinks N --window W
// --kv-bits 8|4|2 --kv-group G --kv-keep-sinks N (model/slot_cache.hpp).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "model/slot_cache.hpp"

namespace planeq::cli {

struct CacheArgs {
    std::string mode = "full";
    int64_t sinks = -1, window = 0;  // sinks −1: 4 for streaming, else 0
    int kv_bits = 16, kv_group = 32;
    int64_t keep_sinks = -1;         // −1: the streaming sinks (all of them), else 0
};

void add_cache_options(CLI::App& cmd, CacheArgs& a);
// Checked against the model (throws planeq::Error with a one-line reason).
CacheOptions cache_options(const CacheArgs& a, const ModelConfig& c);

}  // namespace planeq::cli
