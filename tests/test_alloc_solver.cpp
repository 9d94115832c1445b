// The budget solver, plans and the allocate/quantize --plan commands: the budget is never exceeded and is
// hit exactly when some combination hits it; plans round-trip; quantize --plan applies every layer.
#include <cmath>
#include <random>

#include "alloc/allocate.hpp"
#include "alloc/solver.hpp"
#include "core/error.hpp"
#include "core/text_file.hpp"
#include "model/model.hpp"
#include "quant/plan.hpp"
#include "test_util.hpp"

namespace planeq::test {
namespace {

using namespace planeq::alloc;

// The largest total ≤ budget over every combination (brute force, small n).
int64_t best_fill(const std::vector<SolverUnit>& u, int64_t budget) {
    int64_t best = -1;
    std::vector<size_t> pick(u.size(), 0);
    while (true) {
        int64_t t = 0;
        for (size_t i = 0; i < u.size(); ++i) t += u[i].cost_bits[pick[i]];
        if (t <= budget) best = std::max(best, t);
        size_t i = 0;
        while (i < u.size() && ++pick[i] == u[i].cost_bits.size()) pick[i++] = 0;
        if (i == u.size()) break;
    }
    return best;
}

TEST(AllocSolver, HitsBudgetExactlyWhenPossibleAndNeverExceeds) {
    std::mt19937 g(5);
    for (int trial = 0; trial < 300; ++trial) {
        const size_t n = 1 + g() % 9;
        const int nopt = 2 + int(g() % 2);
        std::vector<SolverUnit> u(n);
        int64_t lo = 0, hi = 0;
        for (auto& x : u) {
            const int64_t size = 1 + g() % 50;  // parameters in units of 128
            for (int o = 0; o < nopt; ++o) x.cost_bits.push_back(size * (2 + 2 * o) * 128 + size * (16 + 2 + 2 * o));
            x.score = double(g() % 1000);
            lo += x.cost_bits.front(), hi += x.cost_bits.back();
        }
        const int64_t budget = lo + int64_t(g() % uint64_t(hi - lo + 1));
        const SolverResult r = solve_budget(u, budget);
        int64_t t = 0;
        for (size_t i = 0; i < n; ++i) t += u[i].cost_bits[size_t(r.choice[i])];
        EXPECT_EQ(t, r.total_bits);
        EXPECT_LE(r.total_bits, budget);
        EXPECT_EQ(r.total_bits, best_fill(u, budget)) << "trial " << trial;
        EXPECT_EQ(r.exact, r.total_bits == budget);
        // A budget that is some combination's exact total is hit exactly.
        std::vector<size_t> pick(n);
        int64_t exact = 0;
        for (size_t i = 0; i < n; ++i) exact += u[i].cost_bits[pick[i] = g() % size_t(nopt)];
        const SolverResult e = solve_budget(u, exact);
        EXPECT_TRUE(e.exact);
        EXPECT_EQ(e.total_bits, exact);
    }
}

TEST(AllocSolver, EqualUnitsGetTopOfRankingAndCoarseGridNeverExceeds) {
    // 12 equal blocks, 2 widths: a budget for n upgrades picks the n best scores (ties: earlier unit).
    std::vector<SolverUnit> u(12);
    const double scores[] = {0.3, 0.9, 0.1, 0.9, 0.5, 0.2, 0.8, 0.05, 0.4, 0.6, 0.7, 0.0};
    for (size_t i = 0; i < 12; ++i) u[i] = SolverUnit{{1000, 2000}, scores[i]};
    const SolverResult r = solve_budget(u, 12000 + 3500);  // 3 upgrades fit, the 4th does not
    EXPECT_FALSE(r.exact);
    EXPECT_EQ(r.total_bits, 15000);
    for (size_t i = 0; i < 12; ++i) EXPECT_EQ(r.choice[i], (i == 1 || i == 3 || i == 6) ? 1 : 0) << i;
    // Forced coarse grid (max_states tiny): still within budget.
    std::mt19937 g(9);
    for (int trial = 0; trial < 50; ++trial) {
        std::vector<SolverUnit> v(20);
        int64_t lo = 0, hi = 0;
        for (auto& x : v) {
            const int64_t a = 1000 + g() % 100000;
            x.cost_bits = {a, a + 1 + int64_t(g() % 200000), a + 200001 + int64_t(g() % 100000)};
            x.score = g() % 7;
            lo += x.cost_bits[0], hi += x.cost_bits[2];
        }
        const int64_t budget = lo + int64_t(g() % uint64_t(hi - lo));
        const SolverResult c = solve_budget(v, budget, 64);
        EXPECT_LE(c.total_bits, budget);
        EXPECT_GT(c.total_bits, lo + (budget - lo) / 2) << "the coarse grid should still use most of the room";
    }
    EXPECT_THROW(solve_budget(u, 11999), Error);
}

// On the bundled model: the plan's achieved bpw is what quantize --plan stores, to the bit.
class AllocOnModel : public ::testing::Test {
protected:
    static void SetUpTestSuite() { model = Model::load(bundled_model()).release(); }
    static void TearDownTestSuite() { delete model; }
    static Model* model;
};
Model* AllocOnModel::model = nullptr;

TEST_F(AllocOnModel, BudgetAccountingAndErrors) {
    const auto units = allocation_units(*model, Granularity::Block);
    ASSERT_EQ(units.size(), 6u);
    std::vector<double> scores = {0.1, 0.7, 0.3, 0.9, 0.2, 0.4};
    AllocRequest req{2.5, LayerSetting{}, {2, 4}};
    req.base.method = "gptq";
    const Allocation a = allocate(*model, units, scores, req, "test");
    // 6 equal blocks: 2.140625 + 2.015625·n/6 ≤ 2.5 → n = 1, the best-scored block (3).
    EXPECT_DOUBLE_EQ(a.plan.achieved_bpw, 2.140625 + 2.015625 / 6);
    EXPECT_DOUBLE_EQ(a.min_bpw, 2.140625);
    EXPECT_DOUBLE_EQ(a.max_bpw, 4.15625);
    for (size_t i = 0; i < 6; ++i) EXPECT_EQ(a.unit_bits[i], i == 3 ? 4 : 2);
    EXPECT_EQ(a.plan.layers.size(), 42u);
    // Exactly reachable budget → hit exactly.
    req.budget = 2.140625 + 2 * 2.015625 / 6;
    const Allocation b = allocate(*model, units, scores, req, "test");
    EXPECT_TRUE(b.solve.exact);
    EXPECT_DOUBLE_EQ(b.plan.achieved_bpw, req.budget);
    // Module granularity, BPDQ: never above the budget.
    const auto mods = allocation_units(*model, Granularity::Module);
    ASSERT_EQ(mods.size(), 42u);
    AllocRequest rb{2.6, LayerSetting{}, {2, 3, 4}};
    rb.base.method = "bpdq";
    const Allocation c = allocate(*model, mods, std::vector<double>(42, 1.0), rb, "test");
    EXPECT_LE(c.plan.achieved_bpw, 2.6);
    EXPECT_GT(c.plan.achieved_bpw, 2.59);
    // Below the cheapest plan: a message with the smallest achievable figure.
    req.budget = 2.0;
    try {
        allocate(*model, units, scores, req, "test");
        FAIL() << "no error for a budget below the minimum";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("below the smallest achievable 2.1406"), std::string::npos) << e.what();
    }
    req.budget = -1;
    EXPECT_THROW(allocate(*model, units, scores, req, "test"), Error);
    req.budget = 3;
    req.bits = {2, 7};
    EXPECT_THROW(allocate(*model, units, scores, req, "test"), Error);
}

TEST_F(AllocOnModel, PlanRoundTrips) {
    const auto units = allocation_units(*model, Granularity::Module);
    std::vector<double> scores(units.size());
    for (size_t i = 0; i < scores.size(); ++i) scores[i] = std::sin(double(i));
    AllocRequest req{3.0, LayerSetting{}, {2, 3, 4}};
    req.base.group = 64;
    const Allocation a = allocate(*model, units, scores, req, "nsds");
    TempDir d;
    save_plan(a.plan, d / "plan.json");
    const Plan p = load_plan(d / "plan.json", *model);
    EXPECT_EQ(p.scorer, "nsds");
    EXPECT_EQ(p.budget, 3.0);
    EXPECT_EQ(p.achieved_bpw, a.plan.achieved_bpw);
    ASSERT_EQ(p.layers.size(), a.plan.layers.size());
    for (size_t i = 0; i < p.layers.size(); ++i) {
        EXPECT_EQ(p.layers[i].name, a.plan.layers[i].name);
        EXPECT_EQ(p.layers[i].setting.bits, a.plan.layers[i].setting.bits);
        EXPECT_EQ(p.layers[i].setting.group, 64);
        EXPECT_EQ(p.layers[i].setting.method, "gptq");
        EXPECT_EQ(p.layers[i].score, a.plan.layers[i].score);
    }
    EXPECT_EQ(p.to_json(), a.plan.to_json());  // extra fields (units, options) survive too
    // Saved again, byte-identical.
    save_plan(p, d / "again.json");
    EXPECT_EQ(read_text_file(d / "plan.json"), read_text_file(d / "again.json"));
}

const fs::path kText = source_dir() / "data" / "valid-slice.txt";

// Every layer gets its plan's method, bits and group; the stored bpw is the plan's achieved figure.
TEST(AllocCli, QuantizeAppliesEveryPlanLayer) {
    TempDir d;
    auto m = Model::load(bundled_model());
    nlohmann::json layers = nlohmann::json::array();
    const char* methods[] = {"rtn", "gptq", "bpdq"};
    const int groups[] = {32, 64, 128, 256};
    int i = 0;
    double bits = 0, params = 0;
    for (const Linear* l : m->linears()) {
        const std::string method = methods[i % 3];
        const int b = 2 + (i / 3) % 3, g = groups[(i / 2) % 4];
        layers.push_back({{"name", l->name}, {"method", method}, {"bits", b}, {"group", g}, {"score", i}});
        LayerSetting s;
        s.method = method, s.bits = b, s.group = g;
        const double p = double(l->weight.rows * l->weight.cols);
        bits += find_method(method)->bits_per_weight(s, l->weight.rows, l->weight.cols) * p;
        params += p;
        ++i;
    }
    write_file(d / "plan.json", nlohmann::json{{"scorer", "hand"}, {"budget", 3}, {"achieved_bpw", bits / params}, {"layers", layers}}.dump());
    const auto r = run_cli("quantize " + bundled_model().string() + " -o " + (d / "q").string() + " -q --plan " + (d / "plan.json").string() +
                           " --calib " + kText.string() + " --calib-samples 8 --calib-len 128");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto q = Model::load(d / "q");
    i = 0;
    for (const Linear* l : q->linears()) {
        const auto& want = layers[size_t(i++)];
        EXPECT_EQ(l->weight.format->name, want["method"] == "bpdq" ? "bitplane" : "int") << l->name;
        EXPECT_EQ(l->weight.params.bits, want["bits"].get<int>()) << l->name;
        EXPECT_EQ(l->weight.params.group, want["group"].get<int>()) << l->name;
    }
    EXPECT_NEAR(q->bpw_linear(), bits / params, 1e-12);
    const auto cfg = read_json(d / "q" / "config.json")["quantization_config"];
    EXPECT_EQ(cfg["plan"], "plan.json");
    EXPECT_EQ(cfg["layers"]["model.layers.0.self_attn.k_proj"]["method"], "gptq");
}

TEST(AllocCli, AllocateNsdsWritesPlanPlotAndJson) {
    TempDir d;
    const auto r = run_cli("allocate " + bundled_model().string() + " --scorer nsds --budget 2.5 -o " + (d / "plan.json").string() +
                           " --compare random --json");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto j = nlohmann::json::parse(r.output);
    EXPECT_EQ(j["units"].size(), 6u);
    EXPECT_LE(j["achieved_bpw"].get<double>(), 2.5);
    EXPECT_TRUE(j["units"][0].contains("nsds"));
    EXPECT_TRUE(j["scores"]["nsds"].contains("layers"));
    EXPECT_TRUE(fs::exists(d / "plan.svg"));
    EXPECT_NE(read_text_file(d / "plan.svg").find("<svg"), std::string::npos);
    auto m = Model::load(bundled_model());
    const Plan p = load_plan(d / "plan.json", *m);
    EXPECT_EQ(p.layers.size(), 42u);
    int n4 = 0;
    for (const auto& l : p.layers) n4 += l.setting.bits == 4;
    EXPECT_EQ(n4, 7);  // one whole block at 4 bits
    // The block with 4 bits is NSDS's top-ranked one.
    const int64_t top = j["scores"]["nsds"]["ranking"][0].get<int64_t>();
    EXPECT_EQ(j["units"][size_t(top)]["bits"], 4);
}

TEST(AllocCli, BadInputsFailCleanly) {
    TempDir d;
    struct Case {
        std::string args, needle;
    };
    const std::string out = " -o " + (d / "p.json").string();
    const Case cases[] = {
        {"--scorer nsds --budget -1" + out, "--budget must be a positive number"},
        {"--scorer nsds --budget abc" + out, "budget"},
        {"--scorer frob --budget 2.5" + out, "unknown scorer 'frob'"},
        {"--scorer nsds --budget 2.0" + out, "below the smallest achievable 2.1406"},
        {"--scorer nsds --budget 2.0 --method bpdq" + out, "below the smallest achievable 2.3750"},
        {"--scorer nsds --budget 3 --bits 2,9" + out, "--bits 9"},
        {"--scorer nsds --budget 3 --method frob" + out, "unknown method 'frob'"},
        {"--scorer lieq --budget 3" + out, "--calib"},
    };
    for (const Case& c : cases) {
        const auto r = run_cli("allocate " + bundled_model().string() + " " + c.args);
        EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.output;
        EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.args << "\n" << r.output;
        EXPECT_FALSE(fs::exists(d / "p.json")) << c.args;
    }
    // A plan naming a layer the model lacks is refused by quantize.
    write_file(d / "bad.json", R"({"layers": [{"name": "model.layers.99.mlp.up_proj", "method": "rtn", "bits": 2, "group": 128}]})");
    const auto r = run_cli("quantize " + bundled_model().string() + " -o " + (d / "q").string() + " --plan " + (d / "bad.json").string());
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.output.find("is not a linear layer of this model"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace planeq::test
