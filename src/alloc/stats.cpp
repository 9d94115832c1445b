#include "alloc/stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace planeq::alloc {

namespace {

template <class T>
double kurtosis_impl(std::span<const T> x) {
    if (x.empty()) return 0;
    double s = 0;
    for (T v : x) s += double(v);
    const double mean = s / double(x.size());
    double m2 = 0, m4 = 0;
    for (T v : x) {
        const double d = double(v) - mean, d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
    }
    m2 /= double(x.size());
    m4 /= double(x.size());
    return m2 > 0 ? m4 / (m2 * m2) - 3.0 : 0.0;
}

}  // namespace

double excess_kurtosis(std::span<const float> x) { return kurtosis_impl(x); }
double excess_kurtosis(std::span<const double> x) { return kurtosis_impl(x); }

void CentralMoments::add(const double* x, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
        const double d = x[i] - mean, d2 = d * d;
        s2 += d2;
        s4 += d2 * d2;
    }
    n += count;
}

double CentralMoments::kurtosis() const {
    if (n == 0) return 0;
    const double m2 = s2 / double(n), m4 = s4 / double(n);
    return m2 > 0 ? m4 / (m2 * m2) - 3.0 : 0.0;
}

int64_t energy_rank_sq(std::span<const double> s2, double fraction) {
    const int64_t n = int64_t(s2.size());
    double total = 0;
    for (double v : s2) total += v;
    int64_t below = 0;
    double cum = 0;
    for (double v : s2) {
        cum += v;
        if (cum < fraction * total) ++below;
    }
    return std::min(n, std::max<int64_t>(2, 1 + below));
}

double entropy_of(std::span<const double> x) {
    double total = 0;
    for (double v : x) total += v;
    if (!(total > 0)) return 0;
    double h = 0;
    for (double v : x) {
        const double p = v / total;
        if (p > 0) h -= p * std::log(p);
    }
    return h;
}

double median_of(std::vector<double> x) {
    if (x.empty()) return 0;
    std::sort(x.begin(), x.end());
    const size_t n = x.size();
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

std::vector<double> mad_sigmoid(std::span<const double> x) {
    const size_t n = x.size();
    std::vector<double> out(n, 0.5);
    if (n == 0) return out;
    const double med = median_of({x.begin(), x.end()});
    std::vector<double> dev(n);
    for (size_t i = 0; i < n; ++i) dev[i] = std::abs(x[i] - med);
    double scale = median_of(dev);
    double eps = 1e-12;
    if (!(scale > 0)) {
        // The MAD of a near-constant vector (or of 2 layers with a tie) is 0; 1e-12 alone would send every
        // z to ±∞. The standard deviation still separates the layers that differ.
        double mean = 0;
        for (double v : x) mean += v;
        mean /= double(n);
        double var = 0;
        for (double v : x) var += (v - mean) * (v - mean);
        scale = std::sqrt(var / double(n));
        eps = 0;
        if (!(scale > 0)) return out;  // all equal: no layer stands out
    }
    for (size_t i = 0; i < n; ++i) out[i] = 1.0 / (1.0 + std::exp(-(x[i] - med) / (scale + eps)));
    return out;
}

double soft_or(std::span<const double> s) {
    if (s.empty()) return 0;
    double acc = 0;
    for (double v : s) acc += std::log(1.0 - v + 1e-12);
    return 1.0 - std::exp(acc / double(s.size()));
}

std::vector<double> minmax_normalize(std::span<const double> x) {
    std::vector<double> out(x.size(), 0.5);
    if (x.empty()) return out;
    const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
    if (!(*hi > *lo)) return out;
    for (size_t i = 0; i < x.size(); ++i) out[i] = (x[i] - *lo) / (*hi - *lo);
    return out;
}

namespace {

std::vector<double> average_ranks(std::span<const double> x) {
    const size_t n = x.size();
    std::vector<size_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
    std::vector<double> r(n);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && x[idx[j + 1]] == x[idx[i]]) ++j;
        for (size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * double(i + j) + 1.0;
        i = j + 1;
    }
    return r;
}

}  // namespace

double spearman(std::span<const double> a, std::span<const double> b) {
    const size_t n = a.size();
    if (n != b.size() || n < 2) return std::numeric_limits<double>::quiet_NaN();
    const auto ra = average_ranks(a), rb = average_ranks(b);
    double ma = 0, mb = 0;
    for (size_t i = 0; i < n; ++i) ma += ra[i], mb += rb[i];
    ma /= double(n), mb /= double(n);
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; ++i) {
        sab += (ra[i] - ma) * (rb[i] - mb);
        saa += (ra[i] - ma) * (ra[i] - ma);
        sbb += (rb[i] - mb) * (rb[i] - mb);
    }
    if (!(saa > 0) || !(sbb > 0)) return std::numeric_limits<double>::quiet_NaN();
    return sab / std::sqrt(saa * sbb);
}

std::vector<int64_t> rank_descending(std::span<const double> score) {
    std::vector<int64_t> idx(score.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score[size_t(a)] > score[size_t(b)]; });
    return idx;
}

}  // namespace planeq::alloc
