#include "core/process_memory.hpp"

#include <fstream>
#include <string>

namespace planeq {

int64_t rss_kib() {
    std::ifstream in("/proc/self/status");
    std::string key;
    while (in >> key) {
        if (key == "VmRSS:") {
            int64_t v = 0;
            in >> v;
            return v;
        }
        std::getline(in, key);
    }
    return 0;
}

}  // namespace planeq
