// The "normalizer" of a tokenizer.json: rewrites the text between added tokens before pre-tokenization,
// as Hugging Face's normalizers do. Supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend, Replace
// (literal or regex) and Sequence of them. Offsets are not tracked, except for one fact the Metaspace
// pre-tokenizer's prepend_scheme "first" depends on (see NormalizedText::origin).
//
// Unicode data comes from utf8proc (Debian 12: Unicode 15.0) where HF uses Rust's tables, so a
// character assigned in a later Unicode version may normalize or lowercase differently.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.hpp"

namespace planeq::tokenizer_detail {

// A piece of text being normalized. `origin` counts its leading bytes that HF aligns with offset 0 of
// the whole input: HF's prepend_scheme "first" adds the metaspace only to a piece whose first byte has
// that alignment. A piece cut from the start of the input begins with origin = its first character;
// every other piece has 0. Characters a normalizer puts at the front (Prepend, a replacement of the
// first character) inherit the alignment of the character they attach to, as in HF.
struct NormalizedText {
    std::string text;
    size_t origin = 0;
};

class Normalizer {
public:
    // Parses "normalizer" (null = none). Throws FormatError for unsupported types or bad fields.
    static Normalizer from_json(const nlohmann::json& spec);

    bool empty() const { return steps_.empty(); }

    // Applies every step in order.
    void apply(NormalizedText& piece) const;

    // The normalized form of `text` on its own (used for added tokens with normalized = true).
    std::string apply(std::string_view text) const;

private:
    enum class Kind { NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend, Replace };
    struct Step {
        Kind kind;
        std::string text;                      // Prepend: the prefix; Replace: the replacement
        std::shared_ptr<const Regex> pattern;  // Replace only
        bool strip_left = false;
        bool strip_right = false;
    };

    void add_component(const nlohmann::json& spec, const std::string& where);
    static void apply_step(const Step& step, NormalizedText& piece);

    std::vector<Step> steps_;
};

}  // namespace planeq::tokenizer_detail
