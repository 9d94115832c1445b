#include "tokenizer/decoder.hpp"

#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.hpp"
#include "tokenizer/format_error.hpp"
#include "tokenizer/pretokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace planeq::tokenizer_detail {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The byte of a byte-fallback token "<0xNN>", or -1. HF parses NN with Rust's u8::from_str_radix, which
// also takes lower case and a leading '+' ("<0x+A>" is byte 10).
int fallback_byte(std::string_view token) {
    if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>') return -1;
    if (token[3] == '+') return hex_digit(token[4]);
    const int high = hex_digit(token[3]);
    const int low = hex_digit(token[4]);
    return high < 0 || low < 0 ? -1 : high * 16 + low;
}

std::string replace_all(const Regex& pattern, const std::string& content, std::string_view text) {
    if (text.empty()) return {};
    std::string out;
    size_t copied = 0;
    pattern.for_each_match(text, [&](Span match) {
        out.append(text.substr(copied, match.begin - copied));
        out += content;
        copied = match.end;
    });
    out.append(text.substr(copied));
    return out;
}

// HF ByteFallback: a run of byte tokens becomes its text when the bytes are valid UTF-8, otherwise one
// U+FFFD per byte (not per invalid sequence, unlike a lossy UTF-8 repair).
void byte_fallback(std::vector<std::string>& tokens) {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string run;
    const auto flush = [&] {
        if (run.empty()) return;
        if (utf8::find_invalid(run) == std::string::npos) {
            out.push_back(run);
        } else {
            for (size_t i = 0; i < run.size(); ++i) out.emplace_back(kReplacementCharacter);
        }
        run.clear();
    };
    for (std::string& token : tokens) {
        const int byte = fallback_byte(token);
        if (byte >= 0) {
            run.push_back(static_cast<char>(byte));
            continue;
        }
        flush();
        out.push_back(std::move(token));
    }
    flush();
    tokens = std::move(out);
}

// HF Strip: cuts up to `start` leading and `stop` trailing occurrences of one character from every
// token. (HF panics when both cuts overlap or `stop` exceeds the token; here the token just empties.)
std::string strip_token(std::string_view token, std::string_view content, size_t start, size_t stop) {
    size_t begin = 0;
    for (size_t n = 0; n < start && token.substr(begin).starts_with(content); ++n) begin += content.size();
    size_t end = token.size();
    for (size_t n = 0; n < stop && end > begin && token.substr(begin, end - begin).ends_with(content); ++n)
        end -= content.size();
    return std::string(token.substr(begin, end - begin));
}

// HF Metaspace decoder: the replacement character becomes a space, except in the first token, where
// (unless prepend_scheme is "never") every occurrence is dropped, being the space the encoder added.
std::string metaspace_token(std::string_view token, std::string_view replacement, bool drop) {
    std::string out;
    out.reserve(token.size());
    size_t pos = 0;
    while (pos < token.size()) {
        const size_t found = token.find(replacement, pos);
        if (found == std::string_view::npos) {
            out.append(token.substr(pos));
            break;
        }
        out.append(token.substr(pos, found - pos));
        if (!drop) out += ' ';
        pos = found + replacement.size();
    }
    return out;
}

// HF ByteLevel decoder: all tokens become one text of their bytes, repaired as UTF-8.
void byte_level_fuse(std::vector<std::string>& tokens) {
    std::string bytes;
    for (const std::string& token : tokens) bytes += byte_level::decode_token(token);
    tokens.assign(1, utf8::repair_lossy(bytes));
}

}  // namespace

Decoder Decoder::from_json(const nlohmann::json& spec, bool byte_level_model) {
    Decoder result;
    if (!spec.is_null()) {
        result.add_component(spec, "decoder");
    } else if (byte_level_model) {
        Step step{};
        step.kind = Kind::ByteLevel;
        result.steps_.push_back(std::move(step));
    } else {
        result.join_with_spaces_ = true;
    }
    return result;
}

void Decoder::add_component(const nlohmann::json& spec, const std::string& where) {
    const std::string type = type_of(spec, where);
    Step step{};
    if (type == "Sequence") {
        const nlohmann::json& parts = required(spec, "decoders", where);
        if (!parts.is_array()) throw FormatError(where + ".decoders is not an array");
        for (size_t i = 0; i < parts.size(); ++i)
            add_component(parts[i], where + ".decoders[" + std::to_string(i) + "]");
        return;
    } else if (type == "ByteLevel") {
        step.kind = Kind::ByteLevel;
    } else if (type == "Metaspace") {
        const MetaspaceOptions options = parse_metaspace(spec, where);
        step.kind = Kind::Metaspace;
        step.text = options.replacement;
        step.first_token_special = options.prepend_scheme != PrependScheme::Never;
    } else if (type == "Replace") {
        step.kind = Kind::Replace;
        step.pattern = parse_pattern(required(spec, "pattern", where), where);
        step.text = required_string(spec, "content", where);
    } else if (type == "ByteFallback") {
        step.kind = Kind::ByteFallback;
    } else if (type == "Fuse") {
        step.kind = Kind::Fuse;
    } else if (type == "Strip") {
        step.kind = Kind::Strip;
        step.text = required_char(spec, "content", where);
        step.start = required_count(spec, "start", where);
        step.stop = required_count(spec, "stop", where);
    } else {
        throw FormatError(where + ": unsupported decoder type \"" + type +
                          "\" (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)");
    }
    steps_.push_back(std::move(step));
}

bool Decoder::is_byte_level() const { return steps_.size() == 1 && steps_[0].kind == Kind::ByteLevel; }

void Decoder::run_step(const Step& step, std::vector<std::string>& tokens) {
    switch (step.kind) {
        case Kind::ByteLevel:
            return byte_level_fuse(tokens);
        case Kind::Metaspace:
            for (size_t i = 0; i < tokens.size(); ++i)
                tokens[i] = metaspace_token(tokens[i], step.text, i == 0 && step.first_token_special);
            return;
        case Kind::Replace:
            for (std::string& token : tokens) token = replace_all(*step.pattern, step.text, token);
            return;
        case Kind::ByteFallback:
            return byte_fallback(tokens);
        case Kind::Fuse: {
            std::string joined;
            for (const std::string& token : tokens) joined += token;
            tokens.assign(1, std::move(joined));
            return;
        }
        case Kind::Strip:
            for (std::string& token : tokens) token = strip_token(token, step.text, step.start, step.stop);
            return;
    }
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
    for (const Step& step : steps_) run_step(step, tokens);
    std::string text;
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (i > 0 && join_with_spaces_) text += ' ';
        text += tokens[i];
    }
    return text;
}

std::string Decoder::token_bytes(std::string_view token) const {
    std::string text(token);
    for (const Step& step : steps_) {
        switch (step.kind) {
            case Kind::ByteLevel:
                text = byte_level::decode_token(text);
                break;
            case Kind::Metaspace:
                text = metaspace_token(text, step.text, false);
                break;
            case Kind::Replace:
                // A raw fallback byte (from an earlier ByteFallback) is no text a pattern can match.
                if (utf8::find_invalid(text) == std::string::npos) text = replace_all(*step.pattern, step.text, text);
                break;
            case Kind::ByteFallback:
                if (const int byte = fallback_byte(text); byte >= 0) text.assign(1, static_cast<char>(byte));
                break;
            case Kind::Fuse:
            case Kind::Strip:
                break;
        }
    }
    return text;
}

}  // namespace planeq::tokenizer_detail
