// safetensors: an 8-byte little-endian header length, a JSON header naming every tensor's dtype,
// shape and byte range, then the raw data. The reader maps the file and validates every entry
// before any tensor is used; the writer produces byte-deterministic files (sorted names).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/mmap_file.hpp"

namespace planeq {

struct TensorView {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const uint8_t* data = nullptr;
    size_t nbytes = 0;

    int64_t numel() const;
    template <class T>
    std::span<const T> as() const { return {reinterpret_cast<const T*>(data), nbytes / sizeof(T)}; }
};

class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::filesystem::path& path);  // maps and validates; throws planeq::Error

    const std::filesystem::path& path() const { return file_.path(); }
    const std::map<std::string, TensorView>& tensors() const { return tensors_; }
    const TensorView* find(const std::string& name) const;
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

private:
    MappedFile file_;
    std::map<std::string, TensorView> tensors_;
    std::map<std::string, std::string> metadata_;
};

// Collects tensors and writes one safetensors file. Data is copied in, so callers may free theirs.
class SafetensorsWriter {
public:
    void add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::span<const uint8_t> bytes);
    template <class T>
    void add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::span<const T> values) {
        add(name, dtype, std::move(shape),
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(values.data()), values.size_bytes()));
    }
    void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
    size_t total_bytes() const;
    bool empty() const { return entries_.empty(); }
    const std::vector<std::string> names() const;
    void write(const std::filesystem::path& path) const;  // throws planeq::Error on I/O failure

private:
    struct Entry {
        DType dtype;
        std::vector<int64_t> shape;
        std::vector<uint8_t> bytes;
    };
    std::map<std::string, Entry> entries_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace planeq
