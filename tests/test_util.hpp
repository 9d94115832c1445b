// Shared helpers for the test suite: where the reference models live, temp dirs, running the CLI.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.hpp"
#include "formats/dense.hpp"

namespace planeq::test {

namespace fs = std::filesystem;

// An f32 PackedWeight holding a copy of v ([rows × cols], row-major).
inline PackedWeight f32_weight(int64_t rows, int64_t cols, const std::vector<float>& v) {
    PackedWeight w;
    w.format = &kFormatF32;
    w.rows = rows;
    w.cols = cols;
    w.params.bits = 32;
    w.add_part(PartSpec{"weight", DType::F32, {rows, cols}},
               std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)));
    return w;
}

// Every SIMD level this CPU runs, computed once by probing (set_simd_level caps at the hardware's best), so
// the answer does not depend on whatever level a test has forced at the time of the call.
inline const std::vector<SimdLevel>& available_levels() {
    static const std::vector<SimdLevel> levels = [] {
        const SimdLevel saved = simd_level();
        set_simd_level(SimdLevel::Avx512);
        const SimdLevel best = simd_level();
        set_simd_level(saved);
        std::vector<SimdLevel> out{SimdLevel::Scalar};
        if (int(best) >= int(SimdLevel::Avx2)) out.push_back(SimdLevel::Avx2);
        if (int(best) >= int(SimdLevel::Avx512)) out.push_back(SimdLevel::Avx512);
        return out;
    }();
    return levels;
}

inline fs::path source_dir() { return fs::path(PLANEQ_SOURCE_DIR); }
inline fs::path bundled_model() { return source_dir() / "models" / "tiny-llama"; }
// ../shared beside the checkout (present in CI and here); tests that need it skip when absent.
inline fs::path shared_dir() { return source_dir() / ".." / "shared"; }
inline fs::path shared_model(const std::string& name) { return shared_dir() / "models" / name; }

#define PLANEQ_REQUIRE_PATH(p) \
    if (!std::filesystem::exists(p)) GTEST_SKIP() << "not present: " << (p)

inline nlohmann::json read_json(const fs::path& p) {
    std::ifstream in(p);
    return nlohmann::json::parse(in);
}

// A fresh directory under the system temp dir, removed when the object dies.
struct TempDir {
    fs::path path;
    TempDir() {
        std::random_device rd;
        path = fs::temp_directory_path() / ("planeq-test-" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path operator/(const std::string& s) const { return path / s; }
};

inline void write_file(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
}

struct CommandResult {
    int exit_code;
    std::string output;  // stdout and stderr together
};

// Runs the planeq CLI with the given argument string (shell-quoted by the caller).
inline CommandResult run_cli(const std::string& args) {
    const std::string cmd = std::string(PLANEQ_CLI_PATH) + " " + args + " 2>&1";
    CommandResult r{-1, ""};
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
    const int status = pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

}  // namespace planeq::test
