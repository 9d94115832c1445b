// The part of a tokenizer.json post-processor that changes ids for a single sequence: the tokens its
// "single" template puts before and after the text (e.g. Llama's BOS). Offsets and type ids, which
// HF also computes here, do not matter to an inference engine.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <vector>

namespace planeq::tokenizer_detail {

struct PostProcessor {
    std::vector<int32_t> prefix;
    std::vector<int32_t> suffix;

    // Accepts null, "TemplateProcessing", "ByteLevel" (changes offsets only) and "Sequence" of those.
    // Throws FormatError otherwise.
    static PostProcessor from_json(const nlohmann::json& spec);
};

}  // namespace planeq::tokenizer_detail
