#include "tokenizer/token_ids.hpp"

#include <string>

#include "core/sha256.hpp"

namespace planeq {

std::string sha256_of_ids(std::span<const int32_t> ids) {
    Sha256 h;
    // Hash in chunks of text rather than building one string for hundreds of thousands of ids.
    std::string chunk;
    chunk.reserve(1 << 16);
    for (size_t i = 0; i < ids.size(); ++i) {
        if (i > 0) chunk += ',';
        chunk += std::to_string(ids[i]);
        if (chunk.size() > (1 << 16) - 32) {
            h.update(chunk);
            chunk.clear();
        }
    }
    h.update(chunk);
    return h.hex();
}

}  // namespace planeq
