#include "tokenizer/added_tokens.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "tokenizer/format_error.hpp"
#include "tokenizer/utf8.hpp"

namespace planeq::tokenizer_detail {
namespace {

AddedToken parse_token(const nlohmann::json& entry, const std::string& where) {
    AddedToken token;
    token.content = required_string(entry, "content", where);
    // The "id" must be there, as HF requires, but HF assigns ids itself (see AddedTokens::from_json).
    if (!required(entry, "id", where).is_number_integer()) throw FormatError(where + ".id is not an integer");
    token.special = optional_bool(entry, "special", false, where);
    token.single_word = optional_bool(entry, "single_word", false, where);
    token.lstrip = optional_bool(entry, "lstrip", false, where);
    token.rstrip = optional_bool(entry, "rstrip", false, where);
    // HF's default: special tokens are matched in the raw text, others after normalization.
    token.normalized = optional_bool(entry, "normalized", !token.special, where);
    return token;
}

}  // namespace

void AddedTokens::Trie::insert(std::string_view key, int32_t token_index) {
    int32_t node = 0;
    for (const char c : key) {
        const uint64_t edge = (static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(c);
        const auto [it, inserted] = edges_.try_emplace(edge, static_cast<int32_t>(terminal_.size()));
        if (inserted) terminal_.push_back(-1);
        node = it->second;
    }
    terminal_[node] = token_index;
    first_byte_[static_cast<unsigned char>(key.front())] = true;
}

int32_t AddedTokens::Trie::longest_at(std::string_view text, size_t pos, size_t& end) const {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) return -1;
    int32_t node = 0;
    int32_t best = -1;
    for (size_t i = pos; i < text.size(); ++i) {
        const auto it = edges_.find((static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(text[i]));
        if (it == edges_.end()) break;
        node = it->second;
        if (terminal_[node] >= 0) {
            best = terminal_[node];
            end = i + 1;
        }
    }
    return best;
}

// Ids follow HF's AddedVocabulary::add_tokens, not the "id" fields: a content seen before keeps its id
// (a repeat replaces its flags), a content in the model's vocabulary takes the model's id, and any other
// gets the next id after both the vocabulary and the added ids so far. In a file HF wrote, these agree
// with the "id" fields; in an edited one HF (and so planeq) renumbers.
AddedTokens AddedTokens::from_json(const nlohmann::json& list, const BpeModel& model, const Normalizer& normalizer) {
    AddedTokens result;
    result.word_char_ = std::make_shared<const Regex>(R"(\w)", false);
    if (list.is_null()) return result;
    if (!list.is_array()) throw FormatError("added_tokens is not an array");
    const auto vocab_size = static_cast<int64_t>(model.size());
    int64_t max_id = -1;
    for (size_t i = 0; i < list.size(); ++i) {
        AddedToken token = parse_token(list[i], "added_tokens[" + std::to_string(i) + "]");
        if (token.content.empty()) continue;  // HF skips these
        if (const auto seen = result.by_content_.find(token.content); seen != result.by_content_.end()) {
            token.id = result.tokens_[seen->second].id;
            result.tokens_[seen->second] = std::move(token);
            continue;
        }
        if (const auto model_id = model.token_to_id(token.content)) {
            token.id = *model_id;
        } else {
            const int64_t id = max_id >= vocab_size ? max_id + 1 : vocab_size;
            if (id > INT32_MAX) throw FormatError("added_tokens: too many tokens");
            token.id = static_cast<int32_t>(id);
        }
        max_id = std::max<int64_t>(max_id, token.id);
        result.by_content_.emplace(token.content, result.tokens_.size());
        result.tokens_.push_back(std::move(token));
    }
    for (size_t index = 0; index < result.tokens_.size(); ++index) {
        AddedToken& token = result.tokens_[index];
        result.by_id_.emplace(token.id, index);
        token.form = token.normalized ? normalizer.apply(token.content) : token.content;
        if (token.form.empty()) continue;  // normalized away: nothing left to match
        (token.normalized ? result.normalized_trie_ : result.raw_trie_).insert(token.form, static_cast<int32_t>(index));
    }
    return result;
}

const AddedToken* AddedTokens::find(int32_t id) const {
    const auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::find(std::string_view content) const {
    const auto it = by_content_.find(content);
    return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

void AddedTokens::split_raw(std::string_view text, const OnText& on_text, const OnToken& on_token) const {
    split_pass(text, raw_trie_, on_text, on_token);
}

void AddedTokens::split_normalized(std::string_view text, const OnText& on_text, const OnToken& on_token) const {
    split_pass(text, normalized_trie_, on_text, on_token);
}

void AddedTokens::split_pass(std::string_view text, const Trie& trie, const OnText& on_text,
                             const OnToken& on_token) const {
    size_t start = 0;
    if (!trie.empty()) {
        for (const Match& m : find_matches(text, trie)) {
            if (m.begin > start) on_text(text.substr(start, m.begin - start), start);
            on_token(tokens_[m.token_index].id);
            start = m.end;
        }
    }
    if (start < text.size()) on_text(text.substr(start), start);
}

// HF AddedVocabulary::find_matches: non-overlapping leftmost-longest matches, then the per-token rules.
// A match rejected by single_word is still skipped over, as HF's matcher has already consumed it.
std::vector<AddedTokens::Match> AddedTokens::find_matches(std::string_view text, const Trie& trie) const {
    std::vector<Match> matches;
    size_t covered = 0;  // end of the last accepted match
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = 0;
        const int32_t index = trie.longest_at(text, pos, end);
        if (index < 0) {
            ++pos;
            continue;
        }
        size_t begin = pos;
        pos = end;
        const AddedToken& token = tokens_[index];
        if (token.single_word && (is_word_char_before(text, begin) || is_word_char_at(text, end))) continue;
        if (token.lstrip) {
            size_t char_start = 0;
            while (begin > covered && utf8::is_whitespace(utf8::previous(text, begin, char_start)))
                begin = std::max(char_start, covered);
        }
        if (token.rstrip) {
            size_t next = end;
            while (end < text.size() && utf8::is_whitespace(utf8::next(text, next))) end = next;
        }
        begin = std::max(begin, covered);  // rstrip of the previous token may have taken these bytes
        matches.push_back({index, begin, end});
        covered = end;
    }
    return matches;
}

bool AddedTokens::is_word_char_before(std::string_view text, size_t pos) const {
    if (pos == 0) return false;
    size_t start = 0;
    utf8::previous(text, pos, start);
    Span match;
    return word_char_->find(text.substr(start, pos - start), 0, match);
}

bool AddedTokens::is_word_char_at(std::string_view text, size_t pos) const {
    if (pos >= text.size()) return false;
    size_t next = pos;
    utf8::next(text, next);
    Span match;
    return word_char_->find(text.substr(pos, next - pos), 0, match);
}

}  // namespace planeq::tokenizer_detail
