#include "tokenizer/byte_level.hpp"

#include "tokenizer/utf8.hpp"

namespace planeq::byte_level {
namespace {

struct Tables {
    std::array<char32_t, 256> to_char{};
    std::array<std::string, 256> to_string;
    // Every mapped code point is below 324 (256 + the 68 remapped bytes), so a flat array inverts the map.
    std::array<int, 324> to_byte{};

    Tables() {
        // bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the others (controls, space,
        // DEL, NBSP, soft hyphen) are moved to 256, 257, ... in byte order.
        const auto keeps_itself = [](int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; };
        to_byte.fill(-1);
        char32_t next_free = 256;
        for (int b = 0; b < 256; ++b) {
            const char32_t cp = keeps_itself(b) ? static_cast<char32_t>(b) : next_free++;
            to_char[b] = cp;
            utf8::append(to_string[b], cp);
            to_byte[cp] = b;
        }
    }
};

const Tables& tables() {
    static const Tables t;
    return t;
}

}  // namespace

char32_t byte_to_char(unsigned char byte) { return tables().to_char[byte]; }

const std::string& byte_to_string(unsigned char byte) { return tables().to_string[byte]; }

std::string encode(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char c : bytes) out += byte_to_string(static_cast<unsigned char>(c));
    return out;
}

std::string decode_token(std::string_view token) {
    const Tables& t = tables();
    std::string out;
    out.reserve(token.size());
    size_t pos = 0;
    while (pos < token.size()) {
        const char32_t cp = utf8::next(token, pos);
        if (cp >= t.to_byte.size() || t.to_byte[cp] < 0) return std::string(token);
        out += static_cast<char>(t.to_byte[cp]);
    }
    return out;
}

}  // namespace planeq::byte_level
