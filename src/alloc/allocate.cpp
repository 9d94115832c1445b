#include "alloc/allocate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "alloc/stats.hpp"
#include "core/error.hpp"

namespace planeq::alloc {

std::vector<AllocUnit> allocation_units(const Model& m, Granularity g) {
    std::vector<AllocUnit> units;
    for (int64_t l = 0; l < m.config.n_layers; ++l) {
        const Block& b = m.blocks[size_t(l)];
        const Linear* ls[] = {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down};
        if (g == Granularity::Block) {
            AllocUnit u{"model.layers." + std::to_string(l), l, {}, 0};
            for (const Linear* lin : ls) {
                u.layers.push_back(lin);
                u.params += lin->weight.rows * lin->weight.cols;
            }
            units.push_back(std::move(u));
        } else {
            for (const Linear* lin : ls) units.push_back(AllocUnit{lin->name, l, {lin}, lin->weight.rows * lin->weight.cols});
        }
    }
    return units;
}

namespace {

LayerSetting with_bits(const LayerSetting& base, int bits) {
    LayerSetting s = base;
    s.bits = bits;
    return s;
}

// Stored bits of a linear at a setting: an integer (whole bytes), recovered from the method's exact bpw.
int64_t stored_bits(const QuantMethod& method, const LayerSetting& s, const Linear& l) {
    const double params = double(l.weight.rows) * double(l.weight.cols);
    return int64_t(std::llround(method.bits_per_weight(s, l.weight.rows, l.weight.cols) * params));
}

std::string fixed(double v, int digits) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", digits, v);
    return b;
}

}  // namespace

Allocation allocate(const Model& m, const std::vector<AllocUnit>& units, const std::vector<double>& scores, const AllocRequest& req,
                    const std::string& scorer) {
    if (!(req.budget > 0) || !std::isfinite(req.budget))
        fail("--budget must be a positive number of bits per weight (got " + fixed(req.budget, 4) + ")");
    if (req.bits.empty()) fail("--bits needs at least one width");
    if (!std::is_sorted(req.bits.begin(), req.bits.end()) || std::adjacent_find(req.bits.begin(), req.bits.end()) != req.bits.end())
        fail("--bits must be distinct widths in ascending order");
    if (scores.size() != units.size()) fail("internal: one score per allocation unit expected");
    const QuantMethod* method = find_method(req.base.method);
    if (!method) fail("unknown method '" + req.base.method + "' (known: " + method_names() + ")");

    int64_t params = 0;
    std::vector<SolverUnit> su(units.size());
    for (size_t i = 0; i < units.size(); ++i) {
        params += units[i].params;
        su[i].score = scores[i];
        for (int b : req.bits) {
            const LayerSetting s = with_bits(req.base, b);
            int64_t bits = 0;
            for (const Linear* l : units[i].layers) {
                if (std::string why = method->check(s, l->weight.rows, l->weight.cols); !why.empty())
                    fail("--bits " + std::to_string(b) + " with method '" + req.base.method + "' on " + l->name + ": " + why);
                bits += stored_bits(*method, s, *l);
            }
            su[i].cost_bits.push_back(bits);
        }
    }
    Allocation a;
    int64_t lo = 0, hi = 0;
    for (const SolverUnit& u : su) lo += u.cost_bits.front(), hi += u.cost_bits.back();
    a.min_bpw = double(lo) / double(params);
    a.max_bpw = double(hi) / double(params);
    // ⌊budget × params⌋ with a relative guard of 1e-12: "2.5" must admit a plan at exactly 2.5.
    const int64_t budget_bits = int64_t(std::floor(req.budget * double(params) * (1 + 1e-12)));
    if (lo > budget_bits)
        fail("budget " + fixed(req.budget, 4) + " bits per weight is below the smallest achievable " + fixed(a.min_bpw, 4) + " (every layer at " +
             std::to_string(req.bits.front()) + " bits with method '" + req.base.method + "', group " + std::to_string(req.base.group) +
             ", scales included)");
    a.solve = solve_budget(su, budget_bits);

    Plan& p = a.plan;
    p.scorer = scorer;
    p.budget = req.budget;
    p.achieved_bpw = double(a.solve.total_bits) / double(params);
    double nominal = 0;
    nlohmann::json ju = nlohmann::json::array();
    for (size_t i = 0; i < units.size(); ++i) {
        const int b = req.bits[size_t(a.solve.choice[i])];
        a.unit_bits.push_back(b);
        nominal += double(b) * double(units[i].params);
        ju.push_back({{"name", units[i].name}, {"score", scores[i]}, {"bits", b}, {"params", units[i].params}});
        for (const Linear* l : units[i].layers) {
            PlanLayer pl{l->name, with_bits(req.base, b), scores[i]};
            p.settings[pl.name] = pl.setting;
            p.layers.push_back(std::move(pl));
        }
    }
    a.nominal_bits = nominal / double(params);
    p.extra = {{"method", req.base.method},
               {"group", req.base.group},
               {"bits_options", req.bits},
               {"nominal_bits", a.nominal_bits},
               {"min_bpw", a.min_bpw},
               {"max_bpw", a.max_bpw},
               {"budget_hit_exactly", a.solve.exact},
               {"linear_params", params},
               {"units", ju}};
    return a;
}

