// Tokenizer tests for SentencePiece-style BPE (Llama 2, Mistral) and normalizers: small hand-made
// tokenizer.json files whose expected ids are worked out by hand from Hugging Face's algorithms (each
// expectation says how). They were also checked against Hugging Face `tokenizers` 0.23.2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/tokenizer.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using planeq::Tokenizer;
using Ids = std::vector<int32_t>;

namespace {

// ---------------------------------------------------------------------------------------------------
// The vocabulary, laid out as Llama 2's: 0 <unk>, 1 <s>, 2 </s>, 3 + b = byte fallback token <0xbb>,
// then 259 ▁, 260 a, 261 e, 262 f, 263 h, 264 i, 265 l, 266 o, 267 é, 268 ▁h, 269 ll, 270 ▁he,
// 271 ▁hell, 272 ▁hello, 273 ▁a, 274 fi, 275 o▁ (only reachable when a test adds its merge).
// Merges by rank: ▁ h, l l, ▁h e, ▁he ll, ▁hell o, ▁ a, f i. So "▁hello" is 272 and "▁a" 273.
// ---------------------------------------------------------------------------------------------------

constexpr int32_t kSpace = 259, kA = 260, kE = 261, kH = 263, kI = 264, kO = 266, kEAcute = 267;
constexpr int32_t kSpaceHe = 270, kSpaceHell = 271, kSpaceHello = 272, kSpaceA = 273, kFi = 274, kOSpace = 275;
constexpr int32_t kLL = 269, kUnk = 0, kBos = 1;

int32_t byte_token(unsigned char b) { return 3 + b; }

json spm_vocab() {
    json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        vocab[name] = byte_token(static_cast<unsigned char>(b));
    }
    const char* pieces[] = {"▁", "a", "e", "f", "h", "i", "l", "o", "é", "▁h", "ll", "▁he", "▁hell", "▁hello", "▁a", "fi", "o▁"};
    int32_t id = kSpace;
    for (const char* piece : pieces) vocab[piece] = id++;
    return vocab;
}

json added(const std::string& content, int id, bool special, bool normalized = false) {
    return {{"id", id},          {"content", content},       {"single_word", false}, {"lstrip", false},
            {"rstrip", false},   {"normalized", normalized}, {"special", special}};
}

