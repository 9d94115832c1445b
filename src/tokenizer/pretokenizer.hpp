// The pre-tokenizer: cuts text into the pieces ("words") BPE runs on, as Hugging Face's Split, ByteLevel
// and Metaspace pre-tokenizers do. With a ByteLevel step, pieces stay raw bytes: the byte → unicode
// mapping ByteLevel also performs is left to the BPE model, which works on bytes directly. Without one
// (SentencePiece-style vocabularies) pieces are already spelled in the vocabulary's alphabet.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.hpp"

namespace planeq::tokenizer_detail {

// How a Split keeps the text its pattern matches (HF SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// When Metaspace puts its replacement character in front of a piece (HF PrependScheme).
enum class PrependScheme {
    Always,  // every piece that does not start with it
    First,   // only a piece at the very start of the input: not after an added token (legacy Llama)
    Never,
};

// The fields of a Metaspace pre-tokenizer or decoder.
struct MetaspaceOptions {
    std::string replacement;  // one character, usually "▁" (U+2581)
    PrependScheme prepend_scheme = PrependScheme::Always;
    bool split = true;  // cut before every replacement character
};

// Parses a {"type": "Metaspace", ...} object as HF does, including the older add_prefix_space field.
MetaspaceOptions parse_metaspace(const nlohmann::json& spec, const std::string& where);

class PreTokenizer {
public:
    using Emit = std::function<void(std::string_view)>;

    // Accepts null (no pre-tokenization), "Split", "ByteLevel", "Metaspace", and a "Sequence" of them
    // in which nothing follows a ByteLevel. Throws FormatError for anything else.
    static PreTokenizer from_json(const nlohmann::json& spec);

    // Whether a ByteLevel step is present, i.e. the BPE vocabulary is byte-level.
    bool byte_level() const { return byte_level_; }

    // Calls emit(piece) for every pre-token of `text` (valid UTF-8), in order. `origin` is the number of
    // leading bytes of `text` at the very start of the input (NormalizedText::origin), which decides
    // Metaspace's "first" scheme. A piece may point into a temporary buffer: use it before emit returns.
    void run(std::string_view text, size_t origin, const Emit& emit) const;

private:
    enum class Kind { Split, PrefixSpace, Metaspace };
    struct Step {
        Kind kind = Kind::Split;
        std::shared_ptr<const Regex> regex;  // Split's pattern; Metaspace's replacement when it splits
        SplitBehavior behavior = SplitBehavior::Isolated;
        bool invert = false;
        MetaspaceOptions metaspace;  // Metaspace only
    };
    void add_component(const nlohmann::json& spec, const std::string& where);
    void add_metaspace(const nlohmann::json& spec, const std::string& where);
    void run_step(size_t step, std::string_view piece, size_t origin, const Emit& emit) const;
    void run_prefix_space(size_t step, std::string_view piece, size_t origin, const Emit& emit) const;
    void run_metaspace(size_t step, std::string_view piece, size_t origin, const Emit& emit) const;
    void run_split(size_t step, std::string_view piece, size_t origin, const Emit& emit) const;

    std::vector<Step> steps_;
    bool byte_level_ = false;
};

}  // namespace planeq::tokenizer_detail
