// Tokenizer tests: golden ids from the reference models' reference.json (computed with Hugging Face
// `tokenizers`), HF semantics on a small hand-made tokenizer.json, and errors for bad files.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/text_file.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/token_ids.hpp"
#include "tokenizer/tokenizer.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using planeq::Tokenizer;

namespace {

fs::path shared_dir() { return fs::path(PLANEQ_SOURCE_DIR) / ".." / "shared"; }
fs::path model_dir(const std::string& name) { return shared_dir() / "models" / name; }

std::vector<int32_t> ids_of(const json& array) { return array.get<std::vector<int32_t>>(); }

// ---------------------------------------------------------------------------------------------------
// Reference models
// ---------------------------------------------------------------------------------------------------

class TokenizerReference : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        const fs::path dir = model_dir(GetParam());
        if (!fs::exists(dir / "tokenizer.json") || !fs::exists(dir / "reference.json"))
            GTEST_SKIP() << "reference model not present: " << dir;
        tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(dir / "tokenizer.json"));
        reference_ = json::parse(planeq::read_text_file(dir / "reference.json"));
    }
    const json& golden() const { return reference_.at("tokenizer"); }

    std::unique_ptr<Tokenizer> tokenizer_;
    json reference_;
};

TEST_P(TokenizerReference, WikiTextTestFileMatchesReference) {
    const fs::path raw = shared_dir() / "data" / "wikitext2" / "wiki.test.raw";
    if (!fs::exists(raw)) GTEST_SKIP() << "missing " << raw;
    const std::string text = planeq::read_text_file(raw);

    const auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = tokenizer_->encode(text, /*add_special=*/false);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // Informational only: speed is benchmarked, not asserted, in unit tests.
    std::cout << "[   INFO   ] " << GetParam() << ": tokenized " << text.size() << " bytes into " << ids.size()
              << " ids in " << seconds << " s\n";

    EXPECT_EQ(ids.size(), golden().at("wikitext2_test_tokens").get<size_t>());
    EXPECT_EQ(planeq::sha256_of_ids(ids), golden().at("wikitext2_test_ids_sha256").get<std::string>());
    const std::vector<int32_t> first = ids_of(golden().at("wikitext2_test_first_ids"));
    ASSERT_GE(ids.size(), first.size());
    EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<ptrdiff_t>(first.size())), first);
    EXPECT_TRUE(tokenizer_->decode(ids) == text) << "decode(encode(file)) differs from the file";
}

TEST_P(TokenizerReference, StringsMatchReference) {
    for (const json& entry : golden().at("strings")) {
        const std::string text = entry.at("text").get<std::string>();
        EXPECT_EQ(tokenizer_->encode(text, /*add_special=*/false), ids_of(entry.at("ids"))) << "text: " << text;
    }
}

TEST_P(TokenizerReference, StringsWithSpecialTokensMatchReference) {
    for (const json& entry : golden().at("strings_with_special_tokens")) {
        const std::string text = entry.at("text").get<std::string>();
        EXPECT_EQ(tokenizer_->encode(text, /*add_special=*/true), ids_of(entry.at("ids"))) << "text: " << text;
    }
}

TEST_P(TokenizerReference, DecodeRoundTrips) {
    const std::string bos = tokenizer_->adds_bos() ? tokenizer_->token_bytes(tokenizer_->bos_id()) : "";
    for (const char* list : {"strings", "strings_with_special_tokens"}) {
        for (const json& entry : golden().at(list)) {
            const std::string text = entry.at("text").get<std::string>();
            EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text, false)), text);
            EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text, true)), bos + text);
        }
    }
}

