// parallel_for: an OpenMP loop that is only formed when it pays.
//
// Why not `#pragma omp parallel for if (cond)`: with a false condition libgomp still creates a team of
// one and ends it with a futex wake — a system call per loop. Called per head inside another parallel
// region, that was 150k system calls per 512-token window and half the prefill time on this machine.
#pragma once

#include <omp.h>

#include <cstdint>

namespace planeq {

template <class Body>
void parallel_for(int64_t n, bool worth_it, Body&& body) {
    if (!worth_it || n < 2 || omp_in_parallel()) {
        for (int64_t i = 0; i < n; ++i) body(i);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) body(i);
}

}  // namespace planeq
