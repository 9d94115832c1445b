// planeq: compress LLMs to 2–3 bits per weight, measure the cost, run them fast.
#include <cstdio>
#include <new>

#include "common.hpp"
#include "core/error.hpp"

int main(int argc, char** argv) {
    CLI::App app{"planeq " PLANEQ_VERSION " — post-training quantization of LLMs to 2–3 bits and trit-planes,\n"
                 "exact measurement of what it cost, and fast CPU inference of the result."};
    app.set_version_flag("--version", PLANEQ_VERSION);
    app.require_subcommand(1);
    app.fallthrough(false);
    planeq::cli::register_demo(app);
    planeq::cli::register_info(app);
    planeq::cli::register_tokenize(app);
    planeq::cli::register_allocate(app);
    planeq::cli::register_quantize(app);
    planeq::cli::register_ppl(app);
    planeq::cli::register_kld(app);
    planeq::cli::register_run(app);
    planeq::cli::register_bench(app);
    planeq::cli::register_bench_quant(app);
    planeq::cli::register_inspect(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;
    } catch (const planeq::Error& e) {
        std::fprintf(stderr, "planeq: error: %s\n", e.what());
        return 2;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "planeq: error: out of memory\n");
        return 3;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "planeq: internal error: %s\n", e.what());
        return 3;
    }
    return 0;
}