json metaspace(const std::string& scheme, bool split = true) {
    return {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", scheme}, {"split", split}};
}

json replace(const json& pattern, const std::string& content) {
    return {{"type", "Replace"}, {"pattern", pattern}, {"content", content}};
}

// Llama 2's tokenizer.json as the transformers converter writes it (legacy): the normalizer puts "▁"
// in front and turns spaces into "▁", there is no pre-tokenizer, and the decoder undoes both.
json llama2_tokenizer() {
    json spec;
    spec["version"] = "1.0";
    spec["added_tokens"] = json::array({added("<unk>", 0, true), added("<s>", 1, true), added("</s>", 2, true)});
    spec["normalizer"] = {{"type", "Sequence"},
                          {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "▁"}},
                                                       replace({{"String", " "}}, "▁")})}};
    spec["pre_tokenizer"] = nullptr;
    const json bos = {{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}};
    const json a = {{"Sequence", {{"id", "A"}, {"type_id", 0}}}};
    spec["post_processor"] = {{"type", "TemplateProcessing"},
                              {"single", json::array({bos, a})},
                              {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
    spec["decoder"] = {{"type", "Sequence"},
                       {"decoders", json::array({replace({{"String", "▁"}}, " "), {{"type", "ByteFallback"}},
                                                 {{"type", "Fuse"}},
                                                 {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
    json merges = json::array({json::array({"▁", "h"}), json::array({"l", "l"}), json::array({"▁h", "e"}),
                               json::array({"▁he", "ll"}), json::array({"▁hell", "o"}), json::array({"▁", "a"}),
                               json::array({"f", "i"})});
    spec["model"] = {{"type", "BPE"},       {"dropout", nullptr},    {"unk_token", "<unk>"},
                     {"fuse_unk", true},    {"byte_fallback", true}, {"continuing_subword_prefix", nullptr},
                     {"end_of_word_suffix", nullptr}, {"vocab", spm_vocab()}, {"merges", merges}};
    return spec;
}

// Mistral v0.3's layout: no normalizer; a Metaspace pre-tokenizer that prepends "▁" only at the very
// start of the input ("first", the legacy Llama behaviour) and does not split; control tokens.
json mistral_v03_tokenizer() {
    json spec = llama2_tokenizer();
    spec["normalizer"] = nullptr;
    spec["pre_tokenizer"] = metaspace("first", false);
    spec["added_tokens"].push_back(added("[INST]", 276, true));
    spec["added_tokens"].push_back(added("[/INST]", 277, true));
    return spec;
}

// The Llama 2 tokenizer with `step` run before its own normalizer steps.
json with_normalizer_first(json step) {
    json spec = llama2_tokenizer();
    spec["normalizer"]["normalizers"].insert(spec["normalizer"]["normalizers"].begin(), std::move(step));
    return spec;
}

// A fresh directory for one test's tokenizer.json, removed at scope exit.
class TempFile {
public:
    explicit TempFile(const std::string& content) {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        // The process id keeps concurrent runs (two build directories, ctest -j) apart.
        dir_ = fs::temp_directory_path() / ("planeq_spm_test_" + std::to_string(::getpid()) + "_" +
                                            info->test_suite_name() + "_" + info->name());
        fs::create_directories(dir_);
        path_ = dir_ / "tokenizer.json";
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

// ---------------------------------------------------------------------------------------------------
// Llama 2 (legacy SentencePiece conversion)
// ---------------------------------------------------------------------------------------------------

TEST(TokenizerSpm, Llama2EncodesWithPrependedMetaspace) {
    const Tokenizer tok = load_spec(llama2_tokenizer());
    // "hello a" → "▁hello▁a" (one word: no pre-tokenizer); merges give ▁hello and ▁a.
    EXPECT_EQ(tok.encode("hello a", false), (Ids{kSpaceHello, kSpaceA}));
    EXPECT_EQ(tok.encode("hello a"), (Ids{kBos, kSpaceHello, kSpaceA}));
    // Two spaces → "▁hello▁▁a": the first of the two "▁" has no merge partner.
    EXPECT_EQ(tok.encode("hello  a", false), (Ids{kSpaceHello, kSpace, kSpaceA}));
    // The normalizer runs on each piece between added tokens, so "a" after <s> also gets its "▁".
    EXPECT_EQ(tok.encode("hello<s>a", false), (Ids{kSpaceHello, kBos, kSpaceA}));
    // Prepend leaves empty text alone.
    EXPECT_EQ(tok.encode(""), (Ids{kBos}));
}

TEST(TokenizerSpm, ByteFallbackForCharactersOutsideTheVocabulary) {
    const Tokenizer tok = load_spec(llama2_tokenizer());
    // "▁hi!": ▁h merges, "i" is in the vocabulary, "!" (0x21) is not and becomes <0x21>.
    EXPECT_EQ(tok.encode("hi!", false), (Ids{268, kI, byte_token('!')}));
    // "€" is E2 82 AC: three byte tokens after the "▁".
    EXPECT_EQ(tok.encode("€", false), (Ids{kSpace, byte_token(0xE2), byte_token(0x82), byte_token(0xAC)}));
}

TEST(TokenizerSpm, UnknownTokenWithoutByteFallback) {
    json spec = llama2_tokenizer();
    spec["model"]["byte_fallback"] = false;
    // "▁hex": ▁he merges, "x" is unknown.
    EXPECT_EQ(load_spec(spec).encode("hex", false), (Ids{kSpaceHe, kUnk}));
    // "▁axxh": fuse_unk makes the two unknown x one <unk>; ▁a still merges.
    EXPECT_EQ(load_spec(spec).encode("axxh", false), (Ids{kSpaceA, kUnk, kH}));
    spec["model"]["fuse_unk"] = false;
    EXPECT_EQ(load_spec(spec).encode("axxh", false), (Ids{kSpaceA, kUnk, kUnk, kH}));
}

TEST(TokenizerSpm, Llama2DecodeUndoesTheMetaspace) {
    const Tokenizer tok = load_spec(llama2_tokenizer());
    // Tokens "<s>", "▁hello", "▁", "▁a" → Replace: "<s>", " hello", " ", " a" → Fuse → "<s> hello  a"; Strip
    // removes one leading space only, and the text starts with "<".
    EXPECT_EQ(tok.decode(Ids{kBos, kSpaceHello, kSpace, kSpaceA}), "<s> hello  a");
    // Without <s> the fused text starts with the space Strip removes.
    EXPECT_EQ(tok.decode(Ids{kBos, kSpaceHello, kSpace, kSpaceA}, /*skip_special=*/true), "hello  a");
    // ByteFallback turns a run of byte tokens that is valid UTF-8 into its text.
    EXPECT_EQ(tok.decode(Ids{kSpace, byte_token(0xE2), byte_token(0x82), byte_token(0xAC)}), "€");
    // An invalid run becomes one U+FFFD per byte: E2 82 is one invalid sequence but gives two.
    EXPECT_EQ(tok.decode(Ids{byte_token(0xE2), byte_token(0x82)}), "\uFFFD\uFFFD");
    EXPECT_EQ(tok.decode(Ids{byte_token(0xE2), kO}), "\uFFFDo");
}

TEST(TokenizerSpm, TokenBytesAreTheTextInsideASentence) {
    const Tokenizer tok = load_spec(llama2_tokenizer());
    EXPECT_EQ(tok.token_bytes(kSpaceHello), " hello");  // Strip only applies at the start of a text
    EXPECT_EQ(tok.token_bytes(byte_token(0xE2)), "\xE2");  // the raw byte, for streaming
    EXPECT_EQ(tok.token_bytes(kBos), "<s>");
    EXPECT_EQ(tok.vocab_size(), 276u);
}

TEST(TokenizerSpm, NormalizedAddedTokensMatchTheirNormalizedForm) {
    json spec = llama2_tokenizer();
    spec["added_tokens"].push_back(added("ahe", 276, false, /*normalized=*/true));
    const Tokenizer tok = load_spec(spec);
    // The token is matched as its normalized form "▁ahe", found in "▁ahe" and in "▁a▁ahe".
    EXPECT_EQ(tok.encode("ahe", false), (Ids{276}));
    EXPECT_EQ(tok.encode("a ahe", false), (Ids{kSpaceA, 276}));
    // "▁aahe" does not contain "▁ahe": ▁a, a, h, e.
    EXPECT_EQ(tok.encode("aahe", false), (Ids{kSpaceA, kA, kH, kE}));
    // It reaches the decoder as "▁ahe", so the decoder's Replace and Strip apply to it.
    EXPECT_EQ(tok.decode(Ids{276}), "ahe");
    EXPECT_EQ(tok.decode(Ids{kSpaceA, 276}), "a ahe");
}

// ---------------------------------------------------------------------------------------------------
// Normalizers (each run in front of Llama 2's Prepend + Replace)
// ---------------------------------------------------------------------------------------------------

const char* const kDecomposedE = "e\u0301";  // e + combining acute accent
const char* const kLigatureFi = "\uFB01";    // ﬁ

TEST(TokenizerNormalizer, NoneKeepsCombiningCharacters) {
    const Tokenizer tok = load_spec(llama2_tokenizer());
    // "▁e◌́": U+0301 (CC 81) is not in the vocabulary, so it falls back to bytes.
    EXPECT_EQ(tok.encode(kDecomposedE, false), (Ids{kSpace, kE, byte_token(0xCC), byte_token(0x81)}));
    EXPECT_EQ(tok.encode("é", false), (Ids{kSpace, kEAcute}));
}

TEST(TokenizerNormalizer, NfcComposes) {
    const Tokenizer tok = load_spec(with_normalizer_first({{"type", "NFC"}}));
    EXPECT_EQ(tok.encode(kDecomposedE, false), (Ids{kSpace, kEAcute}));  // e + ◌́ → é
    // NFC keeps compatibility characters: ﬁ (EF AC 81) stays and falls back to bytes.
    EXPECT_EQ(tok.encode(kLigatureFi, false),
              (Ids{kSpace, byte_token(0xEF), byte_token(0xAC), byte_token(0x81)}));
}

TEST(TokenizerNormalizer, NfdDecomposes) {
    const Tokenizer tok = load_spec(with_normalizer_first({{"type", "NFD"}}));
    EXPECT_EQ(tok.encode("é", false), (Ids{kSpace, kE, byte_token(0xCC), byte_token(0x81)}));  // é → e + ◌́
}

TEST(TokenizerNormalizer, NfkcComposesAndReplacesCompatibilityCharacters) {
    const Tokenizer tok = load_spec(with_normalizer_first({{"type", "NFKC"}}));
    EXPECT_EQ(tok.encode(kLigatureFi, false), (Ids{kSpace, kFi}));  // ﬁ → f i, which merge
    EXPECT_EQ(tok.encode(std::string(kLigatureFi) + kDecomposedE, false), (Ids{kSpace, kFi, kEAcute}));
}

TEST(TokenizerNormalizer, NfkdDecomposesBoth) {
    const Tokenizer tok = load_spec(with_normalizer_first({{"type", "NFKD"}}));
    // ﬁé → f i e ◌́
    EXPECT_EQ(tok.encode(std::string(kLigatureFi) + "é", false),
              (Ids{kSpace, kFi, kE, byte_token(0xCC), byte_token(0x81)}));
}

TEST(TokenizerNormalizer, Lowercase) {
    const Tokenizer tok = load_spec(with_normalizer_first({{"type", "Lowercase"}}));
    EXPECT_EQ(tok.encode("HELLO", false), (Ids{kSpaceHello}));
    // Rust's char::to_lowercase maps İ (U+0130) to two characters: i + combining dot above (CC 87).
    EXPECT_EQ(tok.encode("\u0130", false), (Ids{kSpace, kI, byte_token(0xCC), byte_token(0x87)}));
}

TEST(TokenizerNormalizer, StripLeftRightOrBoth) {
    const auto strip = [](bool left, bool right) {
        return load_spec(with_normalizer_first({{"type", "Strip"}, {"strip_left", left}, {"strip_right", right}}));
    };
    // "  hello a  " stripped on both sides → "▁hello▁a".
    EXPECT_EQ(strip(true, true).encode("  hello a  ", false), (Ids{kSpaceHello, kSpaceA}));
    // Left only → "hello a  " → "▁hello▁a▁▁": two lone "▁" at the end.
    EXPECT_EQ(strip(true, false).encode("  hello a  ", false), (Ids{kSpaceHello, kSpaceA, kSpace, kSpace}));
    // Right only → "  hello a" → "▁▁▁hello▁a": the "▁" Prepend adds and the first space stay alone.
    EXPECT_EQ(strip(false, true).encode("  hello a  ", false), (Ids{kSpace, kSpace, kSpaceHello, kSpaceA}));
}

TEST(TokenizerNormalizer, ReplaceWithRegex) {
    json spec = llama2_tokenizer();
    spec["normalizer"]["normalizers"][1] = replace({{"Regex", " +"}}, "▁");  // a run of spaces → one ▁
    EXPECT_EQ(load_spec(spec).encode("hello   a", false), (Ids{kSpaceHello, kSpaceA}));
}

TEST(TokenizerNormalizer, ReplaceAnchorsMatchAtEveryLine) {
    // Oniguruma (HF's regex engine) anchors ^ at the start of every line, so both spaces of " a\n a"
    // become "▁": "▁a\n▁a" → ▁a, <0x0A>, ▁a. (A single-line ^ would leave the second space to byte
    // fallback.)
    json spec = llama2_tokenizer();
    spec["normalizer"] = replace({{"Regex", "^ "}}, "▁");
    EXPECT_EQ(load_spec(spec).encode(" a\n a", false), (Ids{kSpaceA, byte_token('\n'), kSpaceA}));
}

TEST(TokenizerNormalizer, ByteLevelVocabularyWithNfc) {
    // Qwen2 normalizes with NFC before its byte-level pre-tokenizer: e + ◌́ becomes é's bytes C3 A9.
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) vocab[planeq::byte_level::byte_to_string(static_cast<unsigned char>(b))] = b;
    json spec = {{"added_tokens", json::array({added("Yes", 256, false, /*normalized=*/true)})},
                 {"normalizer", {{"type", "NFC"}}},
                 {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                 {"decoder", {{"type", "ByteLevel"}}},
                 {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
    EXPECT_EQ(load_spec(spec).encode(kDecomposedE, false), (Ids{0xC3, 0xA9}));
    // With Lowercase, the normalized added token "Yes" is matched as "yes" and decodes as "yes".
    spec["normalizer"] = {{"type", "Lowercase"}};
    const Tokenizer tok = load_spec(spec);
    EXPECT_EQ(tok.encode("YES Yes", false), (Ids{256, ' ', 256}));
    EXPECT_EQ(tok.decode(Ids{256}), "yes");
}

// ---------------------------------------------------------------------------------------------------
// Metaspace pre-tokenizer (no normalizer)
// ---------------------------------------------------------------------------------------------------

json with_metaspace(const std::string& scheme, bool split = true) {
    json spec = llama2_tokenizer();
    spec["normalizer"] = nullptr;
    spec["pre_tokenizer"] = metaspace(scheme, split);
    return spec;
}

TEST(TokenizerMetaspace, AlwaysPrependsToEveryPiece) {
    const Tokenizer tok = load_spec(with_metaspace("always"));
    // "hello a" → "▁hello▁a" → split before each ▁ → "▁hello", "▁a".
    EXPECT_EQ(tok.encode("hello a", false), (Ids{kSpaceHello, kSpaceA}));
    // The piece after <s> gets its own "▁".
    EXPECT_EQ(tok.encode("<s>hello", false), (Ids{kBos, kSpaceHello}));
    // A piece that already starts with "▁" (from a space) gets no second one.
    EXPECT_EQ(tok.encode(" hello", false), (Ids{kSpaceHello}));
}

TEST(TokenizerMetaspace, FirstPrependsOnlyAtTheStartOfTheInput) {
    const Tokenizer tok = load_spec(with_metaspace("first"));
    EXPECT_EQ(tok.encode("hello a", false), (Ids{kSpaceHello, kSpaceA}));
    // After an added token there is no "▁": h e ll o (only l l merges).
    EXPECT_EQ(tok.encode("<s>hello", false), (Ids{kBos, kH, kE, kLL, kO}));
    // " a" after <s> starts with the ▁ of its own space.
    EXPECT_EQ(tok.encode("hello<s> a", false), (Ids{kSpaceHello, kBos, kSpaceA}));
}

TEST(TokenizerMetaspace, FirstFollowsTheOriginalOffsetThroughNormalization) {
    // HF prepends under "first" only when the piece's first character comes from offset 0 of the input.
    // Stripping "  " moves "hello" to offset 2, so it gets no "▁" (as HF does).
    json spec = with_metaspace("first");
    spec["normalizer"] = {{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}};
    const Tokenizer tok = load_spec(spec);
    EXPECT_EQ(tok.encode("  hello", false), (Ids{kH, kE, kLL, kO}));
    EXPECT_EQ(tok.encode("hello", false), (Ids{kSpaceHello}));
}

TEST(TokenizerMetaspace, NeverPrepends) {
    const Tokenizer tok = load_spec(with_metaspace("never"));
    // "hello▁a" → "hello", "▁a".
    EXPECT_EQ(tok.encode("hello a", false), (Ids{kH, kE, kLL, kO, kSpaceA}));
}

TEST(TokenizerMetaspace, SplitKeepsMergesInsideWords) {
    // With a merge "o ▁" ranked first, an unsplit "▁hello▁a" merges o▁ before ▁hell + o can:
    // ▁hell, o▁, a. Split into "▁hello" and "▁a", the merge has nothing to join.
    for (const bool split : {true, false}) {
        json spec = with_metaspace("always", split);
        spec["model"]["merges"].insert(spec["model"]["merges"].begin(), json::array({"o", "▁"}));
        const Ids expected = split ? Ids{kSpaceHello, kSpaceA} : Ids{kSpaceHell, kOSpace, kA};
        EXPECT_EQ(load_spec(spec).encode("hello a", false), expected) << "split " << split;
    }
}

TEST(TokenizerMetaspace, MistralV03) {
    const Tokenizer tok = load_spec(mistral_v03_tokenizer());
    // "[INST]" is an added token; " hello a" is not at the start, so only its own space becomes "▁".
    EXPECT_EQ(tok.encode("[INST] hello a[/INST]"), (Ids{kBos, 276, kSpaceHello, kSpaceA, 277}));
    EXPECT_EQ(tok.encode("hello", false), (Ids{kSpaceHello}));
    EXPECT_EQ(tok.encode("<s>hello", false), (Ids{kBos, kH, kE, kLL, kO}));
    EXPECT_EQ(tok.decode(Ids{kBos, 276, kSpaceHello, kSpaceA, 277}), "<s>[INST] hello a[/INST]");
    EXPECT_EQ(tok.decode(Ids{kBos, 276, kSpaceHello, kSpaceA, 277}, /*skip_special=*/true), "hello a");
}

// ---------------------------------------------------------------------------------------------------
// Decoders
// ---------------------------------------------------------------------------------------------------

TEST(TokenizerDecoder, MetaspaceDropsTheFirstTokensReplacement) {
    json spec = llama2_tokenizer();
    spec["decoder"] = metaspace("always");
    // Every ▁ becomes a space, except in the first token, where (prepend scheme not "never") it is dropped.
    EXPECT_EQ(load_spec(spec).decode(Ids{kSpaceHello, kSpaceA}), "hello a");
    EXPECT_EQ(load_spec(spec).decode(Ids{kBos, kSpaceHello}), "<s> hello");
    EXPECT_EQ(load_spec(spec).decode(Ids{kSpace, kSpace, kSpaceA}), "  a");
    spec["decoder"] = metaspace("never");
    EXPECT_EQ(load_spec(spec).decode(Ids{kSpaceHello, kSpaceA}), " hello a");
}

TEST(TokenizerDecoder, StripBothEndsAfterFuse) {
    json spec = llama2_tokenizer();
    spec["decoder"] = {{"type", "Sequence"},
                       {"decoders", json::array({replace({{"String", "▁"}}, " "), {{"type", "Fuse"}},
                                                 {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 1}}})}};
    // " hello " loses one space at each end; of "hello  " only one trailing space goes.
    EXPECT_EQ(load_spec(spec).decode(Ids{kSpaceHello, kSpace}), "hello");
    EXPECT_EQ(load_spec(spec).decode(Ids{kSpaceHello, kSpace, kSpace}), "hello ");
}

TEST(TokenizerDecoder, NoDecoderJoinsTokensWithSpaces) {
    json spec = llama2_tokenizer();
    spec["decoder"] = nullptr;  // HF then joins the raw token strings with spaces
    EXPECT_EQ(load_spec(spec).decode(Ids{kSpaceHello, kSpaceA}), "▁hello ▁a");
}

// ---------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------

void expect_load_error(const json& spec, const std::string& problem) {
    const TempFile file(spec.dump());
    try {
        Tokenizer::load(file.path());
        ADD_FAILURE() << "no error for a file that should fail with: " << problem;
    } catch (const planeq::Error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find(file.path().string()), std::string::npos) << message;
        EXPECT_NE(message.find(problem), std::string::npos) << message;
    }
}

TEST(TokenizerSpmErrors, UnsupportedComponentsNameTheType) {
    expect_load_error(with_normalizer_first({{"type", "BertNormalizer"}}),
                      "unsupported normalizer type \"BertNormalizer\"");
    expect_load_error(with_normalizer_first({{"type", "Precompiled"}, {"precompiled_charsmap", ""}}),
                      "unsupported normalizer type \"Precompiled\"");
    json spec = llama2_tokenizer();
    spec["decoder"] = {{"type", "CTC"}};
    expect_load_error(spec, "unsupported decoder type \"CTC\"");
    spec = llama2_tokenizer();
    spec["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({{{"type", "Digits"}}})}};
    expect_load_error(spec, "unsupported pre-tokenizer type \"Digits\"");
}

TEST(TokenizerSpmErrors, BadMetaspaceFields) {
    json spec = with_metaspace("always");
    spec["pre_tokenizer"]["replacement"] = "▁▁";
    expect_load_error(spec, "pre_tokenizer.replacement must be a single character");
    spec = with_metaspace("sometimes");
    expect_load_error(spec, "unknown prepend_scheme \"sometimes\"");
    // Older files say add_prefix_space; HF rejects false unless the scheme is spelled out as "never".
    spec = with_metaspace("always");
    spec["pre_tokenizer"].erase("prepend_scheme");
    spec["pre_tokenizer"]["add_prefix_space"] = false;
    expect_load_error(spec, "add_prefix_space does not match declared prepend_scheme");
}

TEST(TokenizerSpmErrors, BadNormalizerFields) {
    expect_load_error(with_normalizer_first({{"type", "Replace"}, {"pattern", {{"Regex", "("}}}, {"content", ""}}),
                      "invalid regex");
    expect_load_error(with_normalizer_first({{"type", "Strip"}, {"strip_left", true}}),
                      "normalizer.normalizers[0] has no \"strip_right\"");
}

}  // namespace
