#include "core/bandwidth.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace planeq {

namespace {
double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Seconds to sum b[0 … n) with the current thread team (four chains, so the adds never limit a core).
double timed_read(const double* b, size_t n) {
    static volatile double sink = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp parallel for schedule(static) reduction(+ : s0, s1, s2, s3)
    for (size_t i = 0; i < n; i += 4) {
        s0 += b[i];
        s1 += b[i + 1];
        s2 += b[i + 2];
        s3 += b[i + 3];
    }
    const double tr = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = sink + s0 + s1 + s2 + s3;
    return tr;
}

// Parallel first touch, so pages land where the threads that read them run.
void first_touch(double* a, size_t n, double v) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) a[i] = v * double(i & 1023);
}
}  // namespace

Bandwidth measure_bandwidth(size_t bytes, int repetitions) {
    const size_t n = bytes / sizeof(double) / 4 * 4;
    std::unique_ptr<double[]> a(new double[n]), b(new double[n]);
    first_touch(a.get(), n, 1.0);
    first_touch(b.get(), n, 0.0);
    std::vector<double> copy_s, read_s;
    for (int rep = 0; rep < repetitions + 1; ++rep) {  // the first repetition warms up and is dropped
        auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; ++i) b[i] = a[i];
        const double tc = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double tr = timed_read(b.get(), n);
        if (rep == 0) continue;
        copy_s.push_back(tc);
        read_s.push_back(tr);
    }
    Bandwidth bw;
    bw.copy_gbs = 2.0 * double(n * sizeof(double)) / median(copy_s) / 1e9;
    bw.read_gbs = double(n * sizeof(double)) / median(read_s) / 1e9;
    return bw;
}

ReadProbe::ReadProbe(size_t bytes) : n_(bytes / sizeof(double) / 4 * 4), data_(new double[n_]) { first_touch(data_.get(), n_, 1.0); }

double ReadProbe::sample_gbs() const { return double(n_ * sizeof(double)) / timed_read(data_.get(), n_) / 1e9; }

}  // namespace planeq
