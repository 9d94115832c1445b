#include "alloc/solver.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "alloc/stats.hpp"
#include "core/error.hpp"

namespace planeq::alloc {

SolverResult solve_budget(const std::vector<SolverUnit>& units, int64_t budget_bits, int64_t max_states) {
    SolverResult r;
    r.budget_bits = budget_bits;
    const size_t n = units.size();
    r.choice.assign(n, 0);
    for (const SolverUnit& u : units) {
        if (u.cost_bits.empty()) fail("internal: allocation unit without options");
        r.min_bits += u.cost_bits[0];
    }
    if (r.min_bits > budget_bits) fail("budget too small");  // callers turn this into a message with figures
    const int64_t room = budget_bits - r.min_bits;

    // Value per (unit, option): min-max normalised score × share of the width range, plus a tie-break of
    // 1e-9 per ranking position so that equal scores prefer the earlier-ranked unit.
    std::vector<double> scores(n);
    for (size_t i = 0; i < n; ++i) scores[i] = units[i].score;
    const auto norm = minmax_normalize(scores);
    const auto order = rank_descending(norm);
    std::vector<double> pos_bonus(n);
    for (size_t p = 0; p < n; ++p) pos_bonus[size_t(order[p])] = 1e-9 * double(n - p) / double(n + 1);

    // Cost increments over the cheapest option, on a grid of g bits.
    int64_t g = 0;
    for (const SolverUnit& u : units)
        for (int64_t c : u.cost_bits) {
            if (c < u.cost_bits[0]) fail("internal: allocation options must be in ascending cost");
            g = std::gcd(g, c - u.cost_bits[0]);
        }
    if (g == 0 || room == 0) {  // nothing to choose: every unit at its cheapest option
        r.total_bits = r.min_bits;
        r.exact = r.total_bits == budget_bits;
        return r;
    }
    int64_t cap = room / g;
    // The choice table holds units × states bytes: keep it under 128 MiB.
    const int64_t limit = std::min(max_states, std::max<int64_t>(1024, (int64_t(1) << 27) / int64_t(n)));
    if (cap > limit) {
        g = (room + limit - 1) / limit;
        cap = room / g;
        r.coarsened = true;
    }
    auto steps = [&](const SolverUnit& u, size_t o) {
        const int64_t e = u.cost_bits[o] - u.cost_bits[0];
        return (e + g - 1) / g;  // rounded up: the coarse grid can only over-estimate a cost
    };

    const double kNone = -std::numeric_limits<double>::infinity();
    std::vector<double> best(size_t(cap + 1), kNone), next(size_t(cap + 1));
    best[0] = 0;
    std::vector<std::vector<uint8_t>> pick(n, std::vector<uint8_t>(size_t(cap + 1), 0));
    for (size_t i = 0; i < n; ++i) {
        const SolverUnit& u = units[i];
        const size_t nopt = u.cost_bits.size();
        const int64_t b_lo = 0, b_hi = int64_t(nopt) - 1;
        std::fill(next.begin(), next.end(), kNone);
        for (size_t o = 0; o < nopt; ++o) {
            const int64_t s = steps(u, o);
            const double v = b_hi > b_lo ? (norm[i] + pos_bonus[i]) * double(o) / double(b_hi) : 0.0;
            for (int64_t c = s; c <= cap; ++c) {
                if (best[size_t(c - s)] == kNone) continue;
                const double cand = best[size_t(c - s)] + v;
                if (cand > next[size_t(c)]) {
                    next[size_t(c)] = cand;
                    pick[i][size_t(c)] = uint8_t(o);
                }
            }
        }
        best.swap(next);
    }
    int64_t c = cap;
    while (c > 0 && best[size_t(c)] == kNone) --c;
    for (size_t i = n; i-- > 0;) {
        const int o = pick[i][size_t(c)];
        r.choice[i] = o;
        c -= steps(units[i], size_t(o));
    }
    for (size_t i = 0; i < n; ++i) r.total_bits += units[i].cost_bits[size_t(r.choice[i])];
    if (r.total_bits > budget_bits) fail("internal: budget solver exceeded the budget");
    r.exact = r.total_bits == budget_bits;
    return r;
}

}  // namespace planeq::alloc
