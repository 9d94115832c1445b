// Whole-file reads with planeq errors (missing, unreadable, not a regular file).
#pragma once

#include <filesystem>
#include <string>

namespace planeq {

std::string read_text_file(const std::filesystem::path& path);

}  // namespace planeq
