// SHA-256 through OpenSSL: incremental hashing and lower-case hex digests.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace planeq {

class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(std::string_view bytes);
    std::string hex();  // finishes the digest

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(std::string_view bytes);

}  // namespace planeq
