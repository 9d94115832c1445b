#include "loaded_model.hpp"

#include <chrono>

#include "core/error.hpp"

namespace planeq::cli {

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& p) {
    const auto file = std::filesystem::is_directory(p) ? p / "tokenizer.json" : p;
    return std::make_unique<Tokenizer>(Tokenizer::load(file));
}

LoadedModel load_model(const std::filesystem::path& dir, bool need_tokenizer) {
    const auto t0 = std::chrono::steady_clock::now();
    LoadedModel lm;
    lm.model = Model::load(dir);
    if (need_tokenizer) {
        lm.tokenizer = load_tokenizer(dir);
        if (int64_t(lm.tokenizer->vocab_size()) > lm.model->config.vocab)
            fail_file(dir / "tokenizer.json", "tokenizer has " + std::to_string(lm.tokenizer->vocab_size()) +
                                                  " tokens but config.json vocab_size is " + std::to_string(lm.model->config.vocab));
    }
    lm.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return lm;
}

}  // namespace planeq::cli
