// Pieces every planeq subcommand shares: thread count, --json, locating bundled files.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace planeq::cli {

struct CommonOptions {
    int threads = 0;  // 0 = all hardware threads
    bool json = false;
};

void add_common(CLI::App& cmd, CommonOptions& opt, bool with_json = true);
void apply_threads(const CommonOptions& opt);  // OpenMP and OpenBLAS thread counts
int thread_count();

std::filesystem::path bundled_path(const std::string& relative);  // models/..., data/... of the source tree
void print_json(const nlohmann::json& j);
std::string human_bytes(double bytes);

// Subcommand registrations (one file each).
void register_tokenize(CLI::App& app);
void register_ppl(CLI::App& app);
void register_quantize(CLI::App& app);
void register_allocate(CLI::App& app);
void register_bench(CLI::App& app);
void register_bench_quant(CLI::App& app);
void register_kld(CLI::App& app);
void register_run(CLI::App& app);
void register_info(CLI::App& app);
void register_demo(CLI::App& app);
void register_inspect(CLI::App& app);

}  // namespace planeq::cli
