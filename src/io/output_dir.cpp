#include "io/output_dir.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <set>

#include "core/error.hpp"
#include "io/safetensors.hpp"

namespace planeq {

namespace fs = std::filesystem;

namespace {

// The temporary directory being written, for the signal handler (which may only use async-signal-safe calls).
std::atomic<const char*> g_partial_dir{nullptr};
char g_partial_buf[4096];

void on_interrupt(int sig) {
    if (const char* dir = g_partial_dir.load()) {
        // Files are unlinked by a fixed pattern: the directory holds only files we name below.
        static const char* names[] = {"config.json", "quant_report.json", "model.safetensors", "model.safetensors.index.json",
                                      "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                      "generation_config.json", "chat_template.jinja", "vocab.json", "merges.txt"};
        char path[4200];
        for (const char* n : names) {
            size_t a = strlen(dir), b = strlen(n);
            if (a + b + 2 > sizeof path) continue;
            memcpy(path, dir, a);
            path[a] = '/';
            memcpy(path + a + 1, n, b + 1);
            unlink(path);
        }
        rmdir(dir);  // leaves a hidden ".partial" directory only if shards of a sharded write remain
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

std::vector<std::string> tokenizer_files() {
    return {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
            "chat_template.jinja", "vocab.json", "merges.txt"};
}

void write_text(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    if (!out) fail_file(p, "cannot create file");
    out << text;
    out.flush();
    if (!out) fail_file(p, "write failed (disk full?)");
}

struct TensorSource {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const uint8_t* data;
    size_t nbytes;
};

// Every tensor of the output: verbatim copies of the source's tensors except the weights of layers now
// stored packed, whose parts are written instead.
std::vector<TensorSource> collect_tensors(const Model& m) {
    std::map<std::string, const PackedWeight*> packed;  // layer name -> weight
    for (const Linear* l : m.linears())
        if (l->weight.format->name != "f32" && l->weight.format->name != "bf16" && l->weight.format->name != "f16")
            packed[l->name] = &l->weight;
    const bool head_packed = m.lm_head.weight.format != m.embed.format && !m.lm_head.weight.find_part("weight");
    if (head_packed) packed["lm_head"] = &m.lm_head.weight;

    std::vector<TensorSource> out;
    std::set<std::string> written;
    for (const std::string& name : m.checkpoint->tensor_names()) {
        const auto dot = name.rfind('.');
        const std::string layer = dot == std::string::npos ? name : name.substr(0, dot);
        if (packed.count(layer) && name.substr(dot + 1) != "bias") continue;  // replaced by packed parts
        const TensorView& t = m.checkpoint->get(name);
        out.push_back({name, t.dtype, t.shape, t.data, t.nbytes});
    }
    for (const auto& [layer, w] : packed)
        for (const WeightPart& p : w->parts)
            out.push_back({layer + "." + p.spec.suffix, p.spec.dtype, p.spec.shape, p.data, p.spec.nbytes()});
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

}  // namespace

void install_interrupt_cleanup() {
    struct sigaction sa{};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

uint64_t write_model_dir(const Model& m, const fs::path& out_arg, const nlohmann::json& quant_config,
                         const nlohmann::json& report, const OutputOptions& opt) {
    if (!m.checkpoint) fail("internal: only models loaded from a directory can be written");
    const fs::path out = fs::absolute(out_arg).lexically_normal();
    std::error_code ec;
    if (fs::exists(out, ec) && !opt.force)
        fail_file(out, "already exists (pass --force to replace it)");
    if (fs::equivalent(out, m.checkpoint->dir(), ec)) fail_file(out, "is the input model directory; choose another output");
    const fs::path parent = out.parent_path();
    if (!fs::is_directory(parent, ec)) fail_file(parent, "output's parent directory does not exist");

    const fs::path tmp = parent / ("." + out.filename().string() + ".partial-" + std::to_string(getpid()));
    fs::remove_all(tmp, ec);
    fs::create_directory(tmp, ec);
    if (ec) fail_file(tmp, "cannot create temporary directory: " + ec.message());
    std::snprintf(g_partial_buf, sizeof g_partial_buf, "%s", tmp.c_str());
    g_partial_dir.store(g_partial_buf);

    uint64_t total = 0;
    try {
        // Tensors, sharded by size in name order.
        const auto tensors = collect_tensors(m);
        std::vector<std::vector<const TensorSource*>> shards(1);
        uint64_t in_shard = 0;
        for (const auto& t : tensors) {
            if (in_shard > 0 && in_shard + t.nbytes > opt.max_shard_bytes) {
                shards.emplace_back();
                in_shard = 0;
            }
            shards.back().push_back(&t);
            in_shard += t.nbytes;
            total += t.nbytes;
        }
        nlohmann::json weight_map = nlohmann::json::object();
        for (size_t i = 0; i < shards.size(); ++i) {
            char name[64];
            if (shards.size() == 1) std::snprintf(name, sizeof name, "model.safetensors");
            else std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
            SafetensorsWriter w;
            w.set_metadata("format", "pt");
            for (const TensorSource* t : shards[i]) {
                w.add(t->name, t->dtype, t->shape, std::span<const uint8_t>(t->data, t->nbytes));
                weight_map[t->name] = name;
            }
            w.write(tmp / name);
        }
        if (shards.size() > 1)
            write_text(tmp / "model.safetensors.index.json",
                       nlohmann::json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2));

        nlohmann::json config = m.config.raw;
        config["quantization_config"] = quant_config;
        if (quant_config.contains("layers") && quant_config["layers"].contains("lm_head") && m.config.tie_embeddings)
            config["tie_word_embeddings"] = false;  // the head is now stored (packed) apart from the embeddings
        write_text(tmp / "config.json", config.dump(2) + "\n");
        write_text(tmp / "quant_report.json", report.dump(2) + "\n");
        for (const std::string& f : tokenizer_files())
            if (fs::exists(m.checkpoint->dir() / f)) fs::copy_file(m.checkpoint->dir() / f, tmp / f, fs::copy_options::overwrite_existing);

        // Publish: rename into place (replacing an old directory only when asked to).
        if (fs::exists(out)) {
            const fs::path old = parent / ("." + out.filename().string() + ".old-" + std::to_string(getpid()));
            fs::rename(out, old);
            fs::rename(tmp, out);
            fs::remove_all(old, ec);
        } else {
            fs::rename(tmp, out);
        }
    } catch (...) {
        g_partial_dir.store(nullptr);
        fs::remove_all(tmp, ec);
        throw;
    }
    g_partial_dir.store(nullptr);
    return total;
}

}  // namespace planeq
