// planeq allocate: per-layer bit widths under a bits-per-weight budget, from a layer scorer — NSDS
// (data-free), LieQ (activation diagnostics), measured (the oracle: KLD of each unit quantized alone) or
// random (a baseline) — written as plan.json for `planeq quantize --plan`, with an SVG of the scores.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "alloc/allocate.hpp"
#include "alloc/lieq.hpp"
#include "alloc/measured.hpp"
#include "alloc/nsds.hpp"
#include "alloc/stats.hpp"
#include "common.hpp"
#include "core/error.hpp"
#include "core/progress.hpp"
#include "core/text_file.hpp"
#include "loaded_model.hpp"
#include "quant/calibration.hpp"

namespace planeq::cli {

namespace {

using namespace planeq::alloc;

struct AllocateArgs {
    CommonOptions common;
    std::string model, out, scorer, granularity = "block", calib, lieq_mode = "v2", scores_from;
    std::vector<std::string> compare;
    LayerSetting setting;
    std::vector<int> bits = {2, 4};
    double budget = 0;
    int64_t calib_samples = 32, calib_len = 512, eval_samples = 8;
    uint64_t seed = 0;
    bool plot = true, quiet = false;
};

// Scores of one scorer per allocation unit, plus what it wants to report (component scores, diagnostics).
struct Scored {
    std::vector<double> unit;
    nlohmann::json detail;
    double seconds = 0;
};

Scored score_nsds(const Model& m, const std::vector<AllocUnit>& units, Granularity g) {
    const NsdsResult r = nsds_scores(m);
    Scored s;
    s.seconds = r.seconds;
    nlohmann::json layers = nlohmann::json::array();
    for (size_t l = 0; l < r.layers.size(); ++l) {
        const NsdsLayer& x = r.layers[l];
        nlohmann::json comp = nlohmann::json::object();
        for (int c = 0; c < kComponents; ++c)
            if (r.present[c]) comp[component_name(c)] = {{"nv", x.raw_nv[c]}, {"se", x.raw_se[c]}, {"s_nv", x.s_nv[c]}, {"s_se", x.s_se[c]}};
        layers.push_back({{"layer", l}, {"nv", x.nv}, {"se", x.se}, {"nsds", x.nsds}, {"components", comp}});
    }
    s.detail = {{"k_unembed", r.k_unembed}, {"ranking", r.ranking}, {"layers", layers}, {"seconds", r.seconds}};
    for (const AllocUnit& u : units) {
        if (g == Granularity::Block) {
            s.unit.push_back(r.layers[size_t(u.block)].nsds);
            continue;
        }
        const std::string& n = u.name;  // module granularity: the score of the module's component
        const Component c = n.find("q_proj") != std::string::npos || n.find("k_proj") != std::string::npos   ? kQK
                            : n.find("v_proj") != std::string::npos || n.find("o_proj") != std::string::npos ? kOV
                            : n.find("gate_proj") != std::string::npos                                      ? kGate
                            : n.find("up_proj") != std::string::npos                                        ? kUp
                                                                                                            : kDown;
        s.unit.push_back(r.component_score(u.block, c));
    }
    return s;
}

Scored score_lieq(const Model& m, const std::vector<AllocUnit>& units, std::span<const int32_t> ids, int32_t bos, const AllocateArgs& a) {
    LieqOptions o;
    o.v1 = a.lieq_mode == "v1";
    o.seg_len = a.calib_len;
    o.seed = a.seed;
    Progress bar("lieq", int64_t(1 + o.init_seeds.size()) * o.segments + (o.v1 ? o.ppl_segments : 0), "segments");
    const LieqResult r = lieq_scores(m, ids, bos, o, [&](int64_t done, int64_t, const std::string& note) { bar.update(done, note); });
    bar.finish();
    Scored s;
    s.seconds = r.seconds;
    nlohmann::json layers = nlohmann::json::array();
    for (size_t l = 0; l < r.layers.size(); ++l) {
        const LieqLayer& x = r.layers[l];
        nlohmann::json j{{"layer", l}, {"rc_trained", x.rc_trained}, {"rc_random", x.rc_random}, {"rc_diff", x.rc_diff},
                         {"gain_k", x.gain}, {"gain_head", x.gain_head}, {"score", x.score}};
        if (o.v1) j["dppl"] = x.dppl;
        layers.push_back(j);
    }
    s.detail = {{"mode", a.lieq_mode}, {"tokens", r.tokens}, {"k", o.k}, {"seeds", o.init_seeds}, {"skipped_rows", r.skipped_rows},
                {"ranking", r.ranking}, {"layers", layers}, {"seconds", r.seconds}};
    if (o.v1) s.detail["ppl_full"] = r.ppl_full, s.detail["dppl_log"] = r.dppl_log;
    for (const AllocUnit& u : units) s.unit.push_back(r.layers[size_t(u.block)].score);  // block score for each of its modules
    return s;
}

Scored score_measured(Model& m, const std::vector<AllocUnit>& units, std::span<const int32_t> ids, int32_t bos, const AllocateArgs& a) {
    MeasuredOptions o;
    o.setting = a.setting;
    o.setting.bits = a.bits.front();
    o.calib_segments = a.calib_samples;
    o.calib_len = a.calib_len;
    o.eval_segments = a.eval_samples;
    o.seed = a.seed;
    std::vector<std::vector<std::string>> names;
    for (const AllocUnit& u : units) {
        names.emplace_back();
        for (const Linear* l : u.layers) names.back().push_back(l->name);
    }
    Progress bar("measured", int64_t(units.size()), "units");
    const MeasuredResult r = measured_scores(m, names, ids, bos, o, [&](int64_t done, int64_t, const std::string& note) { bar.update(done, note); });
    bar.finish();
    Scored s;
    s.unit = r.kld;
    s.seconds = r.seconds;
    s.detail = {{"kld", r.kld}, {"bits", o.setting.bits}, {"method", o.setting.method}, {"eval_tokens", r.eval_tokens},
                {"calib_segments", o.calib_segments}, {"seconds", r.seconds}};
    return s;
}

void write_file_atomic(const std::filesystem::path& p, const std::string& text) {
    const std::filesystem::path tmp = p.string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        if (!out) fail_file(tmp, "cannot create file");
        out << text;
        if (!out) fail_file(tmp, "write failed");
    }
    std::filesystem::rename(tmp, p);
}

Scored score_random(const std::vector<AllocUnit>& units, uint64_t seed) {
    PortableRng rng(seed ^ 0x5eedull);
    Scored s;
    for (size_t i = 0; i < units.size(); ++i) s.unit.push_back(rng.uniform());
    s.detail = {{"seed", seed}};
    return s;
}

void run_allocate(AllocateArgs& a) {
    apply_threads(a.common);
    if (a.quiet) Progress::set_enabled(false);
    static const std::vector<std::string> known = {"nsds", "lieq", "measured", "random"};
    auto check_scorer = [&](const std::string& s) {
        if (std::find(known.begin(), known.end(), s) == known.end()) fail("unknown scorer '" + s + "' (known: nsds, lieq, measured, random)");
    };
    check_scorer(a.scorer);
    for (const std::string& s : a.compare) check_scorer(s);
    if (!(a.budget > 0) || !std::isfinite(a.budget)) fail("--budget must be a positive number of bits per weight");
    if (!find_method(a.setting.method)) fail("unknown method '" + a.setting.method + "' (known: " + method_names() + ")");
    std::sort(a.bits.begin(), a.bits.end());
    // Fail on an unwritable plan path now, not after minutes of scoring.
    const std::filesystem::path out_dir = std::filesystem::absolute(a.out).parent_path();
    if (!std::filesystem::is_directory(out_dir)) fail_file(a.out, "directory " + out_dir.string() + " does not exist");
    const Granularity g = a.granularity == "module" ? Granularity::Module : Granularity::Block;

    std::vector<std::string> scorers = {a.scorer};
    for (const std::string& s : a.compare)
        if (std::find(scorers.begin(), scorers.end(), s) == scorers.end()) scorers.push_back(s);
    // Scores saved in an earlier plan of this model (same units) are reused: re-solving at another budget
    // then costs nothing.
    std::map<std::string, Scored> scored;
    if (!a.scores_from.empty()) {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(read_text_file(a.scores_from));
        } catch (const nlohmann::json::exception& e) {
            fail_file(a.scores_from, std::string("malformed JSON: ") + e.what());
        }
        if (!j.contains("unit_scores") || !j["unit_scores"].is_object()) fail_file(a.scores_from, "no 'unit_scores' (not a plan from planeq allocate)");
        if (j.value("granularity", std::string()) != a.granularity)
            fail_file(a.scores_from, "scores are for granularity '" + j.value("granularity", std::string()) + "', not '" + a.granularity + "'");
        for (const std::string& s : scorers)
            if (j["unit_scores"].contains(s)) {
                scored[s].unit = j["unit_scores"][s].get<std::vector<double>>();
                if (j.contains("scores") && j["scores"].contains(s)) scored[s].detail = j["scores"][s];
            }
    }
    bool needs_text = false;
    for (const std::string& s : scorers) needs_text = needs_text || ((s == "lieq" || s == "measured") && !scored.count(s));
    if (needs_text && a.calib.empty()) fail("scorers lieq and measured need calibration text: pass --calib FILE");

