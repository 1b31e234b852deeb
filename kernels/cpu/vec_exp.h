// exp for CPU kernel loops. libm's expf is an out-of-line scalar call, so a loop calling it
// never vectorises; this branch-free version inlines and lets GCC vectorise the loop (SSE2
// and up), which makes softmax and cross-entropy several times faster.
//
// float: Cephes' expf polynomial on a Cody-Waite reduced argument, max relative error ~2 ulp
// (1.2e-7). Results below ~1.2e-38 are flushed to 0 (no denormals); above 88.72 give +inf;
// NaN propagates. double: std::exp (gradient checks and f64 paths need full accuracy).
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace dl::cpu {

inline float exp_vec(float x) {
  constexpr float kLo = -87.3365f;  // exp(kLo) ~ 1.2e-38, the smallest normal float
  constexpr float kHi = 88.7228f;   // exp(kHi) ~ FLT_MAX
  float xc = x < kLo ? kLo : x;     // NaN stays NaN (comparisons are false)
  xc = xc > kHi ? kHi : xc;
  // n = round(x / ln2) by the 1.5 * 2^23 trick (exact for |t| < 2^22; needs no -ffast-math).
  const float t = xc * 1.44269504088896341f;
  const float fn = (t + 12582912.0f) - 12582912.0f;
  const int32_t n = static_cast<int32_t>(fn);
  // r = x - n ln2, with ln2 split in two so that n * C1 is exact.
  const float r = (xc - fn * 0.693359375f) - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = (p * r) * r + r + 1.0f;
  // 2^n as 2^(n-1) * 2 so that n = 128 does not overflow the exponent field.
  const float scale = std::bit_cast<float>((n + 126) << 23);
  float y = p * scale * 2.0f;
  y = x < kLo ? 0.0f : y;
  y = x > kHi ? std::numeric_limits<float>::infinity() : y;
  return y;
}

inline double exp_vec(double x) { return std::exp(x); }

}  // namespace dl::cpu
