#include "tokenizer/normalizer.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "tokenizer/format_error.hpp"
#include "tokenizer/utf8.hpp"

namespace planeq::tokenizer_detail {
namespace {

bool is_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// One of the four Unicode normalization forms, through utf8proc_map with the options utf8proc_NFC and
// friends use. utf8proc_NFC itself reads up to a NUL byte, which valid UTF-8 text may contain, so the
// length-taking form is called instead. ASCII text is already in every form.
std::string unicode_form(std::string_view text, utf8proc_option_t form) {
    if (is_ascii(text)) return std::string(text);
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t size = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                               static_cast<utf8proc_ssize_t>(text.size()), &out,
                                               static_cast<utf8proc_option_t>(UTF8PROC_STABLE | form));
    if (size < 0) fail(std::string("tokenizer: Unicode normalization failed: ") + utf8proc_errmsg(size));
    std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(size));
    std::free(out);
    return result;
}

// Rust's char::to_lowercase: the simple lowercase mapping, except for the one character whose full
// mapping has two characters (SpecialCasing.txt, unconditional part): İ → i + combining dot above.
void append_lowercase(std::string& out, char32_t cp) {
    if (cp == 0x130) {
        out += "i\xCC\x87";
        return;
    }
    utf8::append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
}

// The length of the leading (or trailing) run of whitespace, as Rust's char::is_whitespace sees it.
size_t leading_whitespace(std::string_view text) {
    size_t pos = 0;
    while (pos < text.size()) {
        size_t next = pos;
        if (!utf8::is_whitespace(utf8::next(text, next))) break;
        pos = next;
    }
    return pos;
}

size_t trailing_whitespace(std::string_view text) {
    size_t end = text.size();
    while (end > 0) {
        size_t start = 0;
        if (!utf8::is_whitespace(utf8::previous(text, end, start))) break;
        end = start;
    }
    return text.size() - end;
}

// HF NormalizedString::prepend, only on non-empty text (HF's Prepend normalizer checks that too).
void prepend(const std::string& prefix, NormalizedText& piece) {
    if (piece.text.empty()) return;
    piece.text.insert(0, prefix);
    if (piece.origin > 0) piece.origin += prefix.size();
}

// HF NormalizedString::lrstrip. A whitespace-only text disappears whichever side is stripped.
void strip(bool left, bool right, NormalizedText& piece) {
    const std::string_view text = piece.text;
    const size_t lead = left ? leading_whitespace(text) : 0;
    const size_t trail = right && lead < text.size() ? trailing_whitespace(text) : 0;
    const size_t kept = text.size() - lead - trail;
    piece.origin = piece.origin > lead ? std::min(piece.origin - lead, kept) : 0;
    piece.text = piece.text.substr(lead, kept);
}

void lowercase(NormalizedText& piece) {
    if (is_ascii(piece.text)) {
        for (char& c : piece.text)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        return;
    }
    std::string out;
    out.reserve(piece.text.size());
    size_t origin = 0;
    size_t pos = 0;
    while (pos < piece.text.size()) {
        const bool in_origin = pos < piece.origin;
        append_lowercase(out, utf8::next(piece.text, pos));
        if (in_origin) origin = out.size();  // every character of a mapping keeps its source's alignment
    }
    piece.text = std::move(out);
    piece.origin = origin;
}

// The origin of a normalization form's output is estimated as the normalized length of the old
// origin, rounded up to a character boundary (a character composed across the old origin begins inside
// it): exact unless a combining sequence straddles the origin and is reordered, which only matters if
// a later split falls inside it.
void unicode_normalize(utf8proc_option_t form, NormalizedText& piece) {
    const bool whole = piece.origin >= piece.text.size();
    size_t origin = piece.origin;
    if (origin > 0 && !whole) origin = unicode_form(std::string_view(piece.text).substr(0, origin), form).size();
    piece.text = unicode_form(piece.text, form);
    if (whole) origin = piece.text.size();
    while (origin < piece.text.size() && (static_cast<unsigned char>(piece.text[origin]) & 0xC0) == 0x80) ++origin;
    piece.origin = std::min(origin, piece.text.size());
}

