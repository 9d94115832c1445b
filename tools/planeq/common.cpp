#include "common.hpp"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "core/progress.hpp"

extern "C" void openblas_set_num_threads(int);

namespace planeq::cli {

void add_common(CLI::App& cmd, CommonOptions& opt, bool with_json) {
    cmd.add_option("-t,--threads", opt.threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
    if (with_json) cmd.add_flag("--json", opt.json, "Print one JSON object instead of text");
}

void apply_threads(const CommonOptions& opt) {
    const int n = opt.threads > 0 ? opt.threads : omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    if (opt.json) Progress::set_enabled(false);
}

int thread_count() { return omp_get_max_threads(); }

std::filesystem::path bundled_path(const std::string& relative) {
    // Next to the binary's source tree first (build dirs), then the working directory.
    namespace fs = std::filesystem;
    for (const fs::path& base : {fs::path(PLANEQ_SOURCE_DIR), fs::current_path()}) {
        const fs::path p = base / relative;
        if (fs::exists(p)) return p;
    }
    return fs::path(PLANEQ_SOURCE_DIR) / relative;
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

std::string human_bytes(double b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
    return buf;
}

}  // namespace planeq::cli
