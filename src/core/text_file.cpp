#include "core/text_file.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace planeq {

std::string read_text_file(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) fail_file(path, "no such file");
    if (std::filesystem::is_directory(path, ec)) fail_file(path, "is a directory, expected a file");
    std::ifstream in(path, std::ios::binary);
    if (!in) fail_file(path, std::string("cannot open: ") + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) fail_file(path, "read error");
    return std::move(ss).str();
}

}  // namespace planeq
