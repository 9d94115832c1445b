// A Hugging Face checkpoint directory: config.json plus one safetensors file or a sharded set
// described by model.safetensors.index.json. All shards are memory-mapped and validated at open.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/hf_config.hpp"
#include "io/safetensors.hpp"

namespace planeq {

class Checkpoint {
public:
    static std::unique_ptr<Checkpoint> open(const std::filesystem::path& dir);  // throws planeq::Error

    const std::filesystem::path& dir() const { return dir_; }
    const ModelConfig& config() const { return config_; }
    const TensorView* find(const std::string& name) const;
    const TensorView& get(const std::string& name) const;  // error naming the dir and tensor if missing
    std::vector<std::string> tensor_names() const;
    std::filesystem::path file_of(const std::string& name) const;
    bool has_tokenizer() const { return std::filesystem::exists(dir_ / "tokenizer.json"); }
    std::filesystem::path tokenizer_path() const { return dir_ / "tokenizer.json"; }
    size_t weight_bytes() const;

private:
    std::filesystem::path dir_;
    ModelConfig config_;
    std::vector<std::unique_ptr<SafetensorsFile>> shards_;
    std::map<std::string, const TensorView*> tensors_;
    std::map<std::string, const SafetensorsFile*> owner_;
};

}  // namespace planeq
