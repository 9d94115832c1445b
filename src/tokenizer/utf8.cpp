#include "tokenizer/utf8.hpp"

namespace planeq::utf8 {
namespace {

// Length of the valid sequence starting at `pos`, or 0 when it is invalid; `valid_prefix` receives how
// many bytes form the maximal subpart of an invalid sequence (at least 1), so a lossy repair can resume
// right after it. The second-byte ranges exclude overlong forms, surrogates and code points > U+10FFFF.
size_t sequence_length(std::string_view s, size_t pos, size_t& valid_prefix) {
    const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char lead = byte(pos);
    valid_prefix = 1;
    if (lead < 0x80) return 1;
    size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        need = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        need = 2;
        if (lead == 0xE0) lo = 0xA0;
        if (lead == 0xED) hi = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        need = 3;
        if (lead == 0xF0) lo = 0x90;
        if (lead == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    for (size_t k = 1; k <= need; ++k) {
        if (pos + k >= s.size()) return 0;
        const unsigned char c = byte(pos + k);
        if (c < lo || c > hi) return 0;
        lo = 0x80;
        hi = 0xBF;
        valid_prefix = k + 1;
    }
    return need + 1;
}

}  // namespace

size_t find_invalid(std::string_view text) {
    size_t pos = 0;
    while (pos < text.size()) {
        // ASCII fast path: most input is plain text.
        if (static_cast<unsigned char>(text[pos]) < 0x80) {
            ++pos;
            continue;
        }
        size_t prefix = 0;
        const size_t len = sequence_length(text, pos, prefix);
        if (len == 0) return pos;
        pos += len;
    }
    return std::string_view::npos;
}

std::string repair_lossy(std::string_view bytes) {
    if (find_invalid(bytes) == std::string_view::npos) return std::string(bytes);
    std::string out;
    out.reserve(bytes.size() + 16);
    size_t pos = 0;
    while (pos < bytes.size()) {
        size_t prefix = 0;
        const size_t len = sequence_length(bytes, pos, prefix);
        if (len == 0) {
            out += "\xEF\xBF\xBD";  // U+FFFD
            pos += prefix;
        } else {
            out.append(bytes.substr(pos, len));
            pos += len;
        }
    }
    return out;
}

char32_t next(std::string_view text, size_t& pos) {
    const auto byte = [&](size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(text[i])); };
    const char32_t lead = byte(pos);
    if (lead < 0x80) {
        pos += 1;
        return lead;
    }
    if (lead < 0xE0) {
        const char32_t cp = ((lead & 0x1F) << 6) | (byte(pos + 1) & 0x3F);
        pos += 2;
        return cp;
    }
    if (lead < 0xF0) {
        const char32_t cp = ((lead & 0x0F) << 12) | ((byte(pos + 1) & 0x3F) << 6) | (byte(pos + 2) & 0x3F);
        pos += 3;
        return cp;
    }
    const char32_t cp = ((lead & 0x07) << 18) | ((byte(pos + 1) & 0x3F) << 12) | ((byte(pos + 2) & 0x3F) << 6) |
                        (byte(pos + 3) & 0x3F);
    pos += 4;
    return cp;
}

char32_t previous(std::string_view text, size_t end, size_t& start) {
    start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    size_t pos = start;
    return next(text, pos);
}

void append(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

size_t first_char_length(std::string_view text) {
    if (text.empty()) return 0;
    size_t end = 0;
    next(text, end);
    return end;
}

bool is_whitespace(char32_t cp) {
    switch (cp) {
        case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
        case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
            return true;
        default:
            return cp >= 0x2000 && cp <= 0x200A;
    }
}

}  // namespace planeq::utf8
