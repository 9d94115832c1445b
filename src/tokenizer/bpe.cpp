#include "tokenizer/bpe.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "tokenizer/byte_level.hpp"
#include "tokenizer/format_error.hpp"
#include "tokenizer/utf8.hpp"

namespace planeq::tokenizer_detail {
namespace {

// Words longer than this are not cached: long runs (e.g. of spaces or digits) are rare and would only
// bloat the cache.
constexpr size_t kMaxCachedWordBytes = 256;

std::optional<std::string> optional_string(const nlohmann::json& obj, const char* key) {
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) throw FormatError(std::string("model.") + key + " is not a string");
    return it->get<std::string>();
}

// The two sides of merge `entry`: either "left right" (older files) or ["left", "right"] (newer files).
std::pair<std::string, std::string> merge_sides(const nlohmann::json& entry, size_t index) {
    const std::string where = "model.merges[" + std::to_string(index) + "]";
    if (entry.is_string()) {
        const std::string text = entry.get<std::string>();
        const size_t space = text.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == text.size())
            throw FormatError(where + " \"" + text + "\" is not of the form \"left right\"");
        return {text.substr(0, space), text.substr(space + 1)};
    }
    if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string())
        return {entry[0].get<std::string>(), entry[1].get<std::string>()};
    throw FormatError(where + " is neither \"left right\" nor [\"left\", \"right\"]");
}

// Entry of the merge queue; the lowest rank merges first and, among equal ranks, the leftmost pair.
struct QueuedMerge {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator<(const QueuedMerge& other) const {  // "less urgent than", for std::priority_queue
        return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
};

}  // namespace

bool BpeModel::Cache::lookup(std::string_view word, std::vector<int32_t>& out) const {
    const auto it = index_.find(word);
    if (it == index_.end()) return false;
    const auto [offset, count] = it->second;
    out.insert(out.end(), ids_.begin() + offset, ids_.begin() + offset + count);
    return true;
}

void BpeModel::Cache::store(std::string_view word, const int32_t* ids, size_t count) {
    if (word.size() > kMaxCachedWordBytes) return;
    index_.emplace(std::string(word), std::pair{static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(count)});
    ids_.insert(ids_.end(), ids, ids + count);
}

BpeModel BpeModel::from_json(const nlohmann::json& model, bool byte_level) {
    if (!model.is_object()) throw FormatError("\"model\" is not a JSON object");
    const std::string type = model.contains("type") ? type_of(model, "model") : "BPE";  // old files omit it
    if (type != "BPE") throw FormatError("unsupported model type \"" + type + "\" (only BPE is supported)");
    BpeModel result;
    result.parse_vocab(required(model, "vocab", "model"));
    result.parse_options(model);
    result.parse_merges(required(model, "merges", "model"));
    result.byte_level_ = byte_level;
    for (int b = 0; b < 256; ++b) {
        const auto byte = static_cast<unsigned char>(b);
        std::optional<int32_t> id;
        if (byte_level) id = result.token_to_id(byte_level::byte_to_string(byte));
        else if (byte < 0x80) id = result.token_to_id(std::string(1, static_cast<char>(byte)));
        result.byte_ids_[b] = id.value_or(-1);
    }
    return result;
}

void BpeModel::parse_vocab(const nlohmann::json& vocab) {
    if (!vocab.is_object()) throw FormatError("model.vocab is not a JSON object");
    vocab_.reserve(vocab.size());
    for (const auto& [token, value] : vocab.items()) {
        if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > INT32_MAX)
            throw FormatError("model.vocab[\"" + token + "\"] is not a valid token id");
        const auto id = static_cast<int32_t>(value.get<int64_t>());
        vocab_.emplace(token, id);
        if (static_cast<size_t>(id) >= id_to_token_.size()) {
            id_to_token_.resize(static_cast<size_t>(id) + 1);
            has_id_.resize(static_cast<size_t>(id) + 1, false);
        }
        id_to_token_[id] = token;
        has_id_[id] = true;
    }
}

