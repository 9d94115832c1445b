#include "io/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace planeq {

using json = nlohmann::json;

int64_t TensorView::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the format's own limit (100 MB)

uint64_t read_u64_le(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

TensorView parse_entry(const std::filesystem::path& path, const std::string& name, const json& e,
                       const uint8_t* data, uint64_t data_size) {
    auto bad = [&](const std::string& what) { fail_file(path, "tensor '" + name + "': " + what); };
    if (!e.is_object()) bad("header entry is not an object");
    if (!e.contains("dtype") || !e["dtype"].is_string()) bad("missing dtype");
    if (!e.contains("shape") || !e["shape"].is_array()) bad("missing shape");
    if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
        bad("missing or malformed data_offsets");

    TensorView t;
    t.name = name;
    const std::string dt = e["dtype"].get<std::string>();
    auto dtype = dtype_from_name(dt);
    if (!dtype) bad("unknown dtype '" + dt + "'");
    t.dtype = *dtype;

    uint64_t numel = 1;
    for (const auto& d : e["shape"]) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0) bad("shape has a negative or non-integer dimension");
        const uint64_t dim = d.get<uint64_t>();
        if (dim != 0 && numel > (uint64_t(1) << 62) / dim) bad("shape is too large");
        numel *= dim;
        t.shape.push_back(int64_t(dim));
    }
    const auto& off = e["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) bad("data_offsets are not non-negative integers");
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end) bad("data_offsets begin after they end");
    if (end > data_size)
        bad("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + ") run past the end of the data (" +
            std::to_string(data_size) + " bytes); the file is truncated or corrupt");
    if (end - begin != numel * dtype_size(t.dtype))
        bad("byte range holds " + std::to_string(end - begin) + " bytes but " + dt + " shape needs " +
            std::to_string(numel * dtype_size(t.dtype)));
    t.data = data + begin;
    t.nbytes = size_t(end - begin);
    return t;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path) {
    const uint8_t* base = file_.data();
    const uint64_t size = file_.size();
    if (size < 8) fail_file(path, "truncated: " + std::to_string(size) + " bytes, too short for a safetensors header");
    const uint64_t header_len = read_u64_le(base);
    if (header_len > size - 8)
        fail_file(path, "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                            std::to_string(size) + " bytes); truncated or not a safetensors file");
    if (header_len > kMaxHeaderBytes) fail_file(path, "header length " + std::to_string(header_len) + " exceeds 100 MB");

    json header;
    try {
        header = json::parse(reinterpret_cast<const char*>(base + 8), reinterpret_cast<const char*>(base + 8 + header_len));
    } catch (const json::exception& e) {
        fail_file(path, std::string("header is not valid JSON: ") + e.what());
    }
    if (!header.is_object()) fail_file(path, "header is not a JSON object");

    const uint8_t* data = base + 8 + header_len;
    const uint64_t data_size = size - 8 - header_len;
    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") {
            if (!it->is_object()) fail_file(path, "__metadata__ is not an object");
            for (auto m = it->begin(); m != it->end(); ++m)
                if (m->is_string()) metadata_[m.key()] = m->get<std::string>();
            continue;
        }
        tensors_.emplace(it.key(), parse_entry(path, it.key(), *it, data, data_size));
    }

    // Byte ranges must not overlap: a corrupt header could otherwise alias two tensors.
    std::vector<const TensorView*> by_offset;
    for (const auto& [_, t] : tensors_)
        if (t.nbytes > 0) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->data < b->data; });
    for (size_t i = 1; i < by_offset.size(); ++i)
        if (by_offset[i - 1]->data + by_offset[i - 1]->nbytes > by_offset[i]->data)
            fail_file(path, "tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name + "' have overlapping data_offsets");
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::span<const uint8_t> bytes) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    if (size_t(numel) * dtype_size(dtype) != bytes.size())
        fail("safetensors writer: tensor '" + name + "' has " + std::to_string(bytes.size()) + " bytes, shape needs " +
             std::to_string(size_t(numel) * dtype_size(dtype)));
    entries_[name] = Entry{dtype, std::move(shape), std::vector<uint8_t>(bytes.begin(), bytes.end())};
}

size_t SafetensorsWriter::total_bytes() const {
    size_t n = 0;
    for (const auto& [_, e] : entries_) n += e.bytes.size();
    return n;
}

const std::vector<std::string> SafetensorsWriter::names() const {
    std::vector<std::string> out;
    for (const auto& [name, _] : entries_) out.push_back(name);
    return out;
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
    // Header entries are written in name order with offsets in the same order, so equal inputs give
    // byte-identical files. nlohmann's ordered keys would also do; std::map iteration is sorted already.
    json header = json::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    uint64_t offset = 0;
    for (const auto& [name, e] : entries_) {
        header[name] = {{"dtype", std::string(dtype_name(e.dtype))}, {"shape", e.shape},
                        {"data_offsets", {offset, offset + e.bytes.size()}}};
        offset += e.bytes.size();
    }
    std::string text = header.dump();
    while ((8 + text.size()) % 8 != 0) text.push_back(' ');  // align the data section to 8 bytes

    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) fail_file(path, "cannot create file");
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), std::streamsize(text.size()));
    for (const auto& [_, e] : entries_) out.write(reinterpret_cast<const char*>(e.bytes.data()), std::streamsize(e.bytes.size()));
    out.flush();
    if (!out) fail_file(path, "write failed (disk full?)");
}

}  // namespace planeq
