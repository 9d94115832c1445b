// The "decoder" of a tokenizer.json: turns the vocabulary strings of ids back into text, as Hugging
// Face's decoders do. Supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip and Sequence.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.hpp"

namespace planeq::tokenizer_detail {

class Decoder {
public:
    // Parses "decoder". HF with no decoder joins the token strings with spaces; for a byte-level
    // vocabulary that is never what anyone wants, so there (byte_level_model) null means ByteLevel.
    // Throws FormatError for unsupported types or bad fields.
    static Decoder from_json(const nlohmann::json& spec, bool byte_level_model);

    // Whether decoding is exactly the byte-level mapping of each token, so that the text of a list of
    // ids is the concatenation of their token_bytes (repaired as UTF-8), with no chain to run.
    bool is_byte_level() const;

    // HF Decoder::decode: every step's decode_chain over the token strings, then their concatenation.
    std::string decode(std::vector<std::string> tokens) const;

    // The bytes one token contributes in the middle of a text: each step's per-token effect, with the
    // steps that only act on whole texts (Fuse, Strip, a Metaspace's first token) left out. Byte
    // fallback tokens give their raw byte, which may be part of a character.
    std::string token_bytes(std::string_view token) const;

private:
    enum class Kind { ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip };
    struct Step {
        Kind kind;
        std::string text;                      // Metaspace: the replacement; Replace: the content; Strip: the char
        std::shared_ptr<const Regex> pattern;  // Replace only
        bool first_token_special = false;      // Metaspace: drop the replacement in the first token
        size_t start = 0;                      // Strip: at most this many chars cut at the start
        size_t stop = 0;                       // ... and at the end
    };

    void add_component(const nlohmann::json& spec, const std::string& where);
    static void run_step(const Step& step, std::vector<std::string>& tokens);

    std::vector<Step> steps_;
    bool join_with_spaces_ = false;  // no decoder at all, for a vocabulary that is not byte-level
};

}  // namespace planeq::tokenizer_detail
