// A model directory opened for a command: weights plus tokenizer.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "model/model.hpp"
#include "tokenizer/tokenizer.hpp"

namespace planeq::cli {

struct LoadedModel {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    double load_seconds = 0;
};

LoadedModel load_model(const std::filesystem::path& dir, bool need_tokenizer = true);
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& model_dir_or_json);

}  // namespace planeq::cli
