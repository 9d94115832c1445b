// planeq quantize: calibrate, quantize every decoder linear, write an HF-style output directory.
#include <cstdio>

#include "common.hpp"
#include "core/error.hpp"
#include "core/progress.hpp"
#include "core/sha256.hpp"
#include "core/text_file.hpp"
#include "io/output_dir.hpp"
#include "loaded_model.hpp"
#include "quant/calibration.hpp"
#include "quant/device.hpp"
#include "quant/pipeline.hpp"
#include "quant/plan.hpp"
#ifdef PLANEQ_HAVE_CUDA
#include "quant/cuda/quant_cuda.hpp"
#endif

namespace planeq::cli {

namespace {

struct QuantizeArgs {
    CommonOptions common;
    std::string model, out, order = "gar", calib, plan;
    LayerSetting setting;
    bool act_order = false, quantize_head = false, force = false, quiet = false;
    int64_t calib_samples = 128, calib_len = 512;
    std::string calib_sinks = "keep";
    int64_t calib_sink_tokens = 1;
    uint64_t seed = 0;
    std::string device = "cpu";
};

nlohmann::json quantization_config(const Model& m, const QuantizeArgs& a, const QuantizeOptions& opt, const nlohmann::json& calib) {
    nlohmann::json layers = nlohmann::json::object();
    std::vector<const Linear*> all = m.linears();
    if (opt.quantize_head) all.push_back(&m.lm_head);
    for (const Linear* l : all) {
        const LayerSetting& s = setting_for(opt, l->name);
        nlohmann::json j = l->weight.params.to_json();
        j["format"] = l->weight.format->name;
        j["method"] = s.method;
        layers[l->name] = j;
    }
    return {{"quant_method", "planeq"},
            {"planeq_version", PLANEQ_VERSION},
            {"method", a.setting.method},
            {"setting", a.setting.to_json()},
            {"plan", a.plan.empty() ? nlohmann::json(nullptr) : nlohmann::json(std::filesystem::path(a.plan).filename().string())},
            {"calibration", calib},
            {"quantize_head", opt.quantize_head},
            {"embeddings_quantized", false},
            {"bpw_linear", m.bpw_linear()},
            {"layers", layers}};
}

void run_quantize(QuantizeArgs& a) {
    apply_threads(a.common);
    if (a.quiet) Progress::set_enabled(false);
    install_interrupt_cleanup();
    a.setting.order = a.act_order ? ColumnOrder::Dynamic : parse_column_order(a.order);
    if (!find_method(a.setting.method)) fail("unknown method '" + a.setting.method + "' (known: " + method_names() + ")");

    std::unique_ptr<QuantDevice> device;  // --device cuda: Hessians, GPTQ and BPDQ on the GPU
    if (a.device == "cuda") {
#ifdef PLANEQ_HAVE_CUDA
        device = cuda::make_quant_device();
#else
        fail("--device cuda: this planeq was built without CUDA (configure with -DPLANEQ_CUDA=ON)");
#endif
    }

    LoadedModel lm = load_model(a.model);
    Model& m = *lm.model;
    QuantizeOptions opt;
    opt.defaults = a.setting;
    opt.quantize_head = a.quantize_head;
    opt.calib_sinks = parse_calib_sinks(a.calib_sinks);
    opt.calib_sink_tokens = a.calib_sink_tokens;
    opt.device = device.get();
    if (!a.plan.empty()) opt.plan = load_plan(a.plan, m).settings;

    // Calibration: random segments of the calibration text (only when some layer's method needs data).
    std::vector<std::vector<int32_t>> segments;
    nlohmann::json calib = nullptr;
    bool needs = false;
    for (const Linear* l : m.linears()) {
        const LayerSetting& s = setting_for(opt, l->name);
        const QuantMethod* method = find_method(s.method);
        if (!method) fail("unknown method '" + s.method + "' for layer " + l->name);
        needs = needs || method->needs_hessian || s.order == ColumnOrder::Dynamic;
    }
    if (needs) {
        if (a.calib.empty()) fail("method '" + a.setting.method + "' needs calibration text: pass --calib FILE");
        const std::string text = read_text_file(a.calib);
        const auto ids = lm.tokenizer->encode(text, false);
        const int32_t bos = lm.tokenizer->adds_bos() ? lm.tokenizer->bos_id() : -1;
        segments = calibration_segments(ids, a.calib_samples, a.calib_len, a.seed, bos);
        calib = {{"file", std::filesystem::path(a.calib).filename().string()}, {"sha256", sha256_hex(text)}, {"samples", a.calib_samples},
                 {"tokens_per_segment", a.calib_len}, {"seed", a.seed}, {"bos_first", bos >= 0}};
        if (opt.calib_sinks != CalibSinks::Keep) calib["sinks"] = a.calib_sinks, calib["sink_tokens"] = a.calib_sink_tokens;
    }

    Progress bar("quantize", m.config.n_layers, "blocks");
    QuantizeReport report = quantize_model(m, segments, opt, [&](int64_t done, int64_t, const std::string& note) { bar.update(done, note); });
    bar.finish();

    const nlohmann::json qc = quantization_config(m, a, opt, calib);
    nlohmann::json rep = report.to_json();
    rep["model"] = a.model;
    rep["bpw_linear"] = m.bpw_linear();
    rep["bpw_model"] = m.bpw_model();
    rep["quantization_config"] = qc;
    OutputOptions oo;
    oo.force = a.force;
    const uint64_t bytes = write_model_dir(m, a.out, qc, rep, oo);

    if (a.common.json) {
        rep["out"] = a.out;
        rep["tensor_bytes"] = bytes;
        print_json(rep);
        return;
    }
    std::printf("%-44s %-6s %-6s %5s %8s %10s %10s %7s\n", "layer", "method", "format", "bits", "bpw", "rel.err W", "rel.err XW", "sec");
    for (const LayerReport& l : report.layers)  // "bits" is the format's own: planes k, code bits, or 2 trit-planes
        std::printf("%-44s %-6s %-6s %5d %8.4f %10.4f %10.5f %7.2f\n", l.name.c_str(), l.method.c_str(), l.format.c_str(),
                    l.setting.bits, l.bpw, l.rel_weight_error, l.rel_output_error, l.seconds);
    std::printf("\n%s: %lld layers in %.1f s (forward %.1f s, Hessians %.1f s, methods %.1f s)\n", a.out.c_str(),
                (long long)report.layers.size(), report.seconds, report.forward_seconds, report.hessian_seconds, report.method_seconds);
    std::printf("bits per weight: %.4f over decoder linears, %.4f over the whole model (%s of tensors)\n", m.bpw_linear(),
                m.bpw_model(), human_bytes(double(bytes)).c_str());
}

}  // namespace

void register_quantize(CLI::App& app) {
    auto a = std::make_shared<QuantizeArgs>();
    CLI::App* cmd = app.add_subcommand("quantize", "Quantize a model's decoder linears and write a new model directory");
    cmd->add_option("model", a->model, "Input model directory (Hugging Face)")->required();
    cmd->add_option("-o,--out", a->out, "Output directory (written atomically)")->required();
    cmd->add_option("-m,--method", a->setting.method, "Method: " + method_names())->capture_default_str();
    cmd->add_option("-b,--bits", a->setting.bits, "Bits per code (rtn/gptq: 2, 3, 4; bpdq: planes k = 2, 3, 4; ptqtp: ignored, always two trit-planes)")->capture_default_str();
    cmd->add_option("-g,--group", a->setting.group, "Group size along the input dimension (32, 64, 128, 256)")->capture_default_str();
    cmd->add_flag("--sym", a->setting.sym, "Symmetric grid (no stored zero points)");
    cmd->add_option("--order", a->order, "Column order: none, gar (group-aware act-order, no g_idx), static, dynamic")
        ->check(CLI::IsMember({"none", "gar", "static", "dynamic"}))
        ->capture_default_str();
    cmd->add_flag("--act-order", a->act_order, "Dynamic act-order with a stored g_idx (GPTQ desc_act); same as --order dynamic");
    cmd->add_option("--damp", a->setting.damp, "Relative Hessian damping")->capture_default_str();
    cmd->add_option("--iters", a->setting.iters, "Iterations of iterative methods (BPDQ)")->capture_default_str();
    cmd->add_option("--calib", a->calib, "Calibration text file");
    cmd->add_option("--calib-samples", a->calib_samples, "Calibration segments")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--calib-len", a->calib_len, "Tokens per calibration segment")->capture_default_str()->check(CLI::Range(2, 1 << 20));
    cmd->add_option("--seed", a->seed, "Seed for the choice of calibration segments")->capture_default_str();
    cmd->add_option("--calib-sinks", a->calib_sinks, "Sink tokens' rows in the Hessians: keep (GPTQ), exclude, downweight (SINKS.md §5)")
        ->check(CLI::IsMember({"keep", "exclude", "downweight"}))
        ->capture_default_str();
    cmd->add_option("--calib-sink-tokens", a->calib_sink_tokens, "First positions of each calibration segment counted as sinks")
        ->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--plan", a->plan, "Per-layer settings from `planeq allocate` (plan.json)");
    cmd->add_flag("--quantize-head", a->quantize_head, "Quantize lm_head too (embeddings always stay 16-bit)");
    cmd->add_option("--device", a->device,
                    "cpu, or cuda: Hessians, GPTQ and BPDQ on the GPU (the calibration forward stays on the CPU; same output up to "
                    "floating-point reassociation, docs/cuda.md)")
        ->check(CLI::IsMember({"cpu", "cuda"}))
        ->capture_default_str();
    cmd->add_flag("--force", a->force, "Replace the output directory if it exists");
    cmd->add_flag("-q,--quiet", a->quiet, "No progress bar");
    add_common(*cmd, a->common);
    cmd->footer("\n" + method_help());
    cmd->callback([a] { run_quantize(*a); });
}

}  // namespace planeq::cli