TEST_P(TokenizerReference, VocabularyAndSpecialTokens) {
    EXPECT_EQ(tokenizer_->vocab_size(), 8192u);
    EXPECT_EQ(tokenizer_->adds_bos(), reference_.at("bos_prepended").get<bool>());
    EXPECT_EQ(tokenizer_->bos_id(), tokenizer_->adds_bos() ? 1 : -1);
    EXPECT_EQ(tokenizer_->token_to_id("<|endoftext|>"), 0);
    EXPECT_EQ(tokenizer_->token_to_id("<|begin_of_text|>"), 1);
    EXPECT_EQ(tokenizer_->token_to_id("no such token"), std::nullopt);
    EXPECT_TRUE(tokenizer_->is_special(0));
    EXPECT_FALSE(tokenizer_->is_special(222));
    EXPECT_EQ(tokenizer_->token_bytes(222), " ");
    EXPECT_EQ(tokenizer_->token_bytes(200), "\n");
    EXPECT_EQ(tokenizer_->decode(std::vector<int32_t>{0, 222, 0}, /*skip_special=*/true), " ");
    EXPECT_THROW(tokenizer_->token_bytes(8192), planeq::Error);
    EXPECT_THROW(tokenizer_->encode("bad \xFF utf-8"), planeq::Error);
}

INSTANTIATE_TEST_SUITE_P(TokenizerModels, TokenizerReference, ::testing::Values("tiny-llama", "small-qwen3"),
                         [](const auto& info) {
                             std::string name = info.param;
                             for (char& c : name)
                                 if (c == '-') c = '_';
                             return name;
                         });

// The copy of tiny-llama bundled with the sources (for the demo and CI without the shared folder).
TEST(TokenizerBundled, TinyLlamaCopyMatchesReference) {
    const fs::path bundled = fs::path(PLANEQ_SOURCE_DIR) / "models" / "tiny-llama" / "tokenizer.json";
    if (!fs::exists(bundled)) GTEST_SKIP() << "no bundled tokenizer at " << bundled;
    const Tokenizer tokenizer = Tokenizer::load(bundled);
    EXPECT_TRUE(tokenizer.adds_bos());
    EXPECT_EQ(tokenizer.bos_id(), 1);
    const fs::path reference = model_dir("tiny-llama") / "reference.json";
    if (!fs::exists(reference)) GTEST_SKIP() << "no reference.json to compare with";
    const json golden = json::parse(planeq::read_text_file(reference)).at("tokenizer");
    for (const json& entry : golden.at("strings_with_special_tokens"))
        EXPECT_EQ(tokenizer.encode(entry.at("text").get<std::string>()), ids_of(entry.at("ids")));
}

// ---------------------------------------------------------------------------------------------------
// HF semantics on a hand-made tokenizer: ids 0..255 are the bytes (in their byte-level spelling),
// 256 "he", 257 "ll", 258 "hell", 259 "hello" (reachable only through ignore_merges).
// ---------------------------------------------------------------------------------------------------

json byte_vocab() {
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) vocab[planeq::byte_level::byte_to_string(static_cast<unsigned char>(b))] = b;
    vocab["he"] = 256;
    vocab["ll"] = 257;
    vocab["hell"] = 258;
    vocab["hello"] = 259;
    return vocab;
}

json added(const std::string& content, int id, bool special, bool lstrip = false, bool rstrip = false,
           bool single_word = false) {
    return {{"id", id},          {"content", content}, {"single_word", single_word}, {"lstrip", lstrip},
            {"rstrip", rstrip}, {"normalized", false}, {"special", special}};
}

