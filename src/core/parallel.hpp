// parallel_for: an OpenMP loop that is only formed when it pays.
//
// Why not `#pragma omp parallel for if (cond)`: with a false condition libgomp still creates a team of
// one and ends it with a futex wake — a system call per loop. Called per head inside another parallel
// region, that was 150k system calls per 512-token window and half the prefill time on this machine.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

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

// parallel_stream: body(lo, hi) over [0, n) in chunks of `chunk` items, for GEMVs that stream a weight.
//
// Each thread owns one contiguous range (n·t/T … n·(t+1)/T) and walks it front to back, so its reads
// are one sequential stream the hardware prefetcher can run ahead of; a thread that finishes early
// takes chunks from the back of the others' ranges, so a descheduled thread's work (a shared machine)
// is not waited for. Why not `schedule(dynamic)`: interleaving the threads' chunks breaks the streams,
// and the 8B-shape int4 decode ran ~17% slower with it on this machine (docs/formats.md); why not
// `schedule(static)`: no stealing. A range is one 64-bit word (lo << 32 | hi) changed by CAS.
template <class Body>
void parallel_stream(int64_t n, int64_t chunk, Body&& body) {
    chunk = std::max<int64_t>(1, chunk);
    const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt < 2 || n <= chunk || n >= (int64_t(1) << 32)) {
        for (int64_t lo = 0; lo < n; lo += chunk) body(lo, std::min(n, lo + chunk));
        return;
    }
    struct alignas(64) Range {
        std::atomic<uint64_t> v;
    };
    std::unique_ptr<Range[]> ranges(new Range[size_t(nt)]);
    for (int t = 0; t < nt; ++t)  // every range is set before the team starts; a smaller team steals the rest
        ranges[size_t(t)].v.store(uint64_t(n * t / nt) << 32 | uint64_t(n * (t + 1) / nt), std::memory_order_relaxed);
    // Takes [lo, hi) from range r: from the front (its owner) or the back (a thief); false when empty.
    auto take = [&](int r, bool front, int64_t& lo, int64_t& hi) {
        std::atomic<uint64_t>& a = ranges[size_t(r)].v;
        uint64_t cur = a.load(std::memory_order_relaxed);
        for (;;) {
            const int64_t l = int64_t(cur >> 32), h = int64_t(cur & 0xffffffffu);
            if (l >= h) return false;
            lo = front ? l : std::max(l, h - chunk);
            hi = front ? std::min(h, l + chunk) : h;
            const uint64_t next = front ? uint64_t(hi) << 32 | uint64_t(h) : uint64_t(l) << 32 | uint64_t(lo);
            if (a.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return true;
        }
    };
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), team = omp_get_num_threads();
        int64_t lo, hi;
        while (take(t, true, lo, hi)) body(lo, hi);
        for (int k = 1; k < nt; ++k) {
            const int r = (t + k) % nt;
            // A team member's range is stolen from its back; one no thread of this team owns is walked
            // from its front like an owner would.
            while (take(r, r >= team, lo, hi)) body(lo, hi);
        }
    }
}

// parallel_stream over several arrays of items laid end to end (the rows of q, k and v, say): one fork/join
// and one set of streams with stealing for all of them. body(k, lo, hi) gets items [lo, hi) of array k; a
// chunk that straddles two arrays is split at the boundary.
template <class Body>
void parallel_stream_concat(const std::vector<int64_t>& counts, int64_t chunk, Body&& body) {
    std::vector<int64_t> start(counts.size() + 1, 0);
    for (size_t k = 0; k < counts.size(); ++k) start[k + 1] = start[k] + counts[k];
    parallel_stream(start.back(), chunk, [&](int64_t lo, int64_t hi) {
        size_t k = size_t(std::upper_bound(start.begin(), start.end(), lo) - start.begin()) - 1;
        for (; k < counts.size() && start[k] < hi; ++k) {
            const int64_t a = std::max(lo, start[k]), b = std::min(hi, start[k + 1]);
            if (a < b) body(k, a - start[k], b - start[k]);
        }
    });
}

}  // namespace planeq
