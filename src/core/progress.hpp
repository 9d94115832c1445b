// A one-line progress bar with rate and ETA on stderr, drawn only when stderr is a terminal
// (so logs and CI output stay clean). Updates are throttled to ~10 per second.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace planeq {

class Progress {
public:
    Progress(std::string label, int64_t total, std::string unit = "");
    ~Progress();
    void update(int64_t done, const std::string& note = "");
    void finish();
    static void set_enabled(bool on);  // --quiet / --json turn it off globally

private:
    void draw(bool final);
    std::string label_, unit_, note_;
    int64_t total_, done_ = 0;
    std::chrono::steady_clock::time_point start_, last_draw_;
    bool active_, finished_ = false;
};

}  // namespace planeq
