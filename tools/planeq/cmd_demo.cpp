// planeq demo: the whole product on the bundled model, in well under a minute.
#include <cstdio>

#include "common.hpp"
#include "core/progress.hpp"
#include "core/text_file.hpp"
#include "eval/perplexity.hpp"
#include "loaded_model.hpp"
#include "model/generate.hpp"

namespace planeq::cli {

namespace {

struct DemoArgs {
    CommonOptions common;
    std::string model, text, prompt = "It was a dark and stormy night";
    int64_t n = 48;
};

void run_demo(const DemoArgs& a) {
    apply_threads(a.common);
    const std::string model_dir = a.model.empty() ? bundled_path("models/tiny-llama").string() : a.model;
    const std::string text_file = a.text.empty() ? bundled_path("data/valid-slice.txt").string() : a.text;
    LoadedModel lm = load_model(model_dir);
    const Model& m = *lm.model;
    const auto ids = lm.tokenizer->encode(read_text_file(text_file), false);

    PplOptions opt;
    opt.ctx = 512;
    opt.bos_id = lm.tokenizer->adds_bos() ? lm.tokenizer->bos_id() : -1;
    opt.window_bos_replace = opt.bos_id >= 0;
    Progress bar("ppl", int64_t(ppl_windows(ids, opt).size()), "windows");
    const PplResult r = perplexity(m, ids, opt, [&](int64_t d, int64_t) { bar.update(d); });
    bar.finish();

    GenerateOptions gen;
    gen.max_new_tokens = a.n;
    gen.sampler.temperature = 0;  // greedy: the demo prints the same text every time
    gen.stop_ids = m.config.eos_ids;
    std::vector<int32_t> out;
    const auto prompt = lm.tokenizer->encode(a.prompt, true);
    const GenerateStats st = generate(m, prompt, gen, [&](int32_t id) { out.push_back(id); return true; });
    const std::string sample = lm.tokenizer->decode(out, true);

    if (a.common.json) {
        print_json({{"model", model_dir}, {"text", text_file}, {"weight_bytes", m.weight_bytes()}, {"bpw_model", m.bpw_model()},
                    {"bpw_linear", m.bpw_linear()}, {"ppl", r.ppl}, {"stderr", r.stderr_ppl}, {"windows", r.windows},
                    {"prompt", a.prompt}, {"sample", sample}, {"generate_tokens_per_s", st.generate_tokens_per_s()}});
        return;
    }
    std::printf("model    %s (%s, %s, %s, %.2f bpw)\n", model_dir.c_str(), m.config.architecture.c_str(), m.format_summary().c_str(),
                human_bytes(double(m.weight_bytes())).c_str(), m.bpw_model());
    std::printf("text     %s: %zu tokens, %lld windows of %lld\n", text_file.c_str(), ids.size(), (long long)r.windows, (long long)opt.ctx);
    std::printf("PPL      %.3f ± %.3f   (%.0f tokens/s prefill)\n", r.ppl, r.stderr_ppl, r.tokens_per_s);
    std::printf("sample   %s%s\n", a.prompt.c_str(), sample.c_str());
    std::printf("         (%lld tokens, %.0f tokens/s decode, greedy)\n", (long long)st.generated_tokens, st.generate_tokens_per_s());
}

}  // namespace

void register_demo(CLI::App& app) {
    auto a = std::make_shared<DemoArgs>();
    CLI::App* cmd = app.add_subcommand("demo", "Run the bundled model: perplexity on bundled text and a sample");
    cmd->add_option("--model", a->model, "Model directory (default: the bundled tiny-llama)");
    cmd->add_option("--text", a->text, "Evaluation text (default: the bundled held-out slice)");
    cmd->add_option("-p,--prompt", a->prompt, "Prompt for the sample")->capture_default_str();
    add_common(*cmd, a->common);
    cmd->callback([a] { run_demo(*a); });
}

}  // namespace planeq::cli