    LoadedModel lm = load_model(a.model, needs_text);
    Model& m = *lm.model;
    const std::vector<AllocUnit> units = allocation_units(m, g);
    // Fail on the budget before spending minutes on scores: a dry solve with flat scores.
    AllocRequest req{a.budget, a.setting, a.bits};
    allocate(m, units, std::vector<double>(units.size(), 0.0), req, a.scorer);

    std::vector<int32_t> ids;
    int32_t bos = -1;
    if (needs_text) {
        ids = lm.tokenizer->encode(read_text_file(a.calib), false);
        bos = lm.tokenizer->adds_bos() ? lm.tokenizer->bos_id() : -1;
    }
    for (const auto& [name, s] : scored)
        if (s.unit.size() != units.size())
            fail_file(a.scores_from, "has " + std::to_string(s.unit.size()) + " " + name + " scores, the model has " + std::to_string(units.size()) +
                                         " allocation units");
    for (const std::string& s : scorers) {
        if (scored.count(s)) continue;
        if (s == "nsds") scored[s] = score_nsds(m, units, g);
        else if (s == "lieq") scored[s] = score_lieq(m, units, ids, bos, a);
        else if (s == "measured") scored[s] = score_measured(m, units, ids, bos, a);
        else scored[s] = score_random(units, a.seed);
    }

