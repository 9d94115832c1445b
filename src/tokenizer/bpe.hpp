// The BPE model of a tokenizer.json ("model": {"type": "BPE", ...}): a pre-token becomes one symbol per
// character, then the lowest-ranked adjacent pair is merged until no pair has a merge, exactly as
// Hugging Face's BPE::merge_word and Word::merge_all do. For a byte-level vocabulary the characters are
// those of the byte → unicode mapping, so the model takes raw bytes and maps each one itself.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace planeq::tokenizer_detail {

// Hash for unordered_map<std::string, ...> that also accepts string_view keys without a copy.
struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

class BpeModel {
public:
    // Memoised results per pre-token. Text repeats words constantly, so most pre-tokens skip the merge
    // loop. One cache per encode call keeps Tokenizer::encode thread-safe without locks.
    class Cache {
    public:
        // Whether `word` is cached; if so its ids are appended to `out`.
        bool lookup(std::string_view word, std::vector<int32_t>& out) const;
        void store(std::string_view word, const int32_t* ids, size_t count);

    private:
        StringMap<std::pair<uint32_t, uint32_t>> index_;  // word → (offset, count) into ids_
        std::vector<int32_t> ids_;
    };

    // Parses "model"; throws FormatError for an unsupported type or option, bad vocab or bad merges.
    // `byte_level`: pre-tokens arrive as raw bytes to be spelled with the byte → unicode mapping;
    // otherwise they arrive spelled in the vocabulary's own alphabet (e.g. SentencePiece's "▁the").
    static BpeModel from_json(const nlohmann::json& model, bool byte_level);

    // Appends the ids of one pre-token (valid UTF-8 unless byte-level).
    void encode_word(std::string_view word, Cache& cache, std::vector<int32_t>& out) const;

    std::optional<int32_t> token_to_id(std::string_view token) const;
    // The vocabulary string of `id`, or null when the model has no such id.
    const std::string* id_to_token(int32_t id) const;
    size_t size() const { return vocab_.size(); }
    size_t id_bound() const { return has_id_.size(); }  // one more than the largest id

private:
    struct Merge {
        int32_t rank;
        int32_t new_id;
    };
    struct Symbol {
        int32_t id;
        int32_t prev;
        int32_t next;
        bool removed;
    };

    static uint64_t pair_key(int32_t left, int32_t right) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
    }
    void parse_vocab(const nlohmann::json& vocab);
    void parse_merges(const nlohmann::json& merges);
    void parse_options(const nlohmann::json& model);
    std::string_view next_character(std::string_view word, size_t& pos) const;
    bool byte_fallback_ids(std::string_view spelling, std::vector<int32_t>& ids) const;
    void initial_symbols(std::string_view word, std::vector<Symbol>& symbols) const;
    void merge_all(std::vector<Symbol>& symbols) const;

    StringMap<int32_t> vocab_;
    std::vector<std::string> id_to_token_;         // "" for ids the vocabulary skips (see has_id_)
    std::vector<bool> has_id_;
    std::unordered_map<uint64_t, Merge> merges_;   // (left id, right id) → rank and merged id
    // Byte-level: id of each byte's character; otherwise id of each ASCII character. -1 if absent.
    int32_t byte_ids_[256] = {};
    bool byte_level_ = true;
    std::optional<int32_t> unk_id_;
    bool fuse_unk_ = false;
    bool byte_fallback_ = false;
    bool ignore_merges_ = false;
    std::string continuing_subword_prefix_;
    std::string end_of_word_suffix_;
};

}  // namespace planeq::tokenizer_detail
