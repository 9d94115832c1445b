// plan.json: per-layer quantization settings (written by `planeq allocate`, editable by hand, consumed
// by `planeq quantize --plan`). One object: scorer, budget, achieved_bpw, and layers — a list of
// {"name": <HF module name>, "method", "bits", "group", "score"} (optional: "sym", "order", "iters").
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.hpp"
#include "quant/method.hpp"

namespace planeq {

struct PlanLayer {
    std::string name;
    LayerSetting setting;
    double score = 0;
};

struct Plan {
    std::string scorer;
    double budget = 0, achieved_bpw = 0;
    std::vector<PlanLayer> layers;
    std::map<std::string, LayerSetting> settings;  // by name, for the pipeline
    nlohmann::json extra;                           // scorer-specific fields, kept on round trips

    nlohmann::json to_json() const;
};

Plan plan_from_json(const nlohmann::json& j, const std::filesystem::path& where);
// Reads and validates a plan against a model: every layer named must be a decoder linear (or lm_head),
// every setting must be valid for its shape. Errors name the file and the layer.
Plan load_plan(const std::filesystem::path& path, const Model& m);
void save_plan(const Plan& plan, const std::filesystem::path& path);  // atomic (temp + rename)

}  // namespace planeq