    Allocation al = allocate(m, units, scored[a.scorer].unit, req, a.scorer);
    nlohmann::json detail = nlohmann::json::object();
    std::map<std::string, std::vector<double>> plot_scores;
    for (const auto& [name, s] : scored) {
        detail[name] = s.detail;
        plot_scores[name] = s.unit;
    }
    al.plan.extra["granularity"] = a.granularity;
    al.plan.extra["scores"] = detail;
    nlohmann::json unit_scores = nlohmann::json::object();
    for (const auto& [name, s] : scored) unit_scores[name] = s.unit;
    al.plan.extra["unit_scores"] = unit_scores;
    if (a.scorer == "random") al.plan.extra["seed"] = a.seed;
    nlohmann::json corr = nlohmann::json::object();
    for (const auto& [name, s] : scored)
        if (name != a.scorer) {
            const double r = spearman(scored[a.scorer].unit, s.unit);
            corr[name] = std::isfinite(r) ? nlohmann::json(r) : nlohmann::json(nullptr);
        }
    if (!corr.empty()) al.plan.extra["spearman_vs"] = corr;
    save_plan(al.plan, a.out);

    std::string svg_path;
    if (a.plot) {
        std::filesystem::path p(a.out);
        p.replace_extension(".svg");
        svg_path = p.string();
        std::vector<std::string> labels;
        for (const AllocUnit& u : units) labels.push_back(u.name);
        char title[256];
        std::snprintf(title, sizeof title, "%s: %s scores and bits (budget %.3f, achieved %.4f bpw, %s)",
                      std::filesystem::path(a.model).filename().c_str(), a.scorer.c_str(), a.budget, al.plan.achieved_bpw, a.setting.method.c_str());
        write_file_atomic(p, allocation_svg(title, labels, plot_scores, al.unit_bits));
    }