json small_tokenizer() {
    json spec;
    spec["version"] = "1.0";
    spec["added_tokens"] = json::array({added("<s>", 260, true), added("[x]", 261, false, true, true),
                                        added("ab", 262, false, false, false, true), added("</s>", 263, true)});
    spec["normalizer"] = nullptr;
    spec["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
    json single = json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                               {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                               {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}});
    json special_tokens = {{"<s>", {{"id", "<s>"}, {"ids", {260}}, {"tokens", {"<s>"}}}},
                           {"</s>", {{"id", "</s>"}, {"ids", {263}}, {"tokens", {"</s>"}}}}};
    json template_processing = {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", special_tokens}};
    spec["post_processor"] = {{"type", "Sequence"},
                              {"processors", json::array({{{"type", "ByteLevel"}, {"trim_offsets", true}},
                                                          template_processing})}};
    spec["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
    json merges = json::array({json::array({"h", "e"}), json::array({"l", "l"}), json::array({"he", "ll"})});
    spec["model"] = {{"type", "BPE"},        {"dropout", nullptr},  {"unk_token", nullptr},
                     {"fuse_unk", false},    {"byte_fallback", false}, {"ignore_merges", false},
                     {"vocab", byte_vocab()}, {"merges", merges}};
    return spec;
}

// Writes `content` to a fresh file in the temp directory and removes it at scope exit.
class TempFile {
public:
    explicit TempFile(const std::string& content, const std::string& name = "tokenizer.json") {
        dir_ = fs::temp_directory_path() /
               ("planeq_tokenizer_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
        path_ = dir_ / name;
        std::ofstream(path_, std::ios::binary) << content;
    }
    ~TempFile() {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    const fs::path& path() const { return path_; }

private:
    fs::path dir_;
    fs::path path_;
};

Tokenizer load_spec(const json& spec) {
    const TempFile file(spec.dump());
    return Tokenizer::load(file.path());
}

TEST(TokenizerSemantics, MergesApplyByRank) {
    const Tokenizer tok = load_spec(small_tokenizer());
    EXPECT_EQ(tok.encode("hello", false), (std::vector<int32_t>{258, 'o'}));
    EXPECT_EQ(tok.encode("hello hell", false), (std::vector<int32_t>{258, 'o', 32, 258}));
    EXPECT_EQ(tok.vocab_size(), 264u);
}

TEST(TokenizerSemantics, MergesAsStrings) {
    // Older files write merges as "left right" strings rather than pairs.
    json spec = small_tokenizer();
    spec["model"]["merges"] = json::array({"h e", "l l", "he ll"});
    EXPECT_EQ(load_spec(spec).encode("hello hell", false), (std::vector<int32_t>{258, 'o', 32, 258}));
}

TEST(TokenizerSemantics, IgnoreMergesEmitsWholeWords) {
    json spec = small_tokenizer();
    spec["model"]["ignore_merges"] = true;
    const Tokenizer tok = load_spec(spec);
    EXPECT_EQ(tok.encode("hello", false), (std::vector<int32_t>{259}));
    EXPECT_EQ(tok.encode("hellos", false), (std::vector<int32_t>{258, 'o', 's'}));
}

TEST(TokenizerSemantics, TemplateAddsPrefixAndSuffix) {
    const Tokenizer tok = load_spec(small_tokenizer());
    EXPECT_TRUE(tok.adds_bos());
    EXPECT_EQ(tok.bos_id(), 260);
    const std::vector<int32_t> ids = tok.encode("hello");
    EXPECT_EQ(ids, (std::vector<int32_t>{260, 258, 'o', 263}));
    EXPECT_EQ(tok.decode(ids), "<s>hello</s>");
    EXPECT_EQ(tok.decode(ids, /*skip_special=*/true), "hello");
    EXPECT_EQ(tok.encode("", true), (std::vector<int32_t>{260, 263}));
}

TEST(TokenizerSemantics, AddedTokensSplitTheText) {
    const Tokenizer tok = load_spec(small_tokenizer());
    EXPECT_EQ(tok.encode("a<s>b", false), (std::vector<int32_t>{'a', 260, 'b'}));
    // lstrip / rstrip: the token swallows the whitespace around it.
    EXPECT_EQ(tok.encode("a  [x]  b", false), (std::vector<int32_t>{'a', 261, 'b'}));
    // single_word: "ab" inside "cab" is not the added token.
    EXPECT_EQ(tok.encode("ab cab ab", false), (std::vector<int32_t>{262, 32, 'c', 'a', 'b', 32, 262}));
    EXPECT_FALSE(tok.is_special(261));
    EXPECT_TRUE(tok.is_special(260));
}

TEST(TokenizerSemantics, SingleWordUsesUnicodeWordCharacters) {
    // As in HF (checked with tokenizers 0.23): "½" and "²" are not word characters, a combining mark is.
    const Tokenizer tok = load_spec(small_tokenizer());
    EXPECT_EQ(tok.encode("Mj\u00BDab ", false), (std::vector<int32_t>{77, 106, 194, 189, 262, 32}));
    EXPECT_EQ(tok.encode(" ab\u00B2", false), (std::vector<int32_t>{32, 262, 194, 178}));
    EXPECT_EQ(tok.encode("\u05BBab", false), (std::vector<int32_t>{214, 187, 'a', 'b'}));
}

TEST(TokenizerSemantics, AddedTokenIdsAreAssignedAsHfDoes) {
    // HF ignores the "id" of an added token: a new content gets the next id after the vocabulary and the
    // added tokens before it, a content the vocabulary has keeps the vocabulary's id.
    json spec = small_tokenizer();
    spec["added_tokens"].push_back(added("<z>", 999, true));
    spec["added_tokens"].push_back(added("he", 998, false));
    const Tokenizer tok = load_spec(spec);
    EXPECT_EQ(tok.token_to_id("<z>"), 264);
    EXPECT_EQ(tok.encode("<z>", false), (std::vector<int32_t>{264}));
    EXPECT_EQ(tok.token_to_id("he"), 256);
    EXPECT_EQ(tok.vocab_size(), 265u);
}

TEST(TokenizerSemantics, DecodeRepairsPartialCharacters) {
    const Tokenizer tok = load_spec(small_tokenizer());
    EXPECT_EQ(tok.token_bytes(0xE2), "\xE2");
    EXPECT_EQ(tok.decode(std::vector<int32_t>{0xE2, 'a'}), "\xEF\xBF\xBD" "a");
    EXPECT_EQ(tok.decode(std::vector<int32_t>{0xE2, 0x82, 0xAC}), "\xE2\x82\xAC");  // € from three bytes
}

TEST(TokenizerSemantics, ByteFallbackAndUnknown) {
    // "z" leaves the vocabulary; "hello" makes room for its byte token so that the added tokens keep
    // their ids (HF numbers them after the vocabulary's size).
    json spec = small_tokenizer();
    json& vocab = spec["model"]["vocab"];
    vocab.erase("z");
    vocab.erase("hello");
    vocab["<0x7A>"] = 259;
    vocab["<unk>"] = 122;
    spec["model"]["byte_fallback"] = true;
    EXPECT_EQ(load_spec(spec).encode("zz", false), (std::vector<int32_t>{259, 259}));
    spec["model"]["byte_fallback"] = false;
    spec["model"]["unk_token"] = "<unk>";
    EXPECT_EQ(load_spec(spec).encode("zz", false), (std::vector<int32_t>{122, 122}));
    spec["model"]["fuse_unk"] = true;
    EXPECT_EQ(load_spec(spec).encode("zza", false), (std::vector<int32_t>{122, 'a'}));
}

TEST(TokenizerSemantics, SplitStepsBeforeByteLevel) {
    json spec = small_tokenizer();
    spec["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Removed"}, {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}}})}};
    // Spaces removed by the split, then ByteLevel prefixes every piece with one.
    EXPECT_EQ(load_spec(spec).encode("he  he", false), (std::vector<int32_t>{32, 256, 32, 256}));
}

