// Small numerical pieces the layer scorers share (NSDS.md §2–§6, LIEQ.md §3): moments, energy rank,
// spectral entropy, robust normalisation across layers, Soft-OR fusion, rank correlation. Everything is
// fp64 with a fixed summation order, so identical inputs give bit-identical scores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace planeq::alloc {

// Fisher excess kurtosis, biased: m4/m2² − 3 with m_k = mean((x − x̄)^k), two passes in fp64.
// 0 for a constant vector (m2 = 0: no tails to speak of).
double excess_kurtosis(std::span<const float> x);
double excess_kurtosis(std::span<const double> x);

// Central moments accumulated with a mean known in advance (the head circuits: NSDS.md §5 forms M^h in
// row blocks and never keeps it whole). kurtosis() = m4/m2² − 3.
struct CentralMoments {
    double mean = 0, s2 = 0, s4 = 0;
    int64_t n = 0;
    void add(const double* x, int64_t count);
    double kurtosis() const;
};

// NSDS.md §4 step 1: the shortest prefix of s (descending singular values) holding 99% of Σ s², at least 2
// and at most len(s): min(len, max(2, 1 + #{j : Σ_{i≤j} s_i² < 0.99 Σ s²})). Takes the squares s².
int64_t energy_rank_sq(std::span<const double> s2, double fraction = 0.99);

// Shannon entropy −Σ p ln p (0 ln 0 = 0) of x/Σx for x ≥ 0; returns 0 when Σx = 0.
double entropy_of(std::span<const double> x);

// NSDS.md §4 step 5 with the §6 fallbacks: z = (x − median)/(MAD + 1e-12), s = 1/(1 + e^−z); MAD = 0 →
// divide by the standard deviation instead; that 0 too → s = 0.5 everywhere.
std::vector<double> mad_sigmoid(std::span<const double> x);

// NSDS.md §4 step 6 (per layer): 1 − exp(mean_m ln(1 − s_m + 1e-12)).
double soft_or(std::span<const double> s);

// Median of a copy (mean of the middle two for even n).
double median_of(std::vector<double> x);

// LIEQ.md §3(d): (x − min)/(max − min), 0.5 everywhere when max = min.
std::vector<double> minmax_normalize(std::span<const double> x);

// Spearman rank correlation (average ranks for ties); NaN when either side is constant or n < 2.
double spearman(std::span<const double> a, std::span<const double> b);

// Indices sorted by score descending; ties: lower index first (NSDS.md step 8).
std::vector<int64_t> rank_descending(std::span<const double> score);

}  // namespace planeq::alloc
