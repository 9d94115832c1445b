#include "tokenizer/pretokenizer.hpp"

#include <string>
#include <utility>

#include "tokenizer/format_error.hpp"

namespace planeq::tokenizer_detail {
namespace {

// The pattern ByteLevel applies itself when use_regex is true (GPT-2's, as in HF's byte_level.rs).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

SplitBehavior parse_behavior(const std::string& name, const std::string& where) {
    if (name == "Removed") return SplitBehavior::Removed;
    if (name == "Isolated") return SplitBehavior::Isolated;
    if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
    if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
    if (name == "Contiguous") return SplitBehavior::Contiguous;
    throw FormatError(where + ": unknown split behavior \"" + name + "\"");
}

std::shared_ptr<const Regex> parse_pattern(const nlohmann::json& pattern, const std::string& where) {
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string())
        return std::make_shared<const Regex>(pattern["Regex"].get<std::string>(), false);
    if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string())
        return std::make_shared<const Regex>(pattern["String"].get<std::string>(), true);
    throw FormatError(where + ".pattern must be {\"Regex\": ...} or {\"String\": ...}");
}

// Turns the segments of one split — matches and the gaps between them, in order, covering the text —
// into the pieces HF's NormalizedString::split keeps for each behavior. It streams: at most one piece
// is held back, for a following segment that may still join it, so no list of a whole file's matches
// is ever built.
template <class Emit>
class PieceJoiner {
public:
    PieceJoiner(SplitBehavior behavior, Emit emit) : behavior_(behavior), emit_(std::move(emit)) {}

    void add(Span span, bool is_match) {
        switch (behavior_) {
            case SplitBehavior::Isolated:
                emit(span);
                break;
            case SplitBehavior::Removed:
                if (!is_match) emit(span);
                break;
            case SplitBehavior::Contiguous:  // runs of matches (and of gaps) become one piece
                if (has_pending_ && is_match == previous_match_) pending_.end = span.end;
                else hold(span);
                break;
            case SplitBehavior::MergedWithPrevious:  // a match joins the gap before it
                if (has_pending_ && is_match && !previous_match_) pending_.end = span.end;
                else hold(span);
                break;
            case SplitBehavior::MergedWithNext:  // a match joins the gap after it
                if (has_pending_ && previous_match_ && !is_match) {
                    pending_.end = span.end;
                    flush();
                } else {
                    hold(span);
                }
                break;
        }
        previous_match_ = is_match;
    }

    void finish() { flush(); }

private:
    void emit(Span span) {
        if (span.end > span.begin) emit_(span);  // HF drops empty pieces after every split
    }
    void flush() {
        if (has_pending_) emit(pending_);
        has_pending_ = false;
    }
    void hold(Span span) {
        flush();
        pending_ = span;
        has_pending_ = true;
    }

    SplitBehavior behavior_;
    Emit emit_;
    Span pending_;
    bool has_pending_ = false;
    bool previous_match_ = false;
};

}  // namespace

PreTokenizer PreTokenizer::from_json(const nlohmann::json& spec) {
    if (spec.is_null())
        throw FormatError("pre_tokenizer is null; only byte-level BPE (a ByteLevel pre-tokenizer) is supported");
    PreTokenizer result;
    bool seen_byte_level = false;
    result.add_component(spec, "pre_tokenizer", seen_byte_level);
    if (!seen_byte_level)
        throw FormatError("pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
    return result;
}

void PreTokenizer::add_component(const nlohmann::json& spec, const std::string& where, bool& seen_byte_level) {
    const std::string type = type_of(spec, where);
    if (type == "Sequence") {
        const nlohmann::json& parts = required(spec, "pretokenizers", where);
        if (!parts.is_array()) throw FormatError(where + ".pretokenizers is not an array");
        for (size_t i = 0; i < parts.size(); ++i)
            add_component(parts[i], where + ".pretokenizers[" + std::to_string(i) + "]", seen_byte_level);
        return;
    }
    // BPE receives raw bytes, so every split must happen before the byte → unicode mapping.
    if (seen_byte_level)
        throw FormatError(where + ": a \"" + type + "\" step after ByteLevel is not supported");
    if (type == "Split") {
        Step step;
        step.regex = parse_pattern(required(spec, "pattern", where), where);
        step.behavior = parse_behavior(required_string(spec, "behavior", where), where);
        step.invert = optional_bool(spec, "invert", false, where);
        steps_.push_back(std::move(step));
    } else if (type == "ByteLevel") {
        seen_byte_level = true;
        // HF prepends the space to every piece that reaches ByteLevel, then applies its own regex.
        if (optional_bool(spec, "add_prefix_space", true, where)) steps_.push_back(Step{});
        if (optional_bool(spec, "use_regex", true, where))
            steps_.push_back(Step{std::make_shared<const Regex>(kGpt2Pattern, false), SplitBehavior::Isolated, false});
    } else {
        throw FormatError(where + ": unsupported pre-tokenizer type \"" + type + "\"");
    }
}

void PreTokenizer::run(std::string_view text, const std::function<void(std::string_view)>& emit) const {
    run_step(0, text, emit);
}

// Depth first: each piece a step produces goes through the remaining steps before the next piece is
// made, which yields the same order as HF's step-by-step processing of the whole piece list.
void PreTokenizer::run_step(size_t step, std::string_view piece,
                            const std::function<void(std::string_view)>& emit) const {
    if (step == steps_.size()) {
        emit(piece);
        return;
    }
    const Step& s = steps_[step];
    if (!s.regex) {
        if (piece.starts_with(' ')) {
            run_step(step + 1, piece, emit);
        } else {
            std::string prefixed;
            prefixed.reserve(piece.size() + 1);
            prefixed.push_back(' ');
            prefixed.append(piece);
            run_step(step + 1, prefixed, emit);
        }
        return;
    }
    PieceJoiner joiner(s.behavior, [&](Span p) { run_step(step + 1, piece.substr(p.begin, p.end - p.begin), emit); });
    size_t previous_end = 0;
    s.regex->for_each_match(piece, [&](Span m) {
        if (m.begin != previous_end) joiner.add({previous_end, m.begin}, s.invert);
        joiner.add(m, !s.invert);
        previous_end = m.end;
    });
    if (previous_end != piece.size()) joiner.add({previous_end, piece.size()}, s.invert);
    joiner.finish();
}

}  // namespace planeq::tokenizer_detail