// HF NormalizedString::replace: every match of the pattern becomes `content`. The replacement takes the
// alignment of the match's last byte (of the byte before an empty match; (0, 0) at the very start),
// so the origin grows over a replacement only when that byte was inside the old origin.
void replace(const Regex& pattern, const std::string& content, NormalizedText& piece) {
    if (piece.text.empty()) return;  // HF finds no match, not even an empty one, in empty text
    const std::string& in = piece.text;
    std::string out;
    out.reserve(in.size() + content.size());
    size_t origin = 0;
    size_t copied = 0;
    const auto copy_up_to = [&](size_t end) {
        if (copied < piece.origin) origin = out.size() + std::min(end, piece.origin) - copied;
        out.append(in, copied, end - copied);
    };
    pattern.for_each_match(in, [&](Span match) {
        copy_up_to(match.begin);
        const size_t aligned_to = match.end > match.begin ? match.end - 1 : match.begin == 0 ? 0 : match.begin - 1;
        out += content;
        if (!content.empty() && aligned_to < piece.origin) origin = out.size();
        copied = match.end;
    });
    copy_up_to(in.size());
    piece.text = std::move(out);
    piece.origin = origin;
}

}  // namespace

Normalizer Normalizer::from_json(const nlohmann::json& spec) {
    Normalizer result;
    if (!spec.is_null()) result.add_component(spec, "normalizer");
    return result;
}

void Normalizer::add_component(const nlohmann::json& spec, const std::string& where) {
    const std::string type = type_of(spec, where);
    Step step{};
    if (type == "Sequence") {
        const nlohmann::json& parts = required(spec, "normalizers", where);
        if (!parts.is_array()) throw FormatError(where + ".normalizers is not an array");
        for (size_t i = 0; i < parts.size(); ++i)
            add_component(parts[i], where + ".normalizers[" + std::to_string(i) + "]");
        return;
    } else if (type == "NFC") {
        step.kind = Kind::NFC;
    } else if (type == "NFD") {
        step.kind = Kind::NFD;
    } else if (type == "NFKC") {
        step.kind = Kind::NFKC;
    } else if (type == "NFKD") {
        step.kind = Kind::NFKD;
    } else if (type == "Lowercase") {
        step.kind = Kind::Lowercase;
    } else if (type == "Strip") {
        step.kind = Kind::Strip;
        // Both fields are required by HF's deserializer.
        required(spec, "strip_left", where);
        required(spec, "strip_right", where);
        step.strip_left = optional_bool(spec, "strip_left", false, where);
        step.strip_right = optional_bool(spec, "strip_right", false, where);
    } else if (type == "Prepend") {
        step.kind = Kind::Prepend;
        step.text = required_string(spec, "prepend", where);
    } else if (type == "Replace") {
        step.kind = Kind::Replace;
        step.pattern = parse_pattern(required(spec, "pattern", where), where);
        step.text = required_string(spec, "content", where);
    } else {
        throw FormatError(where + ": unsupported normalizer type \"" + type +
                          "\" (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend, Replace, Sequence)");
    }
    steps_.push_back(std::move(step));
}

void Normalizer::apply_step(const Step& step, NormalizedText& piece) {
    switch (step.kind) {
        case Kind::NFC:
            return unicode_normalize(UTF8PROC_COMPOSE, piece);
        case Kind::NFD:
            return unicode_normalize(UTF8PROC_DECOMPOSE, piece);
        case Kind::NFKC:
            return unicode_normalize(static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT), piece);
        case Kind::NFKD:
            return unicode_normalize(static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT), piece);
        case Kind::Lowercase:
            return lowercase(piece);
        case Kind::Strip:
            return strip(step.strip_left, step.strip_right, piece);
        case Kind::Prepend:
            return prepend(step.text, piece);
        case Kind::Replace:
            return replace(*step.pattern, step.text, piece);
    }
}

void Normalizer::apply(NormalizedText& piece) const {
    for (const Step& step : steps_) apply_step(step, piece);
}

std::string Normalizer::apply(std::string_view text) const {
    NormalizedText piece{std::string(text), 0};
    apply(piece);
    return std::move(piece.text);
}

}  // namespace planeq::tokenizer_detail
