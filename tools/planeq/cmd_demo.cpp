// planeq demo: the whole product on the bundled model in well under a minute — quantize it with each
// method, write and reload every result, and print size, bits per weight, perplexity and a sample.
#include <chrono>
#include <unistd.h>

#include <cstdio>

#include "common.hpp"
#include "core/error.hpp"
#include "core/progress.hpp"
#include "core/text_file.hpp"
#include "eval/perplexity.hpp"
#include "io/output_dir.hpp"
#include "loaded_model.hpp"
#include "model/generate.hpp"
#include "quant/calibration.hpp"
#include "quant/pipeline.hpp"

namespace planeq::cli {

namespace {

struct DemoArgs {
    CommonOptions common;
    std::string model, text, calib, out, prompt = "It was a dark and stormy night";
    int64_t n = 32, windows = 24;
    bool bf16_only = false;
};

// The settings the demo shows; methods not built into this binary are skipped.
struct DemoEntry {
    std::string label;
    LayerSetting setting;
};
std::vector<DemoEntry> demo_entries() {
    std::vector<DemoEntry> out;
    auto add = [&](std::string label, std::string method, int bits, int group) {
        LayerSetting s;
        s.method = std::move(method);
        s.bits = bits;
        s.group = group;
        if (find_method(s.method)) out.push_back({std::move(label), s});
    };
    add("GPTQ 4-bit g128", "gptq", 4, 128);
    add("GPTQ 2-bit g64", "gptq", 2, 64);
    add("BPDQ k=2 g128", "bpdq", 2, 128);
    add("PTQTP g128", "ptqtp", 2, 128);
    return out;
}

uint64_t dir_bytes(const std::filesystem::path& dir) {
    uint64_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".safetensors") n += e.file_size();
    return n;
}

struct Row {
    std::string label;
    uint64_t bytes = 0;
    double bpw_linear = 0, bpw_model = 0, ppl = 0, ppl_err = 0, quant_seconds = 0;
    std::string sample;
};

void run_demo(const DemoArgs& a) {
    apply_threads(a.common);
    const auto t_start = std::chrono::steady_clock::now();
    const std::string model_dir = a.model.empty() ? bundled_path("models/tiny-llama").string() : a.model;
    const std::string text_file = a.text.empty() ? bundled_path("data/valid-slice.txt").string() : a.text;
    const std::string calib_file = a.calib.empty() ? bundled_path("data/calib-slice.txt").string() : a.calib;
    // Quantized models go to --out (kept) or a temporary directory (removed at the end).
    const bool keep = !a.out.empty();
    const std::filesystem::path out_root =
        keep ? std::filesystem::path(a.out) : std::filesystem::temp_directory_path() / ("planeq-demo-" + std::to_string(::getpid()));
    std::filesystem::create_directories(out_root);
    struct Cleanup {
        std::filesystem::path p;
        bool keep;
        ~Cleanup() {
            std::error_code ec;
            if (!keep) std::filesystem::remove_all(p, ec);
        }
    } cleanup{out_root, keep};

    LoadedModel base = load_model(model_dir);
    const Tokenizer& tok = *base.tokenizer;
    const auto eval_ids = tok.encode(read_text_file(text_file), false);
    const auto calib_ids = tok.encode(read_text_file(calib_file), false);
    const int32_t bos = tok.adds_bos() ? tok.bos_id() : -1;
    const auto segments = calibration_segments(calib_ids, 32, 512, 0, bos);
    const auto prompt = tok.encode(a.prompt, true);

    PplOptions popt;
    popt.ctx = 512;
    popt.bos_id = bos;
    popt.window_bos_replace = bos >= 0;
    popt.max_windows = a.windows;
    GenerateOptions gen;
    gen.max_new_tokens = a.n;
    gen.sampler.temperature = 0;  // greedy: the demo prints the same text every run
    gen.stop_ids = base.model->config.eos_ids;

    auto measure = [&](const Model& m, Row& row) {
        const PplResult r = perplexity(m, eval_ids, popt);
        row.ppl = r.ppl;
        row.ppl_err = r.stderr_ppl;
        std::vector<int32_t> out;
        generate(m, prompt, gen, [&](int32_t id) { out.push_back(id); return true; });
        row.sample = tok.decode(out, true);
        row.bpw_linear = m.bpw_linear();
        row.bpw_model = m.bpw_model();
    };

    const auto entries = a.bf16_only ? std::vector<DemoEntry>{} : demo_entries();
    Progress bar("demo", int64_t(entries.size()) + 1, "models");
    std::vector<Row> rows;
    Row b16{"bf16 (original)"};
    b16.bytes = base.model->checkpoint->weight_bytes();
    measure(*base.model, b16);
    rows.push_back(b16);
    bar.update(1);
    for (const DemoEntry& e : entries) {
        LoadedModel lm = load_model(model_dir, false);
        QuantizeOptions qo;
        qo.defaults = e.setting;
        const auto t0 = std::chrono::steady_clock::now();
        const QuantizeReport rep = quantize_model(*lm.model, segments, qo);
        Row row{e.label};
        row.quant_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        nlohmann::json layers = nlohmann::json::object();
        for (const Linear* l : lm.model->linears()) {
            nlohmann::json j = l->weight.params.to_json();
            j["format"] = l->weight.format->name;
            j["method"] = e.setting.method;
            layers[l->name] = j;
        }
        const nlohmann::json qc{{"quant_method", "planeq"}, {"planeq_version", PLANEQ_VERSION}, {"method", e.setting.method},
                                {"setting", e.setting.to_json()}, {"layers", layers}};
        const std::filesystem::path dir = out_root / (e.setting.method + "-" + std::to_string(e.setting.bits) + "bit");
        OutputOptions oo;
        oo.force = true;
        write_model_dir(*lm.model, dir, qc, rep.to_json(), oo);
        // Measure the model as written: the reload proves the directory round-trips.
        LoadedModel q = load_model(dir, false);
        row.bytes = dir_bytes(dir);
        measure(*q.model, row);
        rows.push_back(row);
        bar.update(int64_t(rows.size()));
    }
    bar.finish();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

    if (a.common.json) {
        nlohmann::json js = nlohmann::json::array();
        for (const Row& r : rows)
            js.push_back({{"model", r.label}, {"bytes", r.bytes}, {"bpw_linear", r.bpw_linear}, {"bpw_model", r.bpw_model},
                          {"ppl", r.ppl}, {"stderr", r.ppl_err}, {"quant_seconds", r.quant_seconds}, {"sample", r.sample}});
        print_json({{"model", model_dir}, {"text", text_file}, {"windows", a.windows}, {"prompt", a.prompt}, {"results", js},
                    {"seconds", seconds}});
        return;
    }
    std::printf("planeq demo: %s (%s), perplexity on %lld windows of 512 tokens of %s\n\n", model_dir.c_str(),
                base.model->config.architecture.c_str(), (long long)a.windows, text_file.c_str());
    std::printf("%-18s %10s %10s %10s %16s %9s\n", "model", "size", "bpw lin.", "bpw all", "PPL", "quant s");
    for (const Row& r : rows)
        std::printf("%-18s %10s %10.3f %10.3f %9.2f ± %4.2f %9.1f\n", r.label.c_str(), human_bytes(double(r.bytes)).c_str(),
                    r.bpw_linear, r.bpw_model, r.ppl, r.ppl_err, r.quant_seconds);
    std::printf("\nSamples (greedy, prompt \"%s\"):\n", a.prompt.c_str());
    for (const Row& r : rows) {
        std::string s = r.sample;
        for (char& ch : s)
            if (ch == '\n') ch = ' ';
        std::printf("  %-18s …%s\n", r.label.c_str(), s.c_str());
    }
    std::printf("\n%.1f s in all%s\n", seconds, keep ? ("; quantized models kept in " + out_root.string()).c_str() : "");
}

}  // namespace

void register_demo(CLI::App& app) {
    auto a = std::make_shared<DemoArgs>();
    CLI::App* cmd = app.add_subcommand("demo", "Quantize the bundled model with each method and compare size, perplexity and samples");
    cmd->add_option("--model", a->model, "Model directory (default: the bundled tiny-llama)");
    cmd->add_option("--text", a->text, "Evaluation text (default: the bundled held-out slice)");
    cmd->add_option("--calib", a->calib, "Calibration text (default: the bundled calibration slice)");
    cmd->add_option("--windows", a->windows, "Perplexity windows of 512 tokens")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("-p,--prompt", a->prompt, "Prompt for the samples")->capture_default_str();
    cmd->add_option("-n,--n-predict", a->n, "Tokens per sample")->capture_default_str();
    cmd->add_option("--out", a->out, "Keep the quantized models in this directory");
    cmd->add_flag("--bf16-only", a->bf16_only, "Only the original model (no quantization)");
    add_common(*cmd, a->common);
    cmd->callback([a] { run_demo(*a); });
}

}  // namespace planeq::cli
