#include "core/progress.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace planeq {

namespace {
std::atomic<bool> g_enabled{true};

std::string format_seconds(double s) {
    char buf[32];
    if (s < 0 || s > 1e7) return "--:--";
    const int t = int(s + 0.5);
    if (t >= 3600) std::snprintf(buf, sizeof buf, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else std::snprintf(buf, sizeof buf, "%02d:%02d", t / 60, t % 60);
    return buf;
}
}  // namespace

void Progress::set_enabled(bool on) { g_enabled = on; }

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total),
      start_(std::chrono::steady_clock::now()), last_draw_(start_),
      active_(g_enabled && isatty(STDERR_FILENO)) {}

Progress::~Progress() { finish(); }

void Progress::update(int64_t done, const std::string& note) {
    done_ = done;
    note_ = note;
    if (!active_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
    last_draw_ = now;
    draw(false);
}

void Progress::finish() {
    if (finished_) return;
    finished_ = true;
    if (active_) {
        draw(true);
        std::fputc('\n', stderr);
    }
}

void Progress::draw(bool final) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double frac = total_ > 0 ? double(done_) / double(total_) : 0.0;
    const int width = 28, filled = int(frac * width);
    std::string bar(size_t(filled), '#');
    bar.resize(width, '.');
    const double eta = done_ > 0 ? elapsed * (double(total_) - double(done_)) / double(done_) : -1;
    const double rate = elapsed > 0 ? double(done_) / elapsed : 0;
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %s %.1f/s %s %s%s\x1b[K", label_.c_str(), bar.c_str(), (long long)done_,
                 (long long)total_, unit_.c_str(), rate, final ? "in" : "ETA", format_seconds(final ? elapsed : eta).c_str(),
                 note_.empty() ? "" : ("  " + note_).c_str());
    std::fflush(stderr);
}

}  // namespace planeq
