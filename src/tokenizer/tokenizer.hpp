// BPE tokenizer read from a Hugging Face tokenizer.json: byte-level vocabularies (GPT-2 / Llama 3 /
// Qwen) and SentencePiece-style ones (Llama 2, Mistral). It reproduces the `tokenizers` library's ids
// exactly for the supported components:
//   normalizer: NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend, Replace, Sequence of them, or none,
//   added tokens (special or not; lstrip / rstrip / single_word / normalized) matched in the raw text
//     (normalized = false) or in the normalized text between those,
//   pre-tokenizer: Split (PCRE2 regex or literal), ByteLevel, Metaspace (prepend_scheme always / first /
//     never, split or not), alone or in a Sequence with nothing after a ByteLevel, or none,
//   model: BPE (merges as "a b" or [a, b]; ignore_merges, byte_fallback, unk_token, fuse_unk),
//   post-processor: TemplateProcessing, ByteLevel, Sequence of them, or none,
//   decoder: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence of them, or none.
// Anything else is rejected by load() with a planeq::Error rather than tokenized differently.
// Known gaps: \p{L}-style classes follow the Unicode version of the system's PCRE2 (14.0 on Debian 12),
// so characters assigned later (e.g. CJK Extension I) may split differently from HF's Oniguruma; and
// normalization and lowercasing use utf8proc's tables (Unicode 15.0 on Debian 12).
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

    // Text of `ids` through the decoder, as Hugging Face's decode: byte sequences that are not valid
    // UTF-8 become U+FFFD (ByteLevel: one per invalid sequence; ByteFallback: one per byte). Ids outside
    // the vocabulary are skipped (also as HF does); skip_special drops special added tokens (exactly:
    // tokens whose string is a special token's content, as HF decides).
    std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

    // Raw bytes one token stands for in the middle of a text (may be part of a multi-byte character),
    // for streaming output token by token: "▁the" gives " the", "<0x0A>" a newline. What the decoder
    // does only at the ends of a text (e.g. strip the first token's leading space) is not applied.
    // Throws for unknown ids.
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
