#include "tokenizer/tokenizer.hpp"

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "core/error.hpp"
#include "core/text_file.hpp"
#include "tokenizer/added_tokens.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/decoder.hpp"
#include "tokenizer/format_error.hpp"
#include "tokenizer/normalizer.hpp"
#include "tokenizer/post_processor.hpp"
#include "tokenizer/pretokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace planeq {

using tokenizer_detail::AddedTokens;
using tokenizer_detail::BpeModel;
using tokenizer_detail::Decoder;
using tokenizer_detail::FormatError;
using tokenizer_detail::NormalizedText;
using tokenizer_detail::Normalizer;
using tokenizer_detail::PostProcessor;
using tokenizer_detail::PreTokenizer;

struct Tokenizer::Impl {
    Normalizer normalizer;
    PreTokenizer pre_tokenizer;
    BpeModel model;
    AddedTokens added;
    PostProcessor post_processor;
    Decoder decoder;
    std::vector<std::string> token_bytes;  // by id: the bytes each token stands for (see token_bytes())
    std::vector<bool> has_token;           // by id: whether any token has this id
    std::vector<bool> skipped_as_special;  // by id: whether decode(skip_special) drops it
    size_t vocab_size = 0;

    // The string HF's decoders receive for `id` (which must exist): an added token's (normalized) form
    // takes precedence over the model's vocabulary entry, as in HF's decode.
    const std::string& token_string(int32_t id) const {
        if (const auto* token = added.find(id)) return token->form;
        return *model.id_to_token(id);
    }
};

namespace {

// Every id's bytes, precomputed so that a byte-level decode is a concatenation. Added tokens take
// precedence over the model's vocabulary for a shared id, as in HF's decode.
void build_id_tables(Tokenizer::Impl& impl) {
    size_t size = impl.model.id_bound();
    for (const auto& token : impl.added.all()) size = std::max(size, static_cast<size_t>(token.id) + 1);
    impl.token_bytes.assign(size, {});
    impl.has_token.assign(size, false);
    impl.skipped_as_special.assign(size, false);
    // HF's decode drops a token when its string is the content of a special token. A normalized special
    // token reaches the decoder in its normalized form, so when normalization changed it, it is kept.
    std::unordered_set<std::string_view> special_contents;
    for (const auto& token : impl.added.all())
        if (token.special) special_contents.insert(token.content);
    for (size_t id = 0; id < size; ++id) {
        const auto* added = impl.added.find(static_cast<int32_t>(id));
        const std::string* text = added ? &added->form : impl.model.id_to_token(static_cast<int32_t>(id));
        if (!text) continue;
        impl.token_bytes[id] = impl.decoder.token_bytes(*text);
        impl.has_token[id] = true;
        impl.skipped_as_special[id] = special_contents.contains(*text);
    }
    size_t added_outside_model = 0;
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
    auto impl = std::make_shared<Tokenizer::Impl>();
    impl->normalizer = Normalizer::from_json(section("normalizer"));
    impl->pre_tokenizer = PreTokenizer::from_json(section("pre_tokenizer"));
    const bool byte_level = impl->pre_tokenizer.byte_level();
    impl->model = BpeModel::from_json(spec["model"], byte_level);
    impl->added = AddedTokens::from_json(section("added_tokens"), impl->model, impl->normalizer);
    impl->post_processor = PostProcessor::from_json(section("post_processor"));
    impl->decoder = Decoder::from_json(section("decoder"), byte_level);
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

// Where one encode call sends its results: every pre-token to BPE, added token ids straight to the output.
struct EncodeSinks {
    PreTokenizer::Emit encode_word;
    AddedTokens::OnToken add_token;
};

// One piece of text between raw-text added tokens, `offset` bytes into the input, as HF's
// extract_and_normalize and the steps after it treat it: normalized on its own, searched for the
// normalized added tokens, and the rest pre-tokenized and run through BPE.
void encode_piece(const Tokenizer::Impl& impl, std::string_view piece, size_t offset, const EncodeSinks& sinks) {
    // Only a piece at the very start of the input has an origin (see NormalizedText), which only
    // Metaspace's "first" scheme looks at.
    NormalizedText normalized{{}, offset == 0 ? utf8::first_char_length(piece) : 0};
    std::string_view text = piece;
    if (!impl.normalizer.empty()) {
        normalized.text.assign(piece);
        impl.normalizer.apply(normalized);
        text = normalized.text;
    }
    const size_t origin = normalized.origin;
    impl.added.split_normalized(
        text,
        [&](std::string_view rest, size_t rest_offset) {
            impl.pre_tokenizer.run(rest, origin > rest_offset ? origin - rest_offset : 0, sinks.encode_word);
        },
        sinks.add_token);
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
    const EncodeSinks sinks{[&](std::string_view word) { impl.model.encode_word(word, cache, ids); },
                            [&](int32_t id) { ids.push_back(id); }};
    impl.added.split_raw(
        text, [&](std::string_view piece, size_t offset) { encode_piece(impl, piece, offset, sinks); },
        sinks.add_token);
    if (add_special) ids.insert(ids.end(), impl.post_processor.suffix.begin(), impl.post_processor.suffix.end());
    return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
    const Impl& impl = *impl_;
    const auto wanted = [&](int32_t id) {
        if (id < 0 || static_cast<size_t>(id) >= impl.has_token.size() || !impl.has_token[id]) return false;
        return !(skip_special && impl.skipped_as_special[id]);
    };
    if (impl.decoder.is_byte_level()) {
        std::string bytes;
        for (const int32_t id : ids)
            if (wanted(id)) bytes += impl.token_bytes[id];
        return utf8::repair_lossy(bytes);
    }
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (const int32_t id : ids)
        if (wanted(id)) tokens.push_back(impl.token_string(id));
    return impl.decoder.decode(std::move(tokens));
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
