// One error type for every bad input planeq can meet. The message always names the file (or the
// option) and the problem; the CLI prints it on one line and exits with code 2.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

namespace planeq {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "path: problem" — the form every file-related error takes.
[[noreturn]] inline void fail_file(const std::filesystem::path& file, const std::string& problem) {
    throw Error(file.string() + ": " + problem);
}

[[noreturn]] inline void fail(const std::string& problem) { throw Error(problem); }

}  // namespace planeq
