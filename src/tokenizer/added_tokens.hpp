// Added tokens ("added_tokens" in tokenizer.json: special tokens such as <|endoftext|> and user-added
// words). Hugging Face finds them before any pre-tokenization — leftmost match first, longest among
// those — and only the text between them is pre-tokenized and run through BPE. It does so in two
// passes: tokens with normalized = false are found in the raw text; each remaining piece is then
// normalized, and tokens with normalized = true are found in it, spelled as normalized themselves.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/bpe.hpp"
#include "tokenizer/normalizer.hpp"
#include "tokenizer/regex.hpp"

namespace planeq::tokenizer_detail {

struct AddedToken {
    std::string content;
    int32_t id = -1;
    bool special = false;
    bool single_word = false;  // only matches when not inside a word
    bool lstrip = false;       // also swallows the whitespace before it
    bool rstrip = false;       // also swallows the whitespace after it
    bool normalized = false;   // matched after normalization (second pass) rather than in the raw text
    std::string form;          // how it is matched and decoded: content, normalized when `normalized`
};

class AddedTokens {
public:
    // Called with each piece of text between added tokens and its byte offset in the text searched.
    using OnText = std::function<void(std::string_view piece, size_t offset)>;
    using OnToken = std::function<void(int32_t id)>;

    // Parses the "added_tokens" array (null or absent = none), numbering the tokens as HF does.
    // Throws FormatError for malformed entries.
    static AddedTokens from_json(const nlohmann::json& list, const BpeModel& model, const Normalizer& normalizer);

    // First pass: cuts raw `text` into the tokens with normalized = false and the text between them,
    // reporting both in order.
    void split_raw(std::string_view text, const OnText& on_text, const OnToken& on_token) const;

    // Second pass: the same for the tokens with normalized = true, in a piece already normalized.
    void split_normalized(std::string_view text, const OnText& on_text, const OnToken& on_token) const;

    const AddedToken* find(int32_t id) const;
    const AddedToken* find(std::string_view content) const;
    const std::vector<AddedToken>& all() const { return tokens_; }

private:
    // A byte trie over token contents for leftmost-longest matching.
    class Trie {
    public:
        void insert(std::string_view key, int32_t token_index);
        // Longest key starting at text[pos]: returns its token index and sets `end`, or -1.
        int32_t longest_at(std::string_view text, size_t pos, size_t& end) const;
        bool empty() const { return terminal_.size() <= 1; }

    private:
        std::unordered_map<uint64_t, int32_t> edges_;  // (node << 8 | byte) → child node
        std::vector<int32_t> terminal_{-1};            // per node: token index ending there, or -1
        bool first_byte_[256] = {};                    // cheap filter: can a key start with this byte?
    };

    struct Match {
        int32_t token_index;
        size_t begin;
        size_t end;
    };

    void split_pass(std::string_view text, const Trie& trie, const OnText& on_text, const OnToken& on_token) const;
    std::vector<Match> find_matches(std::string_view text, const Trie& trie) const;
    bool is_word_char_before(std::string_view text, size_t pos) const;
    bool is_word_char_at(std::string_view text, size_t pos) const;

    std::vector<AddedToken> tokens_;
    std::unordered_map<int32_t, size_t> by_id_;
    StringMap<size_t> by_content_;
    Trie raw_trie_;         // tokens with normalized = false: matched in the raw text first
    Trie normalized_trie_;  // the others: matched in the normalized remaining pieces
    std::shared_ptr<const Regex> word_char_;  // \w, for single_word tokens
};

}  // namespace planeq::tokenizer_detail
