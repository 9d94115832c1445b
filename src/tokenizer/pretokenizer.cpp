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

PrependScheme parse_prepend_scheme(const nlohmann::json& spec, const std::string& where) {
    const auto it = spec.find("prepend_scheme");
    if (it == spec.end()) return PrependScheme::Always;  // HF's default
    if (!it->is_string()) throw FormatError(where + ".prepend_scheme is not a string");
    const std::string name = it->get<std::string>();
    if (name == "always") return PrependScheme::Always;
    if (name == "first") return PrependScheme::First;
    if (name == "never") return PrependScheme::Never;
    throw FormatError(where + ": unknown prepend_scheme \"" + name + "\" (expected always, first or never)");
}

}  // namespace

MetaspaceOptions parse_metaspace(const nlohmann::json& spec, const std::string& where) {
    MetaspaceOptions options;
    options.replacement = required_char(spec, "replacement", where);
    options.prepend_scheme = parse_prepend_scheme(spec, where);
    options.split = optional_bool(spec, "split", true, where);
    // Files older than prepend_scheme say add_prefix_space; HF accepts false only with "never" spelled
    // out (the default scheme is "always"), and ignores true.
    if (!optional_bool(spec, "add_prefix_space", true, where)) {
        if (options.prepend_scheme != PrependScheme::Never)
            throw FormatError(where + ": add_prefix_space does not match declared prepend_scheme");
    }
    return options;
}

PreTokenizer PreTokenizer::from_json(const nlohmann::json& spec) {
    PreTokenizer result;
    if (!spec.is_null()) result.add_component(spec, "pre_tokenizer");
    return result;
}

void PreTokenizer::add_component(const nlohmann::json& spec, const std::string& where) {
    const std::string type = type_of(spec, where);
    if (type == "Sequence") {
        const nlohmann::json& parts = required(spec, "pretokenizers", where);
        if (!parts.is_array()) throw FormatError(where + ".pretokenizers is not an array");
        for (size_t i = 0; i < parts.size(); ++i)
            add_component(parts[i], where + ".pretokenizers[" + std::to_string(i) + "]");
        return;
    }
    // BPE receives raw bytes, so every split must happen before the byte → unicode mapping.
    if (byte_level_) throw FormatError(where + ": a \"" + type + "\" step after ByteLevel is not supported");
    if (type == "Split") {
        Step step;
        step.regex = parse_pattern(required(spec, "pattern", where), where);
        step.behavior = parse_behavior(required_string(spec, "behavior", where), where);
        step.invert = optional_bool(spec, "invert", false, where);
        steps_.push_back(std::move(step));
    } else if (type == "ByteLevel") {
        byte_level_ = true;
        // HF prepends the space to every piece that reaches ByteLevel, then applies its own regex.
        if (optional_bool(spec, "add_prefix_space", true, where)) {
            Step step;
            step.kind = Kind::PrefixSpace;
            steps_.push_back(std::move(step));
        }
        if (optional_bool(spec, "use_regex", true, where)) {
            Step step;
            step.regex = std::make_shared<const Regex>(kGpt2Pattern, false);
            steps_.push_back(std::move(step));
        }
    } else if (type == "Metaspace") {
        add_metaspace(spec, where);
    } else {
        throw FormatError(where + ": unsupported pre-tokenizer type \"" + type +
                          "\" (supported: Split, ByteLevel, Metaspace, Sequence)");
    }
}

void PreTokenizer::add_metaspace(const nlohmann::json& spec, const std::string& where) {
    Step step;
    step.kind = Kind::Metaspace;
    step.metaspace = parse_metaspace(spec, where);
    if (step.metaspace.split) {
        // HF splits on the character with MergedWithNext: each replacement starts a new piece.
        step.regex = std::make_shared<const Regex>(step.metaspace.replacement, true);
        step.behavior = SplitBehavior::MergedWithNext;
    }
    steps_.push_back(std::move(step));
}

void PreTokenizer::run(std::string_view text, size_t origin, const Emit& emit) const {
    run_step(0, text, origin, emit);
}

// Depth first: each piece a step produces goes through the remaining steps before the next piece is
// made, which yields the same order as HF's step-by-step processing of the whole piece list.
void PreTokenizer::run_step(size_t step, std::string_view piece, size_t origin, const Emit& emit) const {
    if (step == steps_.size()) {
        emit(piece);
        return;
    }
    switch (steps_[step].kind) {
        case Kind::Split:
            return run_split(step, piece, origin, emit);
        case Kind::PrefixSpace:
            return run_prefix_space(step, piece, origin, emit);
        case Kind::Metaspace:
            return run_metaspace(step, piece, origin, emit);
    }
}

// ByteLevel's add_prefix_space: a space in front of every piece that lacks one.
void PreTokenizer::run_prefix_space(size_t step, std::string_view piece, size_t origin, const Emit& emit) const {
    if (piece.starts_with(' ')) return run_step(step + 1, piece, origin, emit);
    std::string prefixed;
    prefixed.reserve(piece.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(piece);
    run_step(step + 1, prefixed, origin > 0 ? origin + 1 : 0, emit);
}

// HF Metaspace::pre_tokenize: spaces become the replacement character, which is then put in front as the
// prepend scheme says ("first": only when the piece's first byte is the input's first, origin > 0),
// and the piece is cut before every replacement character when `split` is set.
void PreTokenizer::run_metaspace(size_t step, std::string_view piece, size_t origin, const Emit& emit) const {
    const MetaspaceOptions& options = steps_[step].metaspace;
    std::string text;
    text.reserve(piece.size() + 2 * options.replacement.size());
    size_t new_origin = 0;
    for (size_t i = 0; i < piece.size(); ++i) {
        if (piece[i] == ' ') text += options.replacement;
        else text += piece[i];
        if (i + 1 == origin) new_origin = text.size();
    }
    const bool prepend = options.prepend_scheme == PrependScheme::Always ||
                         (options.prepend_scheme == PrependScheme::First && origin > 0);
    if (prepend && !text.starts_with(options.replacement)) {
        text.insert(0, options.replacement);
        if (new_origin > 0) new_origin += options.replacement.size();
    }
    if (!options.split) return run_step(step + 1, text, new_origin, emit);
    run_split(step, text, new_origin, emit);
}

// Cuts `piece` with the step's pattern and behavior; every sub-piece goes on to the next step.
void PreTokenizer::run_split(size_t step, std::string_view piece, size_t origin, const Emit& emit) const {
    const Step& s = steps_[step];
    PieceJoiner joiner(s.behavior, [&](Span p) {
        run_step(step + 1, piece.substr(p.begin, p.end - p.begin), origin > p.begin ? origin - p.begin : 0, emit);
    });
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
