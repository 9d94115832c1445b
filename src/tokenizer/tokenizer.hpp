// Byte-level BPE tokenizer read from a Hugging Face tokenizer.json (GPT-2 / Llama 3 / Qwen style).
// It reproduces the `tokenizers` library's ids exactly for the supported components:
//   added tokens (special or not; lstrip / rstrip / single_word / normalized) matched in the raw text,
//   pre-tokenizer: Split (PCRE2 regex or literal) steps and a final ByteLevel, alone or in a Sequence,
//   model: BPE (merges as "a b" or [a, b]; ignore_merges, byte_fallback, unk_token, fuse_unk),
//   post-processor: TemplateProcessing, ByteLevel, Sequence of them, or none,
//   decoder: ByteLevel, normalizer: none.
// Anything else is rejected by load() with a planeq::Error rather than tokenized differently.
// Known gap: \p{L}-style classes follow the Unicode version of the system's PCRE2 (14.0 on Debian 12),
// so characters assigned later (e.g. CJK Extension I) may split differently from HF's Oniguruma.
//
// A Tokenizer is immutable after load; copies share the parsed data and encode/decode may be called
// from several threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace planeq {

class Tokenizer {
public:
    // Parses a tokenizer.json. Any problem (missing file, bad JSON, unsupported model / pre-tokenizer /
    // normalizer / post-processor / decoder, bad vocabulary or merges, a regex PCRE2 rejects) throws
    // planeq::Error "path: problem".
    static Tokenizer load(const std::filesystem::path& tokenizer_json);

    // Token ids of `text` (UTF-8; invalid UTF-8 throws planeq::Error). add_special applies the
    // post-processor's "single" template, e.g. prepends BOS.
    std::vector<int32_t> encode(std::string_view text, bool add_special = true) const;

    // Text of `ids`; byte sequences that are not valid UTF-8 become U+FFFD, as in Hugging Face. Ids
    // outside the vocabulary are skipped (also as HF does); skip_special drops special added tokens.
    std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

    // Raw bytes one token stands for (may be part of a multi-byte character). Throws for unknown ids.
    std::string token_bytes(int32_t id) const;

    size_t vocab_size() const;  // model vocabulary plus added tokens not in it
    std::optional<int32_t> token_to_id(std::string_view token) const;
    bool adds_bos() const;      // the post-processor puts a token before the text
    int32_t bos_id() const;     // that token, or -1
    bool is_special(int32_t id) const;

    struct Impl;

private:
    explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;
};

}  // namespace planeq
