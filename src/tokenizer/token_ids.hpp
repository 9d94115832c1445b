// Fingerprints of token id sequences, used to compare a tokenization with reference files.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace planeq {

// Lower-case hex SHA-256 of the decimal ids joined by "," (no spaces, no brackets): the
// "wikitext2_test_ids_sha256" convention of the reference files (methods/EVAL.md §1).
std::string sha256_of_ids(std::span<const int32_t> ids);

}  // namespace planeq
