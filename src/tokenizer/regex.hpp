// A compiled PCRE2 pattern for pre-tokenizer splits. Hugging Face uses Oniguruma; PCRE2 with UTF + UCP
// has the same \p{L} / \p{N} classes and lookarounds that tokenizer.json patterns use (\s and \w are
// rewritten to Oniguruma's meaning, ^ and $ match at every line as in Ruby syntax), and its JIT keeps
// whole-file tokenization fast. pcre2.h stays out
// of this header (it needs a width macro).
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace planeq::tokenizer_detail {

struct Span {
    size_t begin = 0;
    size_t end = 0;
};

class Regex {
public:
    // `literal` compiles the text as a plain string (a Split pattern given as {"String": ...}).
    // Throws FormatError with PCRE2's message when the pattern does not compile.
    Regex(std::string_view pattern, bool literal);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // The first match in `subject` starting at or after byte `from` (a character boundary), as offsets
    // into subject; false when there is none. Lookarounds see all of `subject`. It must be valid UTF-8:
    // PCRE2 would otherwise check the whole subject on every call, which makes a scan quadratic.
    bool find(std::string_view subject, size_t from, Span& match) const;

    // Calls on_match(span) for every non-overlapping match, left to right, as the Rust onig crate's
    // find_iter (used by HF) does: an empty match that ends where the previous match ended is skipped,
    // and the search resumes one character further on.
    template <class OnMatch>
    void for_each_match(std::string_view subject, OnMatch&& on_match) const {
        Span match;
        size_t from = 0;
        size_t last_end = 0;
        bool any = false;
        while (from <= subject.size() && find(subject, from, match)) {
            if (match.end == match.begin && any && match.end == last_end) {
                if (from == subject.size()) break;
                from += utf8_length(static_cast<unsigned char>(subject[from]));
                continue;
            }
            on_match(match);
            from = last_end = match.end;
            any = true;
        }
    }

private:
    static size_t utf8_length(unsigned char lead) { return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

    struct Code;
    std::unique_ptr<Code> code_;
};

// The "pattern" of a Split pre-tokenizer or a Replace normalizer / decoder: {"Regex": "..."} or
// {"String": "..."} (a literal). Throws FormatError naming `where` for anything else.
std::shared_ptr<const Regex> parse_pattern(const nlohmann::json& pattern, const std::string& where);

}  // namespace planeq::tokenizer_detail
