// The budget solver: given allocation units (blocks or single linears) with a cost per bit-width option
// (exact stored bits, scales and coefficients included) and a score, choose one option per unit so that
// the parameter-weighted bits per weight never exceed the budget.
//
// Objective (ours; NSDS.md step 9 and LIEQ.md §4 leave it open beyond "most sensitive first"):
//   1. use as much of the budget as possible — the largest achievable total ≤ budget, so the budget is
//      hit exactly whenever some combination hits it;
//   2. among the allocations with that total, maximise Σ value, value = normalised score × (b − b_min) /
//      (b_max − b_min) — higher-scored units get more bits; ties go to the earlier unit in ranking order.
// For equal-size units and two widths this is NSDS/LieQ's rule: the 4-bit set is the top-n prefix of the
// ranking with n as large as fits. Solved exactly by dynamic programming over cost in units of the gcd of
// the cost increments; when that grid would be too fine (huge models with odd shapes) costs are rounded
// up onto a coarser grid, which can leave a little budget unused but can never exceed it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace planeq::alloc {

struct SolverUnit {
    std::vector<int64_t> cost_bits;  // per option, ascending option order (stored bits of the whole unit)
    double score = 0;
};

struct SolverResult {
    std::vector<int> choice;  // option index per unit
    int64_t total_bits = 0;   // Σ cost of the choice
    int64_t budget_bits = 0;  // ⌊budget × params⌋
    int64_t min_bits = 0;     // every unit at its cheapest option
    bool exact = false;       // total == budget
    bool coarsened = false;   // the cost grid was coarsened (see above)
};

// budget_bits: the allowed total. Throws planeq::Error when even the cheapest options exceed it.
SolverResult solve_budget(const std::vector<SolverUnit>& units, int64_t budget_bits, int64_t max_states = 1 << 22);

}  // namespace planeq::alloc
