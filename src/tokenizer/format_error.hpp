// A problem in the contents of a tokenizer.json, and small checked accessors for its JSON. The parsing
// code does not know the file name, so it throws FormatError; Tokenizer::load turns that into a
// planeq::Error "path: problem".
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "tokenizer/utf8.hpp"

namespace planeq::tokenizer_detail {

struct FormatError : std::runtime_error {
    explicit FormatError(const std::string& problem) : std::runtime_error(problem) {}
};

// obj[key], which must exist. `where` names the object in the message, e.g. "pre_tokenizer".
inline const nlohmann::json& required(const nlohmann::json& obj, const char* key, const std::string& where) {
    if (!obj.is_object()) throw FormatError(where + " is not a JSON object");
    const auto it = obj.find(key);
    if (it == obj.end()) throw FormatError(where + " has no \"" + key + "\"");
    return *it;
}

inline std::string required_string(const nlohmann::json& obj, const char* key, const std::string& where) {
    const nlohmann::json& value = required(obj, key, where);
    if (!value.is_string()) throw FormatError(where + "." + key + " is not a string");
    return value.get<std::string>();
}

// obj[key] as a bool; `fallback` when absent or null (tokenizer.json omits defaults in older versions).
inline bool optional_bool(const nlohmann::json& obj, const char* key, bool fallback, const std::string& where) {
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) throw FormatError(where + "." + key + " is not true/false");
    return it->get<bool>();
}

// obj[key] as a string of exactly one character (what a Rust `char` field holds).
inline std::string required_char(const nlohmann::json& obj, const char* key, const std::string& where) {
    const std::string value = required_string(obj, key, where);
    if (utf8::find_invalid(value) != std::string::npos || value.empty() || utf8::first_char_length(value) != value.size())
        throw FormatError(where + "." + key + " must be a single character");
    return value;
}

// obj[key] as a non-negative integer (a Rust `usize` field).
inline size_t required_count(const nlohmann::json& obj, const char* key, const std::string& where) {
    const nlohmann::json& value = required(obj, key, where);
    if (!value.is_number_unsigned()) throw FormatError(where + "." + key + " is not a non-negative integer");
    return value.get<size_t>();
}

// The "type" of a component object such as a pre-tokenizer or post-processor.
inline std::string type_of(const nlohmann::json& obj, const std::string& where) {
    return required_string(obj, "type", where);
}

}  // namespace planeq::tokenizer_detail
