// parallel_stream: every item exactly once, each chunk inside one owner's range or stolen whole, for
// team sizes from 1 to more threads than items, and inside an enclosing parallel region (serial path).
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <vector>

#include "core/parallel.hpp"

namespace planeq {
namespace {

void expect_each_once(int64_t n, int64_t chunk) {
    std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
    std::atomic<int64_t> calls{0};
    parallel_stream(n, chunk, [&](int64_t lo, int64_t hi) {
        ASSERT_LT(lo, hi);
        ASSERT_LE(hi - lo, std::max<int64_t>(1, chunk));
        for (int64_t i = lo; i < hi; ++i) seen[size_t(i)].fetch_add(1);
        calls.fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[size_t(i)].load(), 1) << "item " << i << " of " << n << ", chunk " << chunk;
    if (n > 0) EXPECT_GE(calls.load(), (n + chunk - 1) / chunk);
}

TEST(ParallelStream, EveryItemOnceForAnyTeamSize) {
    const int saved = omp_get_max_threads();
    for (int threads : {1, 2, 3, 7}) {
        omp_set_num_threads(threads);
        for (int64_t n : {0, 1, 2, 5, 31, 32, 33, 256, 1001})
            for (int64_t chunk : {1, 2, 32}) expect_each_once(n, chunk);
    }
    omp_set_num_threads(saved);
}

// Arrays laid end to end (q, k, v rows): every item of every array once, with its own index, chunks that
// straddle a boundary split there, empty arrays skipped.
TEST(ParallelStreamConcat, EveryItemOfEveryArrayOnce) {
    const int saved = omp_get_max_threads();
    for (int threads : {1, 2, 3}) {
        omp_set_num_threads(threads);
        for (const std::vector<int64_t>& counts : std::vector<std::vector<int64_t>>{{37, 5, 64}, {0, 3, 0, 1}, {1}, {}, {32, 32}})
            for (int64_t chunk : {1, 2, 16, 100}) {
                std::vector<std::vector<std::atomic<int>>> seen;
                for (int64_t c : counts) seen.emplace_back(size_t(c));
                parallel_stream_concat(counts, chunk, [&](size_t k, int64_t lo, int64_t hi) {
                    ASSERT_LT(k, counts.size());
                    ASSERT_LE(0, lo);
                    ASSERT_LT(lo, hi);
                    ASSERT_LE(hi, counts[k]);
                    for (int64_t i = lo; i < hi; ++i) seen[k][size_t(i)].fetch_add(1);
                });
                for (size_t k = 0; k < counts.size(); ++k)
                    for (int64_t i = 0; i < counts[k]; ++i)
                        ASSERT_EQ(seen[k][size_t(i)].load(), 1) << "array " << k << " item " << i << ", chunk " << chunk << ", " << threads << " threads";
            }
    }
    omp_set_num_threads(saved);
}

TEST(ParallelStream, SerialInsideAParallelRegion) {
    std::vector<int> owner(100, -1);
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        parallel_stream(100, 8, [&](int64_t lo, int64_t hi) {
            for (int64_t i = lo; i < hi; ++i) owner[size_t(i)] = omp_get_thread_num();
        });
    }
    for (int v : owner) EXPECT_GE(v, 0);
}

// A thread that sleeps through its range (a descheduled one) has it finished by the others.
TEST(ParallelStream, IdleThreadsStealFromABusyOne) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    std::vector<int> by(64, -1);
    parallel_stream(64, 1, [&](int64_t lo, int64_t) {
        if (omp_get_thread_num() == 0 && lo == 0) {  // thread 0 stalls on its first item
            const double t0 = omp_get_wtime();
            while (omp_get_wtime() - t0 < 0.05) {
            }
        }
        by[size_t(lo)] = omp_get_thread_num();
    });
    omp_set_num_threads(saved);
    int stolen = 0;
    for (int i = 1; i < 32; ++i) stolen += by[size_t(i)] == 1;
    EXPECT_GT(stolen, 0) << "thread 1 should have taken items from the back of thread 0's range";
}

}  // namespace
}  // namespace planeq
