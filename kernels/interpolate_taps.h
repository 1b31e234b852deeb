// The input indices and weights ("taps") that one output index of interpolate reads along one
// dim, with PyTorch 1.13's source-index rules (kernels/interpolate.h). Shared by the CPU kernel
// (kernels/cpu/interpolate.cpp, computed once per call) and the CUDA kernel
// (kernels/cuda/interpolate.cu, computed per output element), so both use one formula.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/interpolate.h"

namespace dl::interp {

// Taps per output index: nearest 1, bilinear 2, bicubic 4.
DL_HOST_DEVICE inline int tap_count(InterpMode mode) {
  return mode == InterpMode::Nearest ? 1 : mode == InterpMode::Bilinear ? 2 : 4;
}

// torch's area_pixel_compute_scale: the step in input coordinates per output index.
template <class T>
DL_HOST_DEVICE T pixel_scale(int64_t in, int64_t out, bool align_corners, double scale_factor) {
  if (align_corners) return out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  return scale_factor > 0.0 ? static_cast<T>(1.0 / scale_factor) : static_cast<T>(in) / static_cast<T>(out);
}

// torch's area_pixel_compute_source_index (the half-pixel product is evaluated in double and
// rounded to T, as the C++ expression there does).
template <class T>
DL_HOST_DEVICE T source_index(T scale, int64_t dst, bool align_corners, bool cubic) {
  if (align_corners) return scale * static_cast<T>(dst);
  const T src = static_cast<T>(static_cast<double>(scale) * (static_cast<double>(dst) + 0.5) - 0.5);
  return !cubic && src < T(0) ? T(0) : src;
}

// Keys' cubic convolution kernel, A = -0.75 (torch's cubic_convolution1 for |x| <= 1 and
// cubic_convolution2 for 1 < |x| < 2).
template <class T>
DL_HOST_DEVICE T cubic_near(T x) {
  const T A = T(-0.75);
  return ((A + 2) * x - (A + 3)) * x * x + 1;
}
template <class T>
DL_HOST_DEVICE T cubic_far(T x) {
  const T A = T(-0.75);
  return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}

// Output index i of a dim of `in` -> `out` elements reads input idx[0 .. tap_count - 1] with
// weights w[0 .. tap_count - 1]; every index is in [0, in).
template <class T>
DL_HOST_DEVICE void taps_at(InterpMode mode, int64_t in, int64_t out, bool align_corners, double scale_factor,
                            int64_t i, int64_t* idx, T* w) {
  if (mode == InterpMode::Nearest) {
    // torch's nearest_idx: float arithmetic for every dtype
    w[0] = T(1);
    if (out == in) {
      idx[0] = i;
    } else if (out == 2 * in) {
      idx[0] = i >> 1;
    } else {
      const float scale = pixel_scale<float>(in, out, false, scale_factor);
      const int64_t src = static_cast<int64_t>(std::floor(static_cast<float>(i) * scale));
      idx[0] = src < in - 1 ? src : in - 1;
    }
  } else if (mode == InterpMode::Bilinear) {
    if (out == in) {  // torch copies
      idx[0] = idx[1] = i;
      w[0] = T(1);
      w[1] = T(0);
      return;
    }
    const T src = source_index<T>(pixel_scale<T>(in, out, align_corners, scale_factor), i, align_corners, false);
    idx[0] = static_cast<int64_t>(src);
    idx[1] = idx[0] + (idx[0] < in - 1 ? 1 : 0);
    const T l = src - static_cast<T>(idx[0]);
    w[1] = l < T(0) ? T(0) : l > T(1) ? T(1) : l;  // min(max(l, 0), 1)
    w[0] = T(1) - w[1];
  } else {
    const T src = source_index<T>(pixel_scale<T>(in, out, align_corners, scale_factor), i, align_corners, true);
    const int64_t i0 = static_cast<int64_t>(std::floor(src));
    const T t = src - static_cast<T>(i0);
    w[0] = cubic_far<T>(t + 1);
    w[1] = cubic_near<T>(t);
    w[2] = cubic_near<T>(1 - t);
    w[3] = cubic_far<T>(2 - t);
    for (int j = 0; j < 4; ++j) {
      const int64_t v = i0 - 1 + j;
      idx[j] = v < 0 ? 0 : v > in - 1 ? in - 1 : v;  // clamped to the input
    }
  }
}

}  // namespace dl::interp
