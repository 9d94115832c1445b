// planeq bench-quant on the CPU (the GPU path runs in the device calls, docs/cuda.md): one layer of the
// tiny shape, GPTQ and BPDQ, JSON fields; and `quantize --device cuda` without CUDA is one clear error.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.hpp"

namespace planeq::test {
namespace {

TEST(BenchQuant, CpuOneLayerOfTinyShape) {
    for (const std::string method : {"gptq", "bpdq"}) {
        const CommandResult r = run_cli("bench-quant --shape tiny-llama-shape --layers 1 --tokens 256 --chunk 128 --iters 2 -t 2 --method " + method +
                                        " --json");
        ASSERT_EQ(r.exit_code, 0) << r.output;
        const auto j = nlohmann::json::parse(r.output);
        EXPECT_EQ(j["method"], method);
        EXPECT_EQ(j["layers_measured"], 1);
        EXPECT_EQ(j["n_layers"], 6);
        EXPECT_TRUE(j["model_s_extrapolated"].get<bool>());
        EXPECT_GT(j["method_s"].get<double>(), 0.0);
        EXPECT_GT(j["hessian_s"].get<double>(), 0.0);
        EXPECT_GT(j["proxy_loss_sum"].get<double>(), 0.0);
        EXPECT_NEAR(j["model_s"].get<double>(), 6 * j["measured_s"].get<double>(), 1e-9 + 1e-9 * j["model_s"].get<double>());
        ASSERT_EQ(j["layers"].size(), 1u);
        for (const char* k : {"q", "k", "v", "o", "gate", "up", "down", "H_qkv", "H_o", "H_gate_up", "H_down"})
            EXPECT_TRUE(j["layers"][0]["detail_s"].contains(k)) << k;
    }
}

TEST(BenchQuant, RejectsBadArguments) {
    EXPECT_NE(run_cli("bench-quant --shape tiny-llama-shape --method rtn").exit_code, 0);
    EXPECT_NE(run_cli("bench-quant --shape nope").exit_code, 0);
    const CommandResult r = run_cli("bench-quant --shape tiny-llama-shape --group 96 --layers 1");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.output.find("does not divide"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace planeq::test
