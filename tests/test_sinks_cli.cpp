// The sink features through the CLI: bad cache options fail with one clear line (exit 2), and the
// new commands run on the bundled model.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace planeq::test {
namespace {

std::string ppl_args(const std::string& extra) {
    return "ppl " + bundled_model().string() + " -f " + (source_dir() / "data" / "valid-slice.txt").string() + " -c 64 --max-windows 2 -t 1 " + extra;
}

TEST(SinksCli, BadCacheOptionsFailCleanly) {
    for (const std::string bad : {"--kv-bits 3", "--cache streaming --sinks 8 --window 4", "--cache window", "--cache circular --window 8",
                                  "--kv-bits 4 --kv-group 24", "--kv-keep-sinks 2", "--cache window --window 16 --kv-bits 4 --kv-keep-sinks 1",
                                  "--sinks 4"}) {
        const CommandResult r = run_cli(ppl_args(bad));
        EXPECT_EQ(r.exit_code, 2) << bad << "\n" << r.output;
        EXPECT_NE(r.output.find("planeq: error:"), std::string::npos) << bad << "\n" << r.output;
    }
}

TEST(SinksCli, StreamingPplAndKvBitsRun) {
    PLANEQ_REQUIRE_PATH(bundled_model());
    CommandResult r = run_cli(ppl_args("--stream --max-tokens 300 --cache streaming --sinks 4 --window 32 --batch 8 --skip 40 --json"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
    EXPECT_EQ(j["scored_tokens"].get<int64_t>(), 300 - 1 - 40);
    EXPECT_GT(j["ppl"].get<double>(), 1.0);
    r = run_cli(ppl_args("--kv-bits 8 --kv-keep-sinks 1 --json"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const double q8 = nlohmann::json::parse(r.output.substr(r.output.find('{')))["ppl"].get<double>();
    r = run_cli(ppl_args("--json"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const double f32 = nlohmann::json::parse(r.output.substr(r.output.find('{')))["ppl"].get<double>();
    EXPECT_NEAR(q8, f32, 0.01 * f32);  // 8-bit KV is near-lossless
}

TEST(SinksCli, RunWithAStreamingCacheGoesPastTheContext) {
    PLANEQ_REQUIRE_PATH(bundled_model());
    const CommandResult r = run_cli("run " + bundled_model().string() +
                                    " -p 'Once upon a time' -n 300 --cache streaming --sinks 4 --window 32 --ignore-eos --kv-bits 4 "
                                    "--memory-every 100 --json -t 1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
    EXPECT_EQ(j["generated_tokens"].get<int64_t>(), 300);
    EXPECT_EQ(j["memory"].size(), 4u);
}

TEST(SinksCli, InspectSinks) {
    PLANEQ_REQUIRE_PATH(bundled_model());
    TempDir tmp;
    const CommandResult r = run_cli("inspect sinks " + bundled_model().string() + " --file " + (source_dir() / "data" / "valid-slice.txt").string() +
                                    " --samples 4 --ctx 32 --svg " + (tmp / "h.svg").string() + " --json -t 1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
    ASSERT_EQ(j["layers"].size(), 6u);
    ASSERT_EQ(j["layers"][0]["heads"].size(), 8u);
    EXPECT_TRUE(std::filesystem::exists(tmp / "h.svg"));
    const CommandResult bad = run_cli("inspect sinks " + bundled_model().string() + " --file /nonexistent.txt");
    EXPECT_EQ(bad.exit_code, 2) << bad.output;
}

}  // namespace
}  // namespace planeq::test