// ---------------------------------------------------------------------------------------------------
// Variants of tiny-llama's tokenizer.json, with ids produced by Hugging Face tokenizers 0.23.2 from the
// same edits: other pre-tokenizer set-ups, split behaviors, a post-processor Sequence, added tokens
// with every flag. The texts mix in characters where Oniguruma and PCRE2 differ by default (U+180E).
// ---------------------------------------------------------------------------------------------------

json split_step(const std::string& pattern, const std::string& behavior, bool invert, bool literal = false) {
    return {{"type", "Split"},
            {"pattern", {{literal ? "String" : "Regex", pattern}}},
            {"behavior", behavior},
            {"invert", invert}};
}

json byte_level_step(bool add_prefix_space, bool use_regex) {
    return {{"type", "ByteLevel"},
            {"add_prefix_space", add_prefix_space},
            {"trim_offsets", true},
            {"use_regex", use_regex}};
}

json tiny_llama_variant(json spec, const std::string& name) {
    const json llama_split = spec["pre_tokenizer"]["pretokenizers"][0];
    const auto sequence = [](json steps) { return json{{"type", "Sequence"}, {"pretokenizers", std::move(steps)}}; };
    json& pre = spec["pre_tokenizer"];
    if (name == "prefix_space") {
        pre["pretokenizers"][1]["add_prefix_space"] = true;
    } else if (name == "gpt2" || name == "gpt2_prefix") {
        pre = byte_level_step(name == "gpt2_prefix", true);
    } else if (name == "split_then_gpt2_prefix") {
        pre = sequence({llama_split, byte_level_step(true, true)});
    } else if (name == "split_literal") {
        pre = sequence({split_step(", ", "Removed", false, true), llama_split, byte_level_step(false, false)});
    } else if (name.starts_with("split_")) {  // split_<behavior>_<invert>
        const size_t last = name.rfind('_');
        const std::string behavior = name.substr(6, last - 6);
        pre = sequence({split_step(R"([,.!?]+|\s)", behavior, name.substr(last + 1) == "True"), llama_split,
                        byte_level_step(false, false)});
    } else if (name == "post_sequence") {
        const json bos = {{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}};
        const json eos = {{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}};
        const json a = {{"Sequence", {{"id", "A"}, {"type_id", 0}}}};
        json special = {
            {"<|begin_of_text|>", {{"id", "<|begin_of_text|>"}, {"ids", {1}}, {"tokens", {"<|begin_of_text|>"}}}},
            {"<|endoftext|>", {{"id", "<|endoftext|>"}, {"ids", {0}}, {"tokens", {"<|endoftext|>"}}}}};
        json templ = {{"type", "TemplateProcessing"}, {"single", {bos, a, eos}}, {"special_tokens", special}};
        spec["post_processor"] = {{"type", "Sequence"},
                                  {"processors", {{{"type", "ByteLevel"}, {"trim_offsets", false}}, templ}}};
    } else if (name == "added") {
        for (const json& token :
             {added("<|x|>", 8192, true, true, true), added("hello", 8193, false, false, false, true),
              added("hello world", 8194, false), added(" the", 8195, false),
              added("ab", 8196, false, false, false, true), added("\u00e9", 8197, false, true, false, true),
              added("<|y|>", 8198, false, false, true), added("<|y|><|x|>", 8199, true), added("the", 8200, false)})
            spec["added_tokens"].push_back(token);
        // The HF run marked these three as matched after normalization.
        for (const char* normalized : {"hello", " the", "<|y|>"})
            for (json& token : spec["added_tokens"])
                if (token["content"] == normalized) token["normalized"] = true;
    } else if (name != "base") {
        throw std::invalid_argument("unknown variant " + name);
    }
    return spec;
}

