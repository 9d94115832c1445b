#include "tokenizer/token_ids.hpp"

#include <openssl/evp.h>

#include <memory>
#include <string>

#include "core/error.hpp"

namespace planeq {

std::string sha256_of_ids(std::span<const int32_t> ids) {
    const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
        fail("sha256: cannot initialise the OpenSSL digest");
    // Hash in chunks of text rather than building one string for hundreds of thousands of ids.
    std::string chunk;
    chunk.reserve(1 << 16);
    const auto flush = [&] {
        if (EVP_DigestUpdate(ctx.get(), chunk.data(), chunk.size()) != 1) fail("sha256: digest update failed");
        chunk.clear();
    };
    for (size_t i = 0; i < ids.size(); ++i) {
        if (i > 0) chunk += ',';
        chunk += std::to_string(ids[i]);
        if (chunk.size() > (1 << 16) - 32) flush();
    }
    flush();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) fail("sha256: digest final failed");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(2 * length);
    for (unsigned int i = 0; i < length; ++i) {
        hex += kHex[digest[i] >> 4];
        hex += kHex[digest[i] & 0x0F];
    }
    return hex;
}

}  // namespace planeq
