// `planeq bench --device cuda`: prefill (-p) and decode (-n) speed of a model shape's linear-layer stack on the GPU (random
// weights), next to the GPU's device-to-device copy bandwidth measured in the same run, and the cuBLAS bf16
// baseline. Defined only in CUDA builds (PLANEQ_HAVE_CUDA); cmd_bench.cpp refuses --device cuda otherwise.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "formats/format.hpp"

namespace planeq::cli {

struct CudaBenchOptions {
    std::string shape, format;
    FormatParams params;
    int64_t generate = 128;  // tokens (graph replays) per timed repetition; 0 = no decode test
    int64_t prompt = 0;      // prefill test: tokens of one forward of the linear stack (0 = skip)
    int reps = 5;
    int batch = 1;           // tokens decoded together (1 … 16)
    bool baseline = true;    // also run the cuBLAS bf16 stack
    bool text = true;
};

nlohmann::json run_bench_cuda(const CudaBenchOptions& o);

}  // namespace planeq::cli