std::string allocation_svg(const std::string& title, const std::vector<std::string>& labels,
                           const std::map<std::string, std::vector<double>>& scores, const std::vector<int>& bits) {
    const size_t n = labels.size();
    const int W = std::max(640, int(60 + 80 + n * (scores.size() * 8 + 6))), H = 420, left = 60, right = 140, top = 40;
    const double plot_h = 260, strip_y = top + plot_h + 20, strip_h = 26;
    const double slot = double(W - left - right) / double(std::max<size_t>(1, n));
    const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
    std::ostringstream o;
    o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
      << "<rect width=\"" << W << "\" height=\"" << H << "\" fill=\"white\"/>\n"
      << "<text x=\"" << W / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">" << title << "</text>\n"
      << "<line x1=\"" << left << "\" y1=\"" << top + plot_h << "\" x2=\"" << W - right << "\" y2=\"" << top + plot_h << "\" stroke=\"black\"/>\n"
      << "<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\"" << top + plot_h << "\" stroke=\"black\"/>\n"
      << "<text x=\"15\" y=\"" << top + plot_h / 2 << "\" transform=\"rotate(-90 15 " << top + plot_h / 2
      << ")\" text-anchor=\"middle\">score (min-max per scorer)</text>\n";
    for (int i = 0; i <= 4; ++i) {
        const double y = top + plot_h * (1 - i / 4.0);
        o << "<text x=\"" << left - 4 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">" << fixed(i / 4.0, 2) << "</text>\n";
    }
    size_t k = 0;
    const double bw = std::max(1.0, (slot - 4) / double(std::max<size_t>(1, scores.size())));
    for (const auto& [name, vals] : scores) {
        const auto nv = minmax_normalize(vals);
        const char* c = colors[k % 6];
        for (size_t i = 0; i < n && i < nv.size(); ++i) {
            const double h = std::max(1.0, nv[i] * plot_h);
            o << "<rect x=\"" << fixed(left + slot * double(i) + 2 + bw * double(k), 1) << "\" y=\"" << fixed(top + plot_h - h, 1)
              << "\" width=\"" << fixed(bw, 1) << "\" height=\"" << fixed(h, 1) << "\" fill=\"" << c << "\"><title>" << labels[i] << " "
              << name << " " << vals[i] << "</title></rect>\n";
        }
        o << "<rect x=\"" << W - right + 10 << "\" y=\"" << top + 16 * k << "\" width=\"10\" height=\"10\" fill=\"" << c << "\"/>"
          << "<text x=\"" << W - right + 24 << "\" y=\"" << top + 16 * k + 9 << "\">" << name << "</text>\n";
        ++k;
    }
    int bmin = bits.empty() ? 0 : *std::min_element(bits.begin(), bits.end()), bmax = bits.empty() ? 0 : *std::max_element(bits.begin(), bits.end());
    for (size_t i = 0; i < n && i < bits.size(); ++i) {
        const double t = bmax > bmin ? double(bits[i] - bmin) / double(bmax - bmin) : 0.0;
        const int shade = int(230 - 170 * t);
        o << "<rect x=\"" << fixed(left + slot * double(i) + 1, 1) << "\" y=\"" << strip_y << "\" width=\"" << fixed(std::max(1.0, slot - 2), 1)
          << "\" height=\"" << strip_h << "\" fill=\"rgb(" << shade << "," << shade << "," << 255 << ")\"><title>" << labels[i] << ": " << bits[i]
          << " bits</title></rect>\n";
        if (slot >= 12)
            o << "<text x=\"" << fixed(left + slot * (double(i) + 0.5), 1) << "\" y=\"" << strip_y + 17 << "\" text-anchor=\"middle\" fill=\""
              << (t > 0.5 ? "white" : "black") << "\">" << bits[i] << "</text>\n";
    }
    o << "<text x=\"" << W - right + 10 << "\" y=\"" << strip_y + 17 << "\">bits</text>\n";
    // Unit labels: every unit when they fit, else every k-th.
    const size_t every = std::max<size_t>(1, size_t(std::ceil(28.0 / slot)));
    for (size_t i = 0; i < n; i += every) {
        std::string s = labels[i];
        if (s.rfind("model.layers.", 0) == 0) s = s.substr(13);
        const double x = left + slot * (double(i) + 0.5), y = strip_y + strip_h + 12;
        o << "<text x=\"" << fixed(x, 1) << "\" y=\"" << y << "\" text-anchor=\"end\" transform=\"rotate(-45 " << fixed(x, 1) << " " << y << ")\">"
          << s << "</text>\n";
    }
    o << "</svg>\n";
    return o.str();
}

}  // namespace planeq::alloc