    if (a.common.json) {
        nlohmann::json units_j = nlohmann::json::array();
        for (size_t i = 0; i < units.size(); ++i) {
            nlohmann::json u{{"name", units[i].name}, {"params", units[i].params}, {"bits", al.unit_bits[i]}};
            for (const auto& [name, s] : scored) u[name] = s.unit[i];
            units_j.push_back(u);
        }
        print_json({{"model", a.model},         {"scorer", a.scorer},          {"budget", a.budget},
                    {"achieved_bpw", al.plan.achieved_bpw}, {"nominal_bits", al.nominal_bits}, {"exact", al.solve.exact},
                    {"min_bpw", al.min_bpw},    {"max_bpw", al.max_bpw},       {"granularity", a.granularity},
                    {"method", a.setting.method}, {"group", a.setting.group},  {"bits_options", a.bits},
                    {"units", units_j},          {"scores", detail},           {"spearman_vs", corr},
                    {"plan", a.out},             {"plot", svg_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(svg_path)},
                    {"threads", thread_count()}});
        return;
    }
    std::printf("%-32s %9s", "unit", "params");
    for (const auto& [name, s] : scored) std::printf(" %10s", name.c_str());
    std::printf(" %5s\n", "bits");
    for (size_t i = 0; i < units.size(); ++i) {
        std::printf("%-32s %9lld", units[i].name.c_str(), (long long)units[i].params);
        for (const auto& [name, s] : scored) std::printf(" %10.5g", s.unit[i]);
        std::printf(" %5d\n", al.unit_bits[i]);
    }
    for (const auto& [name, s] : scored)
        if (name != a.scorer && corr.contains(name) && !corr[name].is_null())
            std::printf("Spearman(%s, %s) = %.3f\n", a.scorer.c_str(), name.c_str(), corr[name].get<double>());
    std::printf("\n%s: %s plan, budget %.4f → %.4f bits per weight over decoder linears (%s; nominal %.4f bits; range %.4f … %.4f)\n",
                a.out.c_str(), a.scorer.c_str(), a.budget, al.plan.achieved_bpw, al.solve.exact ? "exact" : "budget not reachable exactly",
                al.nominal_bits, al.min_bpw, al.max_bpw);
    for (const auto& [name, s] : scored) std::printf("%s scores in %.1f s\n", name.c_str(), s.seconds);
    if (!svg_path.empty()) std::printf("plot: %s\n", svg_path.c_str());
}

}  // namespace

void register_allocate(CLI::App& app) {
    auto a = std::make_shared<AllocateArgs>();
    CLI::App* cmd = app.add_subcommand("allocate", "Choose per-layer bit widths under a bits-per-weight budget and write plan.json");
    cmd->add_option("model", a->model, "Model directory (Hugging Face)")->required();
    cmd->add_option("-o,--out", a->out, "Plan file to write (plan.json; an SVG of the scores goes next to it)")->required();
    cmd->add_option("--scorer", a->scorer, "nsds (data-free), lieq (activations), measured (KLD of each unit quantized alone), random")
        ->required();
    cmd->add_option("--budget", a->budget, "Bits per weight over the decoder linears, parameter-weighted, scales included")->required();
    cmd->add_option("-m,--method", a->setting.method, "Backend every layer uses: gptq, bpdq, rtn, ...")->capture_default_str();
    cmd->add_option("--bits", a->bits, "Widths to choose from (bits, or planes for bpdq)")->delimiter(',')->capture_default_str();
    cmd->add_option("-g,--group", a->setting.group, "Group size")->capture_default_str();
    cmd->add_option("--granularity", a->granularity, "Allocation unit: block (all 7 linears of a block) or module (each linear)")
        ->check(CLI::IsMember({"block", "module"}))
        ->capture_default_str();
    cmd->add_option("--compare", a->compare, "Also compute these scorers: scores side by side and Spearman correlations")->delimiter(',');
    cmd->add_option("--calib", a->calib, "Calibration text (lieq, measured)");
    cmd->add_option("--calib-samples", a->calib_samples, "measured: calibration segments for the backend's Hessians")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--calib-len", a->calib_len, "Tokens per calibration segment")->capture_default_str()->check(CLI::Range(2, 1 << 20));
    cmd->add_option("--eval-samples", a->eval_samples, "measured: calibration segments the KLD is measured on")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--lieq-mode", a->lieq_mode, "v2: RCdiff only (default); v1: mean of ΔPPL, RCdiff and energy gain")
        ->check(CLI::IsMember({"v1", "v2"}))
        ->capture_default_str();
    cmd->add_option("--scores-from", a->scores_from, "Reuse the scores stored in an earlier plan of this model (same granularity)");
    cmd->add_option("--seed", a->seed, "Seed (calibration segments; random scorer)")->capture_default_str();
    cmd->add_flag("!--no-plot", a->plot, "Do not write the SVG next to the plan");
    cmd->add_flag("-q,--quiet", a->quiet, "No progress bar");
    add_common(*cmd, a->common);
    cmd->callback([a] { run_allocate(*a); });
}

}  // namespace planeq::cli
