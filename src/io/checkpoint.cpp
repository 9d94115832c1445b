#include "io/checkpoint.hpp"

#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "core/text_file.hpp"

namespace planeq {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::unique_ptr<Checkpoint> Checkpoint::open(const fs::path& dir) {
    std::error_code ec;
    if (!fs::exists(dir, ec)) fail_file(dir, "no such model directory");
    if (!fs::is_directory(dir, ec)) fail_file(dir, "not a directory (expected a Hugging Face model directory)");
    auto ck = std::unique_ptr<Checkpoint>(new Checkpoint());
    ck->dir_ = dir;
    ck->config_ = load_config(dir / "config.json");

    auto add_shard = [&](const fs::path& file) -> const SafetensorsFile* {
        for (const auto& s : ck->shards_)
            if (s->path() == file) return s.get();
        ck->shards_.push_back(std::make_unique<SafetensorsFile>(file));
        return ck->shards_.back().get();
    };

    const fs::path index_path = dir / "model.safetensors.index.json";
    const fs::path single_path = dir / "model.safetensors";
    if (fs::exists(index_path)) {
        json index;
        try {
            index = json::parse(read_text_file(index_path));
        } catch (const json::exception& e) {
            fail_file(index_path, std::string("malformed JSON: ") + e.what());
        }
        if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
            fail_file(index_path, "no 'weight_map' object");
        for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
            if (!it->is_string()) fail_file(index_path, "weight_map entry '" + it.key() + "' is not a file name");
            const std::string file = it->get<std::string>();
            if (file.find('/') != std::string::npos || file.find("..") != std::string::npos)
                fail_file(index_path, "weight_map entry '" + it.key() + "' points outside the directory: " + file);
            const fs::path shard_path = dir / file;
            if (!fs::exists(shard_path)) fail_file(index_path, "shard '" + file + "' listed for '" + it.key() + "' does not exist");
            const SafetensorsFile* shard = add_shard(shard_path);
            const TensorView* t = shard->find(it.key());
            if (!t) fail_file(shard_path, "tensor '" + it.key() + "' is listed in model.safetensors.index.json but not in this shard");
            ck->tensors_[it.key()] = t;
            ck->owner_[it.key()] = shard;
        }
    } else if (fs::exists(single_path)) {
        const SafetensorsFile* f = add_shard(single_path);
        for (const auto& [name, t] : f->tensors()) {
            ck->tensors_[name] = &t;
            ck->owner_[name] = f;
        }
    } else if (fs::exists(dir / "pytorch_model.bin") || fs::exists(dir / "pytorch_model.bin.index.json")) {
        fail_file(dir, "only safetensors checkpoints are supported (found pytorch_model.bin); convert with transformers' save_pretrained(safe_serialization=True)");
    } else {
        fail_file(dir, "no model.safetensors or model.safetensors.index.json");
    }
    return ck;
}

const TensorView* Checkpoint::find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : it->second;
}

const TensorView& Checkpoint::get(const std::string& name) const {
    const TensorView* t = find(name);
    if (!t) fail_file(dir_, "missing tensor '" + name + "'");
    return *t;
}

std::vector<std::string> Checkpoint::tensor_names() const {
    std::vector<std::string> names;
    for (const auto& [n, _] : tensors_) names.push_back(n);
    return names;
}

fs::path Checkpoint::file_of(const std::string& name) const {
    auto it = owner_.find(name);
    return it == owner_.end() ? dir_ : it->second->path();
}

size_t Checkpoint::weight_bytes() const {
    size_t n = 0;
    for (const auto& [_, t] : tensors_) n += t->nbytes;
    return n;
}

}  // namespace planeq
