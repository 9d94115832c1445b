// Every malformed input gets one clear planeq::Error naming the file and the problem — never a crash.
// The same cases through the CLI exit with code 2 and print one line.
#include <cstring>

#include "core/error.hpp"
#include "io/checkpoint.hpp"
#include "io/safetensors.hpp"
#include "model/model.hpp"
#include "test_util.hpp"

namespace planeq::test {
namespace {

// Builds safetensors bytes from a header string and a data section.
std::string st_bytes(const std::string& header, const std::string& data, uint64_t claimed_len = UINT64_MAX) {
    const uint64_t len = claimed_len == UINT64_MAX ? header.size() : claimed_len;
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((len >> (8 * i)) & 0xff);
    return out + header + data;
}

// Expects opening `path` to throw a planeq::Error whose message names the file and contains `needle`.
void expect_st_error(const fs::path& path, const std::string& needle) {
    try {
        SafetensorsFile f(path);
        FAIL() << "no error for " << path << " (expected: " << needle << ")";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
        EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
}

TEST(BadSafetensors, EachProblemNamed) {
    TempDir d;
    const std::string ok_entry = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    struct Case { const char* name; std::string bytes; const char* needle; };
    const Case cases[] = {
        {"tiny.safetensors", "abc", "truncated"},
        {"hdrlen.safetensors", st_bytes(ok_entry, std::string(8, '\0'), 1 << 20), "header length"},
        {"json.safetensors", st_bytes("{not json", ""), "not valid JSON"},
        {"range.safetensors", st_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0')), "run past the end"},
        {"overlap.safetensors", st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, '\0')), "overlapping"},
        {"dtype.safetensors", st_bytes(R"({"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')), "unknown dtype 'Q9'"},
        {"size.safetensors", st_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')), "shape needs 12"},
        {"neg.safetensors", st_bytes(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}})", std::string(8, '\0')), "negative"},
        {"noshape.safetensors", st_bytes(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", std::string(8, '\0')), "missing shape"},
        {"array.safetensors", st_bytes(R"([1,2,3])", ""), "not a JSON object"},
    };
    for (const Case& c : cases) {
        write_file(d / c.name, c.bytes);
        expect_st_error(d / c.name, c.needle);
    }
    expect_st_error(d / "absent.safetensors", "no such file");
}

TEST(BadSafetensors, WriterRoundTrip) {
    TempDir d;
    SafetensorsWriter w;
    const float vals[3] = {1.5f, -2.0f, 3.25f};
    w.add<float>("x", DType::F32, {3}, std::span<const float>(vals, 3));
    w.set_metadata("format", "pt");
    w.write(d / "x.safetensors");
    SafetensorsFile f(d / "x.safetensors");
    ASSERT_NE(f.find("x"), nullptr);
    EXPECT_EQ(f.find("x")->shape, std::vector<int64_t>{3});
    EXPECT_EQ(std::memcmp(f.find("x")->data, vals, 12), 0);
    EXPECT_EQ(f.metadata().at("format"), "pt");
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f.find("x")->data) % 8, 0u);  // data section aligned
}

// A copy of the bundled model that a test may break.
struct ModelCopy {
    TempDir tmp;
    fs::path dir;
    ModelCopy() : dir(tmp / "model") {
        fs::copy(bundled_model(), dir, fs::copy_options::recursive);
        for (auto& e : fs::recursive_directory_iterator(dir))
            fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
    }
    nlohmann::json config() const { return read_json(dir / "config.json"); }
    void set_config(const nlohmann::json& j) const { write_file(dir / "config.json", j.dump(2)); }
};

void expect_load_error(const fs::path& dir, const std::string& file_part, const std::string& needle) {
    try {
        auto m = Model::load(dir);
        FAIL() << "no error (expected: " << needle << ")";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(file_part), std::string::npos) << msg;
        EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
}

TEST(BadCheckpoint, ConfigProblems) {
    {
        ModelCopy m;
        write_file(m.dir / "config.json", "{\"architectures\": [\"LlamaForCausalLM\",");
        expect_load_error(m.dir, "config.json", "malformed JSON");
    }
    {
        ModelCopy m;
        auto j = m.config();
        j["architectures"] = {"GPT2LMHeadModel"};
        m.set_config(j);
        expect_load_error(m.dir, "config.json", "unknown architecture 'GPT2LMHeadModel'");
    }
    {
        ModelCopy m;
        auto j = m.config();
        j.erase("hidden_size");
        m.set_config(j);
        expect_load_error(m.dir, "config.json", "missing required field 'hidden_size'");
    }
    {
        ModelCopy m;
        auto j = m.config();
        j["rope_parameters"]["rope_type"] = "longrope";
        m.set_config(j);
        expect_load_error(m.dir, "config.json", "unsupported rope type 'longrope'");
    }
    {
        ModelCopy m;
        fs::remove(m.dir / "config.json");
        expect_load_error(m.dir, "config.json", "no such file");
    }
}

TEST(BadCheckpoint, ShapeNotMatchingConfig) {
    ModelCopy m;
    auto j = m.config();
    j["intermediate_size"] = 1024;
    m.set_config(j);
    expect_load_error(m.dir, "safetensors", "mlp.gate_proj.weight' has shape [768, 256], config.json implies [1024, 256]");
}

TEST(BadCheckpoint, MissingTensorAndShard) {
    {
        ModelCopy m;
        auto idx = read_json(m.dir / "model.safetensors.index.json");
        idx["weight_map"].erase("model.norm.weight");
        write_file(m.dir / "model.safetensors.index.json", idx.dump());
        expect_load_error(m.dir, m.dir.string(), "missing tensor 'model.norm.weight'");
    }
    {
        ModelCopy m;
        fs::remove(m.dir / "model-00002-of-00002.safetensors");
        expect_load_error(m.dir, "model.safetensors.index.json", "shard 'model-00002-of-00002.safetensors'");
    }
    {
        ModelCopy m;
        write_file(m.dir / "model.safetensors.index.json", "{\"weight_map\": 3}");
        expect_load_error(m.dir, "model.safetensors.index.json", "no 'weight_map' object");
    }
    {
        ModelCopy m;
        fs::remove(m.dir / "model.safetensors.index.json");
        expect_load_error(m.dir, m.dir.string(), "no model.safetensors or model.safetensors.index.json");
    }
}

TEST(BadCheckpoint, TruncatedShard) {
    ModelCopy m;
    const fs::path shard = m.dir / "model-00002-of-00002.safetensors";
    fs::resize_file(shard, fs::file_size(shard) / 2);
    expect_load_error(m.dir, "model-00002-of-00002.safetensors", "truncated");
}

TEST(BadCheckpoint, CliFailsCleanlyWithExitCode2) {
    ModelCopy broken;
    fs::resize_file(broken.dir / "model-00001-of-00002.safetensors", 100);
    const std::string text = (source_dir() / "data" / "valid-slice.txt").string();
    for (const std::string& args : {
             "ppl " + broken.dir.string() + " -f " + text,
             "info " + broken.dir.string(),
             "run " + broken.dir.string() + " -p hi",
         }) {
        const CommandResult r = run_cli(args);
        EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
        EXPECT_NE(r.output.find("planeq: error: "), std::string::npos) << r.output;
        EXPECT_NE(r.output.find("model-00001-of-00002.safetensors"), std::string::npos) << r.output;
        EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "one line only:\n" << r.output;
    }
    const CommandResult missing_text = run_cli("ppl " + bundled_model().string() + " -f /nonexistent/text.txt");
    EXPECT_EQ(missing_text.exit_code, 2);
    EXPECT_NE(missing_text.output.find("/nonexistent/text.txt: no such file"), std::string::npos) << missing_text.output;
    const CommandResult bad_option = run_cli("ppl " + bundled_model().string() + " -f " + text + " --protocol half");
    EXPECT_EQ(bad_option.exit_code, 2) << bad_option.output;
    const CommandResult unknown = run_cli("frobnicate");
    EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
}

TEST(Cli, HelpForEveryCommand) {
    for (const std::string cmd : {"", "demo", "info", "tokenize", "ppl", "run"}) {
        const CommandResult r = run_cli(cmd + " --help");
        EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.output;
        EXPECT_NE(r.output.find("Usage"), std::string::npos) << r.output;
    }
}

}  // namespace
}  // namespace planeq::test
