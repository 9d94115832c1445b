// Element types as safetensors names them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace planeq {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

std::optional<DType> dtype_from_name(std::string_view name);  // "BF16" -> DType::BF16
std::string_view dtype_name(DType t);
size_t dtype_size(DType t);
inline bool dtype_is_float(DType t) { return t == DType::F64 || t == DType::F32 || t == DType::F16 || t == DType::BF16; }

}  // namespace planeq
