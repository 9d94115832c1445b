#include "tokenizer/regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.hpp"
#include "tokenizer/format_error.hpp"

namespace planeq::tokenizer_detail {
namespace {

std::string pcre2_message(int code) {
    PCRE2_UCHAR buffer[256];
    if (pcre2_get_error_message(code, buffer, sizeof buffer) < 0) return "PCRE2 error " + std::to_string(code);
    return reinterpret_cast<const char*>(buffer);
}

// Match data and the JIT stack are per thread: a compiled pattern may be shared by threads, these may
// not. Reusing them avoids an allocation per pre-token. A one-pair ovector suffices for any pattern
// since only the whole match is read. The JIT stack grows up to 8 MiB for patterns that backtrack a lot.
struct Scratch {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    pcre2_match_context* context = pcre2_match_context_create(nullptr);
    pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);

    Scratch() {
        if (!data || !context) throw Error("tokenizer: out of memory creating PCRE2 match data");
        if (jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
    }
    ~Scratch() {
        pcre2_jit_stack_free(jit_stack);
        pcre2_match_context_free(context);
        pcre2_match_data_free(data);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
};

Scratch& thread_scratch() {
    thread_local Scratch scratch;
    return scratch;
}

// Oniguruma (HF's engine) and PCRE2 disagree on two shorthand classes under Unicode rules: PCRE2's \s
// also matches U+180E and its \w takes every number (e.g. "½") but no marks. So both are rewritten to
// the properties Oniguruma uses: \s = White_Space, \w = Alphabetic, Mark, Decimal_Number,
// Connector_Punctuation, Join_Control (\W inside a [...] class is left to PCRE2: it has no union form).
constexpr std::string_view kSpace = R"(\p{White_Space})";
constexpr std::string_view kNotSpace = R"(\P{White_Space})";
constexpr std::string_view kWordItems = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control})";

std::string oniguruma_compatible(std::string_view pattern) {
    std::string out;
    out.reserve(pattern.size() + 64);
    bool in_class = false;
    size_t class_first = 0;  // where the class's first member starts: a ']' there is a literal
    for (size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            const char e = pattern[++i];
            if (e == 'Q') {  // \Q...\E quotes everything up to \E
                const size_t quote_end = pattern.find("\\E", i + 1);
                const size_t end = quote_end == std::string_view::npos ? pattern.size() : quote_end + 2;
                out.append(pattern.substr(i - 1, end - (i - 1)));
                i = end - 1;
            } else if (e == 's') {
                out += kSpace;
            } else if (e == 'S') {
                out += kNotSpace;
            } else if (e == 'w') {
                if (in_class) out += kWordItems;
                else out.append("[").append(kWordItems).append("]");
            } else if (e == 'W' && !in_class) {
                out.append("[^").append(kWordItems).append("]");
            } else {
                out += c;
                out += e;
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            class_first = i + 1 + (i + 1 < pattern.size() && pattern[i + 1] == '^' ? 1 : 0);
            out.append(pattern.substr(i, class_first - i));
            i = class_first - 1;
            continue;
        }
        if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {  // POSIX [:alpha:]
            const size_t end = pattern.find(":]", i + 2);
            if (end != std::string_view::npos) {
                out.append(pattern.substr(i, end + 2 - i));
                i = end + 1;
                continue;
            }
        }
        if (in_class && c == ']' && i != class_first) in_class = false;
        out += c;
    }
    return out;
}

}  // namespace

struct Regex::Code {
    pcre2_code* code = nullptr;
    ~Code() { pcre2_code_free(code); }
};

Regex::Regex(std::string_view pattern, bool literal) : code_(std::make_unique<Code>()) {
    // PCRE2_LITERAL rejects UCP (irrelevant without character classes anyway). Oniguruma's Ruby syntax
    // anchors ^ and $ at every line, hence MULTILINE.
    const uint32_t options = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE;
    const std::string source = literal ? std::string(pattern) : oniguruma_compatible(pattern);
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(), options, &error,
                                &error_offset, nullptr);
    if (!code_->code) {
        // The offset refers to the rewritten pattern, so it is not reported.
        throw FormatError("invalid regex \"" + std::string(pattern) + "\": " + pcre2_message(error));
    }
    // JIT is an optimisation only: without it (e.g. a platform PCRE2 lacks it for) the interpreter runs.
    pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() = default;

bool Regex::find(std::string_view subject, size_t from, Span& match) const {
    Scratch& scratch = thread_scratch();
    const int rc = pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), from,
                               PCRE2_NO_UTF_CHECK, scratch.data, scratch.context);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) throw Error("tokenizer: pre-tokenizer regex failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data);
    match.begin = ovector[0];
    match.end = ovector[1] < ovector[0] ? ovector[0] : ovector[1];  // \K can report end < begin
    return true;
}

std::shared_ptr<const Regex> parse_pattern(const nlohmann::json& pattern, const std::string& where) {
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string())
        return std::make_shared<const Regex>(pattern["Regex"].get<std::string>(), false);
    if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string())
        return std::make_shared<const Regex>(pattern["String"].get<std::string>(), true);
    throw FormatError(where + ".pattern must be {\"Regex\": ...} or {\"String\": ...}");
}

}  // namespace planeq::tokenizer_detail
