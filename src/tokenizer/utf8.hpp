// UTF-8 helpers the tokenizer needs. Hugging Face works on Rust `&str`, which is always valid UTF-8,
// and repairs decoded bytes with `String::from_utf8_lossy`; these functions reproduce both behaviours.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace planeq::utf8 {

// Byte offset of the first invalid sequence in `text`, or npos when the whole text is valid UTF-8.
size_t find_invalid(std::string_view text);

// `bytes` with every invalid sequence replaced by U+FFFD, one replacement per maximal invalid
// subpart (the Unicode-recommended practice Rust's from_utf8_lossy follows).
std::string repair_lossy(std::string_view bytes);

// Decodes the code point at `pos` of valid UTF-8 text and advances `pos` past it.
char32_t next(std::string_view text, size_t& pos);

// Decodes the code point that ends at `end` (exclusive) of valid UTF-8 text; `start` receives its first byte.
char32_t previous(std::string_view text, size_t end, size_t& start);

void append(std::string& out, char32_t cp);

// Byte length of the first character of valid UTF-8 text (0 for empty text).
size_t first_char_length(std::string_view text);

// Rust's char::is_whitespace: the Unicode White_Space property.
bool is_whitespace(char32_t cp);

}  // namespace planeq::utf8
