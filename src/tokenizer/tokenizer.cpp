#include "tokenizer/tokenizer.hpp"

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/text_file.hpp"
#include "tokenizer/added_tokens.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/format_error.hpp"
#include "tokenizer/post_processor.hpp"
#include "tokenizer/pretokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace planeq {

using tokenizer_detail::AddedTokens;
using tokenizer_detail::BpeModel;
using tokenizer_detail::FormatError;
using tokenizer_detail::PostProcessor;
using tokenizer_detail::PreTokenizer;

struct Tokenizer::Impl {
    BpeModel model;
    AddedTokens added;
    PreTokenizer pre_tokenizer;
    PostProcessor post_processor;
    std::vector<std::string> token_bytes;  // by id: the bytes each token decodes to
    std::vector<bool> has_token;           // by id: whether any token has this id
    size_t vocab_size = 0;
};

namespace {

// Normalizers rewrite the text (NFC, lowercasing, ...); none is implemented, so only their absence
// (or an empty Sequence) is accepted rather than silently producing different ids.
void check_normalizer(const nlohmann::json& spec) {
    if (spec.is_null()) return;
    const std::string type = tokenizer_detail::type_of(spec, "normalizer");
    if (type == "Sequence" && spec.contains("normalizers") && spec["normalizers"].is_array() &&
        spec["normalizers"].empty())
        return;
    throw FormatError("unsupported normalizer type \"" + type + "\" (only no normalizer is supported)");
}

// Decoding always maps byte-level characters back to bytes. HF with no decoder would instead join the
// raw token strings with spaces, which is never what a byte-level vocabulary wants, so null is
// accepted and treated as ByteLevel.
void check_decoder(const nlohmann::json& spec) {
    if (spec.is_null()) return;
    const std::string type = tokenizer_detail::type_of(spec, "decoder");
    if (type != "ByteLevel") throw FormatError("unsupported decoder type \"" + type + "\" (expected ByteLevel)");
}

// Every id's bytes, precomputed so decode is a concatenation. Added tokens take precedence over the
// model's vocabulary for a shared id, as in HF's id_to_token.
void build_id_tables(Tokenizer::Impl& impl) {
    size_t size = impl.model.id_bound();
    for (const auto& token : impl.added.all()) size = std::max(size, static_cast<size_t>(token.id) + 1);
    impl.token_bytes.assign(size, {});
    impl.has_token.assign(size, false);
    size_t added_outside_model = 0;
    for (size_t id = 0; id < size; ++id) {
        const auto* added = impl.added.find(static_cast<int32_t>(id));
        const std::string* text = added ? &added->content : impl.model.id_to_token(static_cast<int32_t>(id));
        if (!text) continue;
        impl.token_bytes[id] = byte_level::decode_token(*text);
        impl.has_token[id] = true;
    }
    for (const auto& token : impl.added.all())
        if (!impl.model.token_to_id(token.content)) ++added_outside_model;
    impl.vocab_size = impl.model.size() + added_outside_model;
}

std::shared_ptr<const Tokenizer::Impl> parse(const nlohmann::json& spec) {
    if (!spec.is_object()) throw FormatError("not a tokenizer.json: the top level is not a JSON object");
    if (!spec.contains("model")) throw FormatError("not a tokenizer.json: no \"model\" section");
    const auto section = [&](const char* key) -> const nlohmann::json& {
        static const nlohmann::json null_value;
        return spec.contains(key) ? spec[key] : null_value;
    };
    check_normalizer(section("normalizer"));
    check_decoder(section("decoder"));
    auto impl = std::make_shared<Tokenizer::Impl>();
    impl->model = BpeModel::from_json(spec["model"]);
    impl->added = AddedTokens::from_json(section("added_tokens"), impl->model);
    impl->pre_tokenizer = PreTokenizer::from_json(section("pre_tokenizer"));
    impl->post_processor = PostProcessor::from_json(section("post_processor"));
    build_id_tables(*impl);
    // HF does not check this, but an id outside the vocabulary would index past the model's embeddings.
    const auto& post = impl->post_processor;
    for (const auto* side : {&post.prefix, &post.suffix}) {
        for (const int32_t id : *side)
            if (static_cast<size_t>(id) >= impl->has_token.size() || !impl->has_token[id])
                throw FormatError("post_processor adds token id " + std::to_string(id) +
                                  ", which is not in the vocabulary");
    }
    return impl;
}

}  // namespace

Tokenizer Tokenizer::load(const std::filesystem::path& tokenizer_json) {
    const std::string text = read_text_file(tokenizer_json);
    try {
        return Tokenizer(parse(nlohmann::json::parse(text)));
    } catch (const nlohmann::json::parse_error& e) {
        fail_file(tokenizer_json, std::string("invalid JSON: ") + e.what());
    } catch (const nlohmann::json::exception& e) {
        fail_file(tokenizer_json, std::string("unexpected tokenizer.json structure: ") + e.what());
    } catch (const FormatError& e) {
        fail_file(tokenizer_json, e.what());
    }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
    const Impl& impl = *impl_;
    // PCRE2 is told the text is valid UTF-8 (checking it per match would be quadratic), so check once here.
    if (const size_t bad = utf8::find_invalid(text); bad != std::string_view::npos)
        fail("tokenizer: input text is not valid UTF-8 (at byte " + std::to_string(bad) + ")");
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 8);
    if (add_special) ids = impl.post_processor.prefix;
    BpeModel::Cache cache;
    const std::function<void(std::string_view)> encode_word = [&](std::string_view word) {
        impl.model.encode_word(word, cache, ids);
    };
    impl.added.split(
        text, [&](std::string_view piece) { impl.pre_tokenizer.run(piece, encode_word); },
        [&](int32_t id) { ids.push_back(id); });
    if (add_special) ids.insert(ids.end(), impl.post_processor.suffix.begin(), impl.post_processor.suffix.end());
    return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
    const Impl& impl = *impl_;
    std::string bytes;
    for (const int32_t id : ids) {
        if (id < 0 || static_cast<size_t>(id) >= impl.has_token.size() || !impl.has_token[id]) continue;
        if (skip_special && is_special(id)) continue;
        bytes += impl.token_bytes[id];
    }
    return utf8::repair_lossy(bytes);
}

std::string Tokenizer::token_bytes(int32_t id) const {
    const Impl& impl = *impl_;
    if (id < 0 || static_cast<size_t>(id) >= impl.has_token.size() || !impl.has_token[id])
        fail("tokenizer: token id " + std::to_string(id) + " is not in the vocabulary (size " +
             std::to_string(impl.vocab_size) + ")");
    return impl.token_bytes[id];
}

size_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
    if (const auto* added = impl_->added.find(token)) return added->id;
    return impl_->model.token_to_id(token);
}

bool Tokenizer::adds_bos() const { return !impl_->post_processor.prefix.empty(); }

int32_t Tokenizer::bos_id() const { return adds_bos() ? impl_->post_processor.prefix.front() : -1; }

bool Tokenizer::is_special(int32_t id) const {
    const auto* added = impl_->added.find(id);
    return added && added->special;
}

}  // namespace planeq
