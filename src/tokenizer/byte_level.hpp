// GPT-2's byte <-> unicode table. Byte-level BPE vocabularies spell every byte as a printable code point
// (space → 'Ġ', newline → 'Ċ', ...) so that tokens are valid strings; encoding maps input bytes to those
// code points before BPE, decoding maps them back.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace planeq::byte_level {

// The code point GPT-2's bytes_to_unicode() assigns to `byte`.
char32_t byte_to_char(unsigned char byte);

// UTF-8 spelling of that code point, e.g. byte 0x20 → "Ġ".
const std::string& byte_to_string(unsigned char byte);

// The byte-level spelling of raw bytes: every byte replaced by byte_to_string(byte).
std::string encode(std::string_view bytes);

// The bytes a byte-level token spells. Like Hugging Face's ByteLevel decoder, a token with any character
// outside the table (e.g. an added token containing "中") stands for its own UTF-8 bytes instead.
std::string decode_token(std::string_view token);

}  // namespace planeq::byte_level
