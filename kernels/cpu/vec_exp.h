// exp for CPU kernel loops. libm's expf is an out-of-line scalar call, so loops calling it never
// vectorise; softmax and cross-entropy spend most of their time there. `exp_sub` computes
// y[i] = exp(x[i] - shift) four floats at a time with GCC/Clang vector extensions (plain SSE2
// code; auto-vectorisation does not happen here because GCC will not if-convert the range
// checks under the default -ftrapping-math).
//
// float: Cephes' expf polynomial on a Cody-Waite reduced argument, max relative error ~1e-7
// (about 2 ulp). Results below ~2e-38 are flushed to 0 (no denormals); arguments above 88.72
// give +inf; NaN propagates. The scalar `exp_vec` performs the same IEEE operations as one lane
// of the vector path, so results do not depend on where a row is split. double: std::exp.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace dl::cpu {

namespace vexp_detail {

using v4sf = float __attribute__((vector_size(16)));
using v4si = int32_t __attribute__((vector_size(16)));

constexpr float kLo = -87.3365f;  // exp(kLo) ~ 1.2e-38, the smallest normal float
constexpr float kHi = 88.7228f;   // exp(kHi) ~ FLT_MAX
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: (t + kRound) - kRound rounds t to an integer
constexpr float kC1 = 0.693359375f;    // ln2 = kC1 + kC2, kC1 with few mantissa bits (n * kC1 exact)
constexpr float kC2 = -2.12194440e-4f;
constexpr float kP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                         4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

// The shared body: x already finite-clamped to [kLo, kHi]; F is float or v4sf, I int32 or v4si.
template <class F, class I>
inline F exp_core(F xc, I n_from_fn(F)) {
  const F t = xc * kLog2e;
  const F fn = (t + kRound) - kRound;
  const I n = n_from_fn(fn);
  const F r = (xc - fn * kC1) - fn * kC2;
  F p = r * 0.0f + kP[0];
  for (int k = 1; k < 6; ++k) p = p * r + kP[k];
  p = (p * r) * r + r + 1.0f;
  // 2^n as 2^(n-1) * 2 so that n = 128 does not overflow the exponent field (n = -126 gives 0).
  F scale;
  const I bits = (n + 126) << 23;
  std::memcpy(&scale, &bits, sizeof(F));
  return p * scale * 2.0f;
}

inline int32_t to_int(float f) { return static_cast<int32_t>(f); }
inline v4si to_int4(v4sf f) { return __builtin_convertvector(f, v4si); }

}  // namespace vexp_detail

inline float exp_vec(float x) {
  using namespace vexp_detail;
  float xc = x > kLo ? x : kLo;  // NaN -> kLo here; restored below
  xc = xc < kHi ? xc : kHi;
  float y = exp_core<float, int32_t>(xc, to_int);
  y = x < kLo ? 0.0f : y;
  y = x > kHi ? std::numeric_limits<float>::infinity() : y;
  return x == x ? y : x;
}

inline double exp_vec(double x) { return std::exp(x); }

namespace vexp_detail {

// y[i] = exp(x[i] - shift(i)) over [0, n); shift4(i) / shift(i) give 4 lanes / one value.
template <class Shift4, class Shift1>
inline void exp_sub_impl(const float* x, float* y, int64_t n, Shift4 shift4, Shift1 shift1) {
  const v4sf lo = {kLo, kLo, kLo, kLo}, hi = {kHi, kHi, kHi, kHi};
  const v4sf zero = {0, 0, 0, 0};
  const float inf = std::numeric_limits<float>::infinity();
  const v4sf vinf = {inf, inf, inf, inf};
  auto lanes = [&](v4sf v) {
    v4sf xc = v > lo ? v : lo;
    xc = xc < hi ? xc : hi;
    v4sf e = exp_core<v4sf, v4si>(xc, to_int4);
    e = v < lo ? zero : e;
    e = v > hi ? vinf : e;
    return v == v ? e : v;
  };
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v4sf v;
    std::memcpy(&v, x + i, sizeof(v));
    const v4sf e = lanes(v - shift4(i));
    std::memcpy(y + i, &e, sizeof(e));
  }
  if (i < n) {  // the last 1-3 elements as one zero-padded vector (lanes are independent)
    v4sf v = zero;
    for (int64_t j = i; j < n; ++j) v[j - i] = x[j] - shift1(j);
    const v4sf e = lanes(v);
    for (int64_t j = i; j < n; ++j) y[j] = e[j - i];
  }
}

}  // namespace vexp_detail

// y[i] = exp(x[i] - shift) for i in [0, n). y may alias x.
inline void exp_sub(const float* x, float shift, float* y, int64_t n) {
  const vexp_detail::v4sf s4 = {shift, shift, shift, shift};
  vexp_detail::exp_sub_impl(x, y, n, [s4](int64_t) { return s4; }, [shift](int64_t) { return shift; });
}
inline void exp_sub(const double* x, double shift, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i] - shift);
}

// y[i] = exp(x[i] - shift[i]) for i in [0, n). y may alias x.
inline void exp_sub(const float* x, const float* shift, float* y, int64_t n) {
  vexp_detail::exp_sub_impl(
      x, y, n,
      [shift](int64_t i) {
        vexp_detail::v4sf s;
        std::memcpy(&s, shift + i, sizeof(s));
        return s;
      },
      [shift](int64_t i) { return shift[i]; });
}
inline void exp_sub(const double* x, const double* shift, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i] - shift[i]);
}

}  // namespace dl::cpu