const char* const kHfGolden = R"json([
{"variant": "base", "text": "\u00e9<|endoftext|>\u00bd\u01c5@-@q\udba6\ude36I\u6635\u180e world?",
 "ids": [1405, 0, 128, 123, 133, 229, 33, 14, 33, 82, 177, 119, 103, 116, 42, 164, 248, 115, 159, 256, 238,
   1012, 32]},
{"variant": "prefix_space", "text": "J<\u2bce\ue172\ud83d\ude00,The[rW [x]  abq?L\n<|endoftext|>\ufb01\u00b2",
 "ids": [584, 222, 29, 160, 109, 238, 172, 229, 112, 174, 255, 248, 224, 13, 395, 941, 83, 56, 941, 4207,
   222, 62, 222, 505, 82, 222, 32, 45, 222, 200, 0, 222, 173, 107, 225, 7317, 112]},
{"variant": "gpt2", "text": "J<\u2bce\ue172\ud83d\ude00,The[rW [x]  abq?L\n<|endoftext|>\ufb01\u00b2",
 "ids": [43, 29, 160, 109, 238, 172, 229, 112, 174, 255, 248, 224, 13, 502, 60, 83, 56, 941, 89, 62, 222,
   505, 82, 32, 45, 200, 0, 173, 107, 225, 128, 112]},
{"variant": "gpt2_prefix", "text": "J<\u2bce\ue172\ud83d\ude00,The[rW [x]  abq?L\n<|endoftext|>\ufb01\u00b2",
 "ids": [584, 29, 160, 109, 238, 172, 229, 112, 174, 255, 248, 224, 13, 502, 60, 83, 56, 941, 89, 62, 222,
   505, 82, 32, 45, 200, 0, 222, 173, 107, 225, 128, 112]},
{"variant": "split_then_gpt2_prefix", "text": "J<\u2bce\ue172\ud83d\ude00,The[rW [x]  abq?L\n<|endoftext|>\ufb01\u00b2",
 "ids": [584, 222, 29, 160, 109, 238, 172, 229, 112, 174, 255, 248, 224, 13, 395, 941, 83, 56, 941, 4207,
   222, 62, 222, 505, 82, 222, 32, 45, 222, 200, 0, 222, 173, 107, 225, 7317, 112]},
{"variant": "split_Removed_True", "text": "J<\u2bce\ue172\ud83d\ude00,The[rW [x]  abq?L\n<|endoftext|>\ufb01\u00b2",
 "ids": [13, 222, 222, 222, 32, 200, 0]},
{"variant": "split_MergedWithPrevious_False", "text": "J<\u2bce\ue172\ud83d\ude00,The[rW [x]  abq?L\n<|endoftext|>\ufb01\u00b2",
 "ids": [43, 29, 160, 109, 238, 172, 229, 112, 174, 255, 248, 224, 13, 502, 60, 83, 56, 222, 60, 89, 62, 222,
   222, 583, 82, 32, 45, 200, 0, 173, 107, 225, 128, 112]},
{"variant": "split_MergedWithNext_False", "text": "\u000b\u00a0</s>_ab...\u1554wI\r'Sdon'tab,cdUT\u705c\u2611   ",
 "ids": [201, 128, 256, 29, 16, 84, 31, 64, 583, 1549, 159, 245, 244, 88, 42, 203, 4568, 4014, 665, 583, 13,
   68, 69, 4677, 165, 225, 252, 160, 248, 241, 222, 222, 222]},
{"variant": "split_MergedWithNext_True", "text": "J<\u2bce\ue172\ud83d\ude00,The[rW [x]  abq?L\n<|endoftext|>\ufb01\u00b2",
 "ids": [43, 29, 160, 109, 238, 172, 229, 112, 174, 255, 248, 224, 13, 502, 60, 83, 56, 222, 60, 89, 62, 222,
   222, 583, 82, 32, 45, 200, 0, 173, 107, 225, 128, 112]},
{"variant": "split_Contiguous_False", "text": "J<\u2bce\ue172\ud83d\ude00,The[rW [x]  abq?L\n<|endoftext|>\ufb01\u00b2",
 "ids": [43, 29, 160, 109, 238, 172, 229, 112, 174, 255, 248, 224, 13, 502, 60, 83, 56, 222, 60, 89, 62, 281,
   583, 82, 32, 45, 200, 0, 173, 107, 225, 128, 112]},
{"variant": "split_literal", "text": "\u03c2...\u00e9   , [x]  [x] <|y|>;\u13d1+^\uff01",
 "ids": [3883, 1549, 1405, 608, 60, 89, 62, 222, 941, 89, 62, 222, 29, 93, 90, 93, 31, 28, 159, 239, 241, 12,
   63, 173, 122, 225]},
{"variant": "post_sequence", "text": "J<\u2bce\ue172\ud83d\ude00,The[rW [x]  abq?L\n<|endoftext|>\ufb01\u00b2",
 "ids": [43, 29, 160, 109, 238, 172, 229, 112, 174, 255, 248, 224, 13, 502, 60, 83, 56, 941, 89, 62, 222,
   505, 82, 32, 45, 200, 0, 173, 107, 225, 128, 112],
 "ids_special": [1, 43, 29, 160, 109, 238, 172, 229, 112, 174, 255, 248, 224, 13, 502, 60, 83, 56, 941, 89, 62, 222,
   505, 82, 32, 45, 200, 0, 173, 107, 225, 128, 112, 0]},
{"variant": "added", "text": "\u201d\ud83d\udc4d\ud83c\udffd123\uffadPl=hello worldx.yab\tp\uf385\ue535h\u017f\t!",
 "ids": [371, 174, 255, 241, 237, 174, 255, 239, 123, 18, 19, 20, 173, 124, 257, 7617, 30, 8194, 89, 15, 90,
   583, 199, 81, 173, 238, 229, 172, 244, 115, 73, 131, 125, 199, 2]}
])json";

