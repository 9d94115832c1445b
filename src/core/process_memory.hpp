// Resident memory of this process, for `run --memory-every` and the bounded-memory tests.
#pragma once

#include <cstdint>

namespace planeq {

// VmRSS of /proc/self/status in KiB; 0 where unavailable.
int64_t rss_kib();

}  // namespace planeq
