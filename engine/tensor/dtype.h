// Element types. f32 is the training type; f64 serves gradient checks; i64 holds labels and
// indices; u8/bool hold raw pixels and masks. f16/bf16 are reserved for CUDA mixed precision.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace dl {

enum class DType : uint8_t { F32, F64, I64, U8, Bool, F16, BF16 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I64: return 8;
    case DType::U8: return 1;
    case DType::Bool: return 1;
    case DType::F16: return 2;
    case DType::BF16: return 2;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I64: return "int64";
    case DType::U8: return "uint8";
    case DType::Bool: return "bool";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
  }
  return "?";
}

inline bool is_floating(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::F16 || t == DType::BF16;
}

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::U8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };

// Runs `body` with `scalar_t` bound to the C++ type of `dt` (f32/f64 only).
#define DL_DISPATCH_FLOAT(dt, opname, ...)                                              \
  [&] {                                                                                 \
    switch (dt) {                                                                       \
      case ::dl::DType::F32: { using scalar_t = float; return __VA_ARGS__(); }          \
      case ::dl::DType::F64: { using scalar_t = double; return __VA_ARGS__(); }         \
      default:                                                                          \
        throw std::invalid_argument(std::string(opname) + ": unsupported dtype " +      \
                                    ::dl::dtype_name(dt) + " (expected float32/float64)"); \
    }                                                                                   \
  }()

// f32, f64, i64, u8, bool.
#define DL_DISPATCH_ALL(dt, opname, ...)                                                \
  [&] {                                                                                 \
    switch (dt) {                                                                       \
      case ::dl::DType::F32: { using scalar_t = float; return __VA_ARGS__(); }          \
      case ::dl::DType::F64: { using scalar_t = double; return __VA_ARGS__(); }         \
      case ::dl::DType::I64: { using scalar_t = int64_t; return __VA_ARGS__(); }        \
      case ::dl::DType::U8: { using scalar_t = uint8_t; return __VA_ARGS__(); }         \
      case ::dl::DType::Bool: { using scalar_t = bool; return __VA_ARGS__(); }          \
      default:                                                                          \
        throw std::invalid_argument(std::string(opname) + ": unsupported dtype " +      \
                                    ::dl::dtype_name(dt));                              \
    }                                                                                   \
  }()

}  // namespace dl
