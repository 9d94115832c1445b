// The pre-tokenizer: cuts text into the pieces ("words") BPE runs on, as Hugging Face's Split and
// ByteLevel pre-tokenizers do. Pieces stay raw bytes; the byte → unicode mapping ByteLevel also
// performs is left to the BPE model, which works on bytes directly.
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

class PreTokenizer {
public:
    // Accepts a "ByteLevel" pre-tokenizer, or a "Sequence" of "Split"s ending in one "ByteLevel".
    // Throws FormatError for anything else.
    static PreTokenizer from_json(const nlohmann::json& spec);

    // Calls emit(piece) for every pre-token of `text` (valid UTF-8), in order. A piece may point into a
    // temporary buffer (when a prefix space was added): use it before emit returns.
    void run(std::string_view text, const std::function<void(std::string_view)>& emit) const;

private:
    // One stage of the pipeline: either a regex split or ByteLevel's add_prefix_space.
    struct Step {
        std::shared_ptr<const Regex> regex;  // null for the prefix-space step
        SplitBehavior behavior = SplitBehavior::Isolated;
        bool invert = false;
    };
    void add_component(const nlohmann::json& spec, const std::string& where, bool& seen_byte_level);
    void run_step(size_t step, std::string_view piece, const std::function<void(std::string_view)>& emit) const;

    std::vector<Step> steps_;
};

}  // namespace planeq::tokenizer_detail
