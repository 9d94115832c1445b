// Read-only memory map of a whole file. Weights are never copied at load time: tensors are views
// into these maps, and the OS pages them in on first touch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace planeq {

class MappedFile {
public:
    MappedFile() = default;
    explicit MappedFile(const std::filesystem::path& path);  // throws planeq::Error
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    MappedFile(MappedFile&& o) noexcept { swap(o); }
    MappedFile& operator=(MappedFile&& o) noexcept { swap(o); return *this; }

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::filesystem::path& path() const { return path_; }

private:
    void swap(MappedFile& o) noexcept;
    std::filesystem::path path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace planeq
