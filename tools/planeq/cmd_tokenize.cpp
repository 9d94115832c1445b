// planeq tokenize: the model's tokenizer on a file or a string.
#include <cstdio>
#include <iostream>

#include "common.hpp"
#include "core/text_file.hpp"
#include "loaded_model.hpp"
#include "tokenizer/token_ids.hpp"

namespace planeq::cli {

namespace {

struct TokenizeArgs {
    CommonOptions common;
    std::string model, file, text;
    bool no_special = false, ids = false, count = false, sha256 = false;
};

void run_tokenize(const TokenizeArgs& a) {
    apply_threads(a.common);
    auto tok = load_tokenizer(a.model);
    const std::string text = a.file.empty() ? a.text : read_text_file(a.file);
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok->encode(text, !a.no_special);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (a.common.json) {
        nlohmann::json j{{"count", ids.size()}, {"sha256", sha256_of_ids(ids)}, {"seconds", seconds}};
        if (!a.count && !a.sha256) j["ids"] = ids;
        print_json(j);
        return;
    }
    if (a.count) std::printf("%zu\n", ids.size());
    if (a.sha256) std::printf("%s\n", sha256_of_ids(ids).c_str());
    if (a.ids || (!a.count && !a.sha256)) {
        std::string line;
        for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
        std::cout << line << "\n";
    }
}

}  // namespace

void register_tokenize(CLI::App& app) {
    auto a = std::make_shared<TokenizeArgs>();
    CLI::App* cmd = app.add_subcommand("tokenize", "Encode text with a model's tokenizer.json");
    cmd->add_option("model", a->model, "Model directory or tokenizer.json")->required();
    auto* file = cmd->add_option("-f,--file", a->file, "Text file to encode (whole file, one string)");
    auto* text = cmd->add_option("--text", a->text, "String to encode");
    file->excludes(text);
    cmd->add_flag("--no-special", a->no_special, "Skip the post-processor (no BOS)");
    cmd->add_flag("--ids", a->ids, "Print the ids (the default)");
    cmd->add_flag("--count", a->count, "Print the number of tokens");
    cmd->add_flag("--sha256", a->sha256, "Print SHA-256 of the ids joined by commas (as reference.json)");
    add_common(*cmd, a->common);
    cmd->callback([a, cmd] {
        if (a->file.empty() && cmd->count("--text") == 0) throw CLI::RequiredError("--file or --text");
        run_tokenize(*a);
    });
}

}  // namespace planeq::cli