void BpeModel::parse_options(const nlohmann::json& model) {
    const auto dropout = model.find("dropout");
    if (dropout != model.end() && !dropout->is_null() && (!dropout->is_number() || dropout->get<double>() != 0.0))
        throw FormatError("model.dropout is set: BPE dropout (random merges) is not supported");
    if (const auto unk = optional_string(model, "unk_token")) {
        const auto id = token_to_id(*unk);
        if (!id) throw FormatError("model.unk_token \"" + *unk + "\" is not in the vocabulary");
        unk_id_ = *id;
    }
    fuse_unk_ = optional_bool(model, "fuse_unk", false, "model");
    byte_fallback_ = optional_bool(model, "byte_fallback", false, "model");
    ignore_merges_ = optional_bool(model, "ignore_merges", false, "model");
    continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix").value_or("");
    end_of_word_suffix_ = optional_string(model, "end_of_word_suffix").value_or("");
}

void BpeModel::parse_merges(const nlohmann::json& merges) {
    if (!merges.is_array()) throw FormatError("model.merges is not an array");
    merges_.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
        const auto [left, right] = merge_sides(merges[i], i);
        const std::string where = "model.merges[" + std::to_string(i) + "]";
        const auto left_id = token_to_id(left);
        if (!left_id) throw FormatError(where + ": token \"" + left + "\" is not in the vocabulary");
        const auto right_id = token_to_id(right);
        if (!right_id) throw FormatError(where + ": token \"" + right + "\" is not in the vocabulary");
        // HF drops the continuing-subword prefix of the right side when naming the merged token.
        const size_t skip = std::min(continuing_subword_prefix_.size(), right.size());
        const std::string merged = left + right.substr(skip);
        const auto merged_id = token_to_id(merged);
        if (!merged_id) throw FormatError(where + ": merged token \"" + merged + "\" is not in the vocabulary");
        // A repeated pair keeps its last rank, as HF's HashMap collect does.
        merges_.insert_or_assign(pair_key(*left_id, *right_id), Merge{static_cast<int32_t>(i), *merged_id});
    }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
    const auto it = vocab_.find(token);
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= has_id_.size() || !has_id_[id]) return nullptr;
    return &id_to_token_[id];
}

void BpeModel::encode_word(std::string_view word, Cache& cache, std::vector<int32_t>& out) const {
    if (word.empty() || cache.lookup(word, out)) return;
    const size_t first = out.size();
    std::optional<int32_t> whole;
    if (ignore_merges_) whole = byte_level_ ? token_to_id(byte_level::encode(word)) : token_to_id(word);
    if (whole) {
        // ignore_merges (Llama 3): a pre-token that is itself a vocabulary entry is never split.
        out.push_back(*whole);
    } else {
        std::vector<Symbol> symbols;
        initial_symbols(word, symbols);
        merge_all(symbols);
        for (const Symbol& s : symbols)
            if (!s.removed) out.push_back(s.id);
    }
    cache.store(word, out.data() + first, out.size() - first);
}

// The vocabulary spelling of the character at word[pos] (byte-level: of the byte there); advances pos.
std::string_view BpeModel::next_character(std::string_view word, size_t& pos) const {
    if (byte_level_) return byte_level::byte_to_string(static_cast<unsigned char>(word[pos++]));
    const size_t start = pos;
    utf8::next(word, pos);
    return word.substr(start, pos - start);
}

// Appends the byte fallback tokens "<0xNN>" of every byte of `spelling`; false (appending nothing) when
// the vocabulary lacks one of them.
bool BpeModel::byte_fallback_ids(std::string_view spelling, std::vector<int32_t>& ids) const {
    const size_t before = ids.size();
    for (const char c : spelling) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned char>(c));
        const auto id = token_to_id(name);
        if (!id) {
            ids.resize(before);
            return false;
        }
        ids.push_back(*id);
    }
    return true;
}

