// From layer scores to a plan: allocation units (whole blocks or single linears), their exact cost at each
// bit width under the chosen method (scales and coefficients included, QuantMethod::bits_per_weight), the
// budget solver, and the plan.json the quantizer consumes. Also the SVG that shows the scores and the bits.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "alloc/solver.hpp"
#include "model/model.hpp"
#include "quant/method.hpp"
#include "quant/plan.hpp"

namespace planeq::alloc {

enum class Granularity { Block, Module };

struct AllocUnit {
    std::string name;                  // "model.layers.3" or a linear's name
    int64_t block = 0;
    std::vector<const Linear*> layers;
    int64_t params = 0;
};

std::vector<AllocUnit> allocation_units(const Model& m, Granularity g);

struct AllocRequest {
    double budget = 0;       // bits per weight over the decoder linears, parameter-weighted, scales included
    LayerSetting base;       // method, group and the other fields every layer shares
    std::vector<int> bits;   // widths to choose from, ascending
};

struct Allocation {
    Plan plan;
    SolverResult solve;
    std::vector<int> unit_bits;  // chosen width per unit
    double min_bpw = 0, max_bpw = 0, nominal_bits = 0;
};

// Throws planeq::Error for a budget outside (0, ∞), a width the method cannot use on some layer, or a budget
// below the cheapest plan (the message gives the smallest achievable figure).
Allocation allocate(const Model& m, const std::vector<AllocUnit>& units, const std::vector<double>& scores, const AllocRequest& req,
                    const std::string& scorer);

// Per-unit scores of every scorer (each min-max normalised, side by side) above a strip of the chosen widths.
std::string allocation_svg(const std::string& title, const std::vector<std::string>& unit_labels,
                           const std::map<std::string, std::vector<double>>& scores, const std::vector<int>& bits);

}  // namespace planeq::alloc
