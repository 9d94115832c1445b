// planeq inspect sinks: attention-sink diagnostics (SINKS.md §2) as a table, JSON and a heatmap.
#include <algorithm>
#include <cstdio>
#include <fstream>

#include "common.hpp"
#include "core/error.hpp"
#include "core/progress.hpp"
#include "core/text_file.hpp"
#include "eval/perplexity.hpp"
#include "eval/sinks.hpp"
#include "loaded_model.hpp"

namespace planeq::cli {

namespace {

struct InspectSinksArgs {
    CommonOptions common;
    std::string model, file, svg;
    int64_t ctx = 64, samples = 32;
    SinkReportOptions opt;
};

// Layers × heads heatmap of m(0), the attention share of position 0 (white 0 → dark red 1).
void write_heatmap(const std::string& path, const SinkReport& r, const std::string& title) {
    const int64_t L = int64_t(r.layers.size()), H = int64_t(r.layers.front().heads.size());
    const int cell = 44, left = 70, top = 56;
    const int w = left + int(H) * cell + 130, h = top + int(L) * cell + 40;
    std::ofstream out(path);
    if (!out) fail(path + ": cannot write");
    out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
    out << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    out << "<text x=\"" << left << "\" y=\"20\" font-size=\"13\">" << title << "</text>\n";
    out << "<text x=\"" << left << "\" y=\"38\">attention share of position 0, m(0), T = " << r.ctx << ", " << r.samples << " windows</text>\n";
    auto color = [](double v) {
        v = std::clamp(v, 0.0, 1.0);
        const int g = int(255 * (1 - v)), rr = int(255 - 100 * v);
        char buf[32];
        std::snprintf(buf, sizeof buf, "rgb(%d,%d,%d)", rr, g, g);
        return std::string(buf);
    };
    for (int64_t hh = 0; hh < H; ++hh)
        out << "<text x=\"" << left + hh * cell + cell / 2 << "\" y=\"" << top - 4 << "\" text-anchor=\"middle\">h" << hh << "</text>\n";
    for (int64_t l = 0; l < L; ++l) {
        out << "<text x=\"" << left - 6 << "\" y=\"" << top + l * cell + cell / 2 + 4 << "\" text-anchor=\"end\">layer " << l << "</text>\n";
        for (int64_t hh = 0; hh < H; ++hh) {
            const double v = r.layers[size_t(l)].heads[size_t(hh)].m0;
            char val[16];
            std::snprintf(val, sizeof val, "%.2f", v);
            out << "<rect x=\"" << left + hh * cell << "\" y=\"" << top + l * cell << "\" width=\"" << cell - 2 << "\" height=\"" << cell - 2
                << "\" fill=\"" << color(v) << "\"/><text x=\"" << left + hh * cell + cell / 2 - 1 << "\" y=\"" << top + l * cell + cell / 2 + 3
                << "\" text-anchor=\"middle\" fill=\"" << (v > 0.5 ? "white" : "black") << "\">" << val << "</text>\n";
        }
    }
    const int lx = left + int(H) * cell + 20;
    for (int i = 0; i <= 10; ++i)
        out << "<rect x=\"" << lx << "\" y=\"" << top + (10 - i) * 16 << "\" width=\"18\" height=\"16\" fill=\"" << color(i / 10.0) << "\"/>"
            << "<text x=\"" << lx + 24 << "\" y=\"" << top + (10 - i) * 16 + 12 << "\">" << i / 10.0 << "</text>\n";
    out << "</svg>\n";
}

void run_inspect_sinks(const InspectSinksArgs& a) {
    apply_threads(a.common);
    if (a.ctx < 3) fail("--ctx must be at least 3");
    const std::string text = read_text_file(a.file);
    LoadedModel lm = load_model(a.model);
    const Model& m = *lm.model;
    const auto ids = lm.tokenizer->encode(text, false);
    // The first T tokens of the first K P1 windows (ctx ≥ 512), with the model's BOS convention.
    PplOptions p;
    p.ctx = std::max<int64_t>(512, a.ctx);
    p.bos_id = lm.tokenizer->adds_bos() ? lm.tokenizer->bos_id() : -1;
    p.window_bos_replace = p.bos_id >= 0;
    p.max_windows = a.samples;
    auto windows = ppl_windows(ids, p);
    for (auto& w : windows) w.resize(size_t(a.ctx));

    Progress bar("inspect sinks", int64_t(windows.size()), "windows");
    const SinkReport r = sink_report(m, windows, a.opt, [&](int64_t done, int64_t) { bar.update(done); });
    bar.finish();
    if (!a.svg.empty()) write_heatmap(a.svg, r, a.model);

    if (a.common.json) {
        nlohmann::json j = r.to_json();
        j["model"] = a.model, j["file"] = a.file, j["eps"] = a.opt.eps, j["tau_ma"] = a.opt.tau_ma, j["bos"] = p.bos_id >= 0;
        if (!a.svg.empty()) j["svg"] = a.svg;
        print_json(j);
        return;
    }
    std::printf("model      %s (%s)\n", a.model.c_str(), m.config.architecture.c_str());
    std::printf("windows    %lld × %lld tokens of %s%s\n", (long long)r.samples, (long long)r.ctx, a.file.c_str(),
                p.bos_id >= 0 ? " (BOS first)" : "");
    std::printf("sink ratio %.1f%% of (window, layer, head) with r(0) > %.2f; row-sum check %.1e\n\n", 100 * r.sink_ratio, a.opt.eps,
                r.max_row_sum_error);
    std::printf("%5s %4s %7s %7s %6s  %-30s %8s %8s\n", "layer", "head", "m(0)", "r(0)", "sink%", "top positions (share)", "|k0|/med", "|v0|/med");
    for (size_t l = 0; l < r.layers.size(); ++l) {
        const LayerSinkStats& L = r.layers[l];
        for (size_t h = 0; h < L.heads.size(); ++h) {
            const HeadSinkStats& hs = L.heads[h];
            std::string tops;
            for (size_t i = 0; i < hs.top_pos.size(); ++i) {
                char b[32];
                std::snprintf(b, sizeof b, "%s%lld (%.2f)", i ? ", " : "", (long long)hs.top_pos[i], hs.top_share[i]);
                tops += b;
            }
            std::printf("%5zu %4zu %7.3f %7.3f %5.0f%%  %-30s %8.2f %8.2f\n", l, h, hs.m0, hs.r0, 100 * hs.sink_ratio, tops.c_str(), hs.k_norm0,
                        hs.v_norm0);
        }
    }
    std::printf("\nper layer: mean m(0), sink ratio, massive activations (ρ = max|x|/median|x| after the block, τ = %.0f)\n", a.opt.tau_ma);
    std::printf("%5s %7s %6s %9s %8s %7s  %s\n", "layer", "m(0)", "sink%", "median|x|", "max ρ", "flagged", "largest |x| (value @ token, channel)");
    for (size_t l = 0; l < r.layers.size(); ++l) {
        const LayerSinkStats& L = r.layers[l];
        std::string tops;
        for (size_t i = 0; i < L.top.size() && i < 3; ++i) {
            char b[64];
            std::snprintf(b, sizeof b, "%s%.1f @ t%lld c%lld", i ? ", " : "", L.top[i].value, (long long)L.top[i].token, (long long)L.top[i].channel);
            tops += b;
        }
        std::printf("%5zu %7.3f %5.0f%% %9.4f %8.1f %7lld  %s\n", l, L.mean_m0, 100 * L.sink_ratio, L.median_abs, L.rho_max, (long long)L.flagged,
                    tops.c_str());
    }
    if (!a.svg.empty()) std::printf("\nheatmap    %s\n", a.svg.c_str());
}

}  // namespace

void register_inspect(CLI::App& app) {
    CLI::App* cmd = app.add_subcommand("inspect", "Diagnostics of a model's internals");
    cmd->require_subcommand(1);
    auto a = std::make_shared<InspectSinksArgs>();
    CLI::App* sinks = cmd->add_subcommand("sinks", "Attention sinks: attention mass per position, sink ratio, massive activations");
    sinks->add_option("model", a->model, "Model directory")->required();
    sinks->add_option("-f,--file", a->file, "Text file; the first --ctx tokens of its first --samples 512-token windows are analysed")->required();
    sinks->add_option("-c,--ctx", a->ctx, "Tokens per window T (64 matches the sink-metric paper; 512 = trained length)")
        ->capture_default_str()->check(CLI::Range(3, 8192));
    sinks->add_option("--samples", a->samples, "Windows analysed")->capture_default_str()->check(CLI::PositiveNumber);
    sinks->add_option("--eps", a->opt.eps, "Sink threshold on received attention r(0)")->capture_default_str();
    sinks->add_option("--tau", a->opt.tau_ma, "Massive-activation threshold on max|x|/median|x|")->capture_default_str();
    sinks->add_option("--svg", a->svg, "Write a layers × heads heatmap of m(0) here");
    add_common(*sinks, a->common);
    sinks->callback([a] { run_inspect_sinks(*a); });
}

}  // namespace planeq::cli