// One symbol per character (with the continuing-subword prefix / end-of-word suffix where set), with
// HF's handling of characters missing from the vocabulary: byte fallback tokens "<0xNN>", else the
// unknown token (consecutive ones fused when fuse_unk), else the character is dropped.
void BpeModel::initial_symbols(std::string_view word, std::vector<Symbol>& symbols) const {
    symbols.reserve(word.size());
    const auto push = [&](int32_t id) {
        const auto index = static_cast<int32_t>(symbols.size());
        symbols.push_back(Symbol{id, index - 1, -1, false});
        if (index > 0) symbols[index - 1].next = index;
    };
    const bool has_affixes = !continuing_subword_prefix_.empty() || !end_of_word_suffix_.empty();
    std::string affixed;
    std::vector<int32_t> fallback;
    int32_t pending_unk = -1;  // an unknown-token symbol not yet pushed, so fuse_unk can extend it
    size_t pos = 0;
    while (pos < word.size()) {
        const size_t start = pos;
        const auto lead = static_cast<unsigned char>(word[pos]);
        std::string_view spelling;  // the character as the vocabulary spells it, with any affixes
        int32_t id = -1;
        if (!has_affixes && (byte_level_ || lead < 0x80)) {
            ++pos;  // one byte, or one ASCII character: the common case, looked up in a table
            id = byte_ids_[lead];
        } else {
            spelling = next_character(word, pos);
            if (has_affixes) {
                affixed.assign(start > 0 ? continuing_subword_prefix_ : "").append(spelling);
                if (pos == word.size()) affixed += end_of_word_suffix_;
                spelling = affixed;
            }
            id = token_to_id(spelling).value_or(-1);
        }
        if (id >= 0) {
            if (pending_unk >= 0) push(pending_unk);
            pending_unk = -1;
            push(id);
            continue;
        }
        if (spelling.empty()) spelling = byte_level_ ? std::string_view(byte_level::byte_to_string(lead)) : word.substr(start, 1);
        fallback.clear();
        if (byte_fallback_ && byte_fallback_ids(spelling, fallback)) {
            for (const int32_t fid : fallback) push(fid);
            continue;  // HF leaves a pending unknown token pending here
        }
        if (!unk_id_) continue;
        if (pending_unk >= 0 && !fuse_unk_) push(pending_unk);
        pending_unk = *unk_id_;
    }
    if (pending_unk >= 0) push(pending_unk);
}

// HF Word::merge_all: a priority queue of candidate merges; entries made stale by an earlier merge are
// recognised because the pair at their position no longer yields the same merged id.
void BpeModel::merge_all(std::vector<Symbol>& symbols) const {
    std::priority_queue<QueuedMerge> queue;
    const auto find_merge = [&](int32_t left, int32_t right) -> const Merge* {
        const auto it = merges_.find(pair_key(left, right));
        return it == merges_.end() ? nullptr : &it->second;
    };
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        if (const Merge* m = find_merge(symbols[i].id, symbols[i + 1].id))
            queue.push({m->rank, static_cast<int32_t>(i), m->new_id});
    }
    while (!queue.empty()) {
        const QueuedMerge top = queue.top();
        queue.pop();
        Symbol& current = symbols[top.pos];
        if (current.removed || current.next < 0) continue;
        Symbol& right = symbols[current.next];
        const Merge* now = find_merge(current.id, right.id);
        if (!now || now->new_id != top.new_id) continue;

        current.id = top.new_id;
        right.removed = true;
        current.next = right.next;
        if (right.next >= 0) symbols[right.next].prev = top.pos;

        if (current.prev >= 0) {
            if (const Merge* m = find_merge(symbols[current.prev].id, current.id))
                queue.push({m->rank, current.prev, m->new_id});
        }
        if (current.next >= 0) {
            if (const Merge* m = find_merge(current.id, symbols[current.next].id))
                queue.push({m->rank, top.pos, m->new_id});
        }
    }
}

}  // namespace planeq::tokenizer_detail