TEST(TokenizerHfGolden, TinyLlamaVariantsMatchHuggingFace) {
    const fs::path path = model_dir("tiny-llama") / "tokenizer.json";
    if (!fs::exists(path)) GTEST_SKIP() << "missing " << path;
    const json base = json::parse(planeq::read_text_file(path));
    for (const json& golden : json::parse(kHfGolden)) {
        const std::string variant = golden.at("variant").get<std::string>();
        SCOPED_TRACE(variant);
        const Tokenizer tok = load_spec(tiny_llama_variant(base, variant));
        const std::string text = golden.at("text").get<std::string>();
        EXPECT_EQ(tok.encode(text, false), ids_of(golden.at("ids")));
        if (golden.contains("ids_special")) EXPECT_EQ(tok.encode(text, true), ids_of(golden.at("ids_special")));
    }
}

TEST(TokenizerIds, Sha256OfIds) {
    // sha256("1,22,333")
    EXPECT_EQ(planeq::sha256_of_ids(std::vector<int32_t>{1, 22, 333}),
              "8915516745284e69425d3f566025a855f5a5718d6d44f09451fb19d0f61fc185");
    // sha256("")
    EXPECT_EQ(planeq::sha256_of_ids({}), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// ---------------------------------------------------------------------------------------------------
// Bad input: every failure is a planeq::Error naming the file.
// ---------------------------------------------------------------------------------------------------

void expect_load_error(const std::string& content, const std::string& problem) {
    const TempFile file(content);
    try {
        Tokenizer::load(file.path());
        ADD_FAILURE() << "no error for a file that should fail with: " << problem;
    } catch (const planeq::Error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find(file.path().string()), std::string::npos) << message;
        EXPECT_NE(message.find(problem), std::string::npos) << message;
    }
}

TEST(TokenizerErrors, MissingFile) {
    const fs::path missing = fs::temp_directory_path() / "planeq_no_such_dir" / "tokenizer.json";
    try {
        Tokenizer::load(missing);
        ADD_FAILURE() << "no error for a missing file";
    } catch (const planeq::Error& e) {
        EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
    }
}

TEST(TokenizerErrors, BadJson) { expect_load_error("{\"model\": {\"type\": \"BPE\",", "invalid JSON"); }

TEST(TokenizerErrors, NoModel) { expect_load_error(R"({"version": "1.0"})", "no \"model\""); }

TEST(TokenizerErrors, UnsupportedModelType) {
    json spec = small_tokenizer();
    spec["model"] = {{"type", "WordPiece"}, {"vocab", {{"a", 0}}}, {"unk_token", "[UNK]"}};
    expect_load_error(spec.dump(), "unsupported model type \"WordPiece\"");
}

TEST(TokenizerErrors, MergeWithUnknownToken) {
    json spec = small_tokenizer();
    spec["model"]["merges"].push_back("h q\xC4\xA0");
    expect_load_error(spec.dump(), "model.merges[3]: token \"q\xC4\xA0\" is not in the vocabulary");
}

TEST(TokenizerErrors, InvalidRegex) {
    json spec = small_tokenizer();
    spec["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"}, {"pattern", {{"Regex", "(\\p{L}+"}}}, {"behavior", "Isolated"}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
    expect_load_error(spec.dump(), "invalid regex");
}

TEST(TokenizerErrors, UnsupportedComponents) {
    json spec = small_tokenizer();
    spec["normalizer"] = {{"type", "BertNormalizer"}};
    expect_load_error(spec.dump(), "unsupported normalizer type \"BertNormalizer\"");
    spec = small_tokenizer();
    spec["pre_tokenizer"] = {{"type", "Whitespace"}};
    expect_load_error(spec.dump(), "unsupported pre-tokenizer type \"Whitespace\"");
    spec = small_tokenizer();
    spec["post_processor"] = {{"type", "BertProcessing"}};
    expect_load_error(spec.dump(), "unsupported post-processor type \"BertProcessing\"");
    spec = small_tokenizer();
    spec["decoder"] = {{"type", "WordPiece"}};
    expect_load_error(spec.dump(), "unsupported decoder type \"WordPiece\"");
}

}  // namespace
