// Half-precision storage types for CPU copies: IEEE binary16 (float16) and bfloat16.
//
// The engine computes in f32/f64; f16/bf16 tensors appear as stored data (half-precision
// PyTorch state_dicts, CUDA mixed precision) and are converted by the copy kernel, so
// `t.to(DType::F32)`, `Module::load_state_dict` and `to_vector<double>()` accept them.
// Conversions go through float: float -> half rounds to nearest even (like numpy and PyTorch),
// overflows become +-inf, NaN stays NaN; half -> float is exact.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace dl::cpu {

// IEEE binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
struct Half {
  uint16_t bits;

  static Half from_float(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return {static_cast<uint16_t>(sign | 0x7E00u | ((ax >> 13) & 0x3FFu))};  // NaN (quiet)
    if (ax >= 0x477FF000u) return {static_cast<uint16_t>(sign | 0x7C00u)};  // >= 65520 rounds to inf
    if (ax < 0x38800000u) {  // below 2^-14: a subnormal half (or zero)
      if (ax <= 0x33000000u) return {sign};  // <= 2^-25 rounds to (even) zero
      const uint32_t e = ax >> 23;           // 102..112
      const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
      const uint32_t shift = 126 - e;        // value / 2^-24 = m * 2^(e - 126)
      return {static_cast<uint16_t>(sign | round_shift(m, shift))};
    }
    // Normal: rebias the exponent (127 -> 15) and round the mantissa to 10 bits; a carry
    // into the exponent is the correct result (up to 65504).
    return {static_cast<uint16_t>(sign | round_shift(ax - 0x38000000u, 13))};
  }

  float to_float() const {
    const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
    const uint32_t e = (bits >> 10) & 0x1Fu, m = bits & 0x3FFu;
    if (e == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (m << 13));  // inf / NaN
    if (e == 0) {  // zero or subnormal: m * 2^-24
      const float v = std::ldexp(static_cast<float>(m), -24);
      return sign ? -v : v;
    }
    return std::bit_cast<float>(sign | ((e + 112) << 23) | (m << 13));
  }

 private:
  // v >> shift, rounded to nearest, ties to even.
  static uint32_t round_shift(uint32_t v, uint32_t shift) {
    const uint32_t r = v >> shift, rem = v & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    return r + (rem > halfway || (rem == halfway && (r & 1u)));
  }
};

// bfloat16: the upper 16 bits of a float32 (8 exponent bits, 7 mantissa bits).
struct BFloat16 {
  uint16_t bits;

  static BFloat16 from_float(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return {static_cast<uint16_t>((x >> 16) | 0x40u)};  // NaN (quiet)
    return {static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16)};  // nearest, ties to even
  }
  float to_float() const { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }
};

template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

}  // namespace dl::cpu
