// grid_sample's coordinate rules, shared by the CPU kernel (kernels/cpu/grid_sample.cpp) and the
// CUDA kernel (kernels/cuda/grid_sample.cu): PyTorch 1.13's ComputeLocation (unnormalise,
// reflect, clip, with d(source)/d(grid)) and the four bilinear corners of a point, with their
// weights and whether they lie inside the input. Written once, so both backends read the same
// input pixels with the same weights.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/grid_sample.h"
#include "kernels/host_device.h"

namespace dl::grid_sample_detail {

// One spatial axis of the input (width for x, height for y): grid value -> source coordinate.
template <class T>
struct Axis {
  int64_t size;
  T max_val;     // size - 1
  T scale;       // d(source)/d(grid) inside the input: (size - 1) / 2, or size / 2 without align_corners
  T shift;       // 0, or 0.5 without align_corners: (g + 1) * scale - shift
  T low;         // reflection mirrors at low and low + span: 0 / -0.5
  T twice_span;  // 2 (size - 1) / 2 size
  GridSamplePadding pad;

  DL_HOST_DEVICE Axis(int64_t n, const GridSampleShape& s)
      : size(n), max_val(static_cast<T>(n - 1)),
        scale(s.align_corners ? static_cast<T>(n - 1) / 2 : static_cast<T>(n) / 2),
        shift(s.align_corners ? T(0) : T(0.5)), low(s.align_corners ? T(0) : T(-0.5)),
        twice_span(s.align_corners ? static_cast<T>(n - 1) * 2 : static_cast<T>(n) * 2), pad(s.padding) {}

  // Clamps to [0, size - 1] (NaN to 0); the gradient is 0 on and beyond the borders.
  DL_HOST_DEVICE T clip(T x, T& grad) const {
    if (!(x > 0)) {
      grad = 0;
      return 0;
    }
    if (x >= max_val) {
      grad = 0;
      return max_val;
    }
    return x;
  }

  // Mirrors x into [low, low + span] (span = twice_span / 2); flips the gradient's sign on an
  // odd number of reflections.
  DL_HOST_DEVICE T reflect(T x, T& grad) const {
    if (twice_span == 0) {  // a single pixel with align_corners
      grad = 0;
      return 0;
    }
    const T v = x - low;
    const T a = std::abs(v);
    const T extra = a - std::trunc(a / twice_span) * twice_span;
    const T reflected = twice_span - extra;
    const bool one_more_flip = extra > reflected;
    if (one_more_flip != (v < 0)) grad = -grad;
    return (one_more_flip ? reflected : extra) + low;
  }

  // The source coordinate of grid value g; `grad` = d(source)/d(g).
  DL_HOST_DEVICE T source(T g, T& grad) const {
    T x = (g + 1) * scale - shift;
    grad = scale;
    if (pad == GridSamplePadding::Zeros) return x;
    if (pad == GridSamplePadding::Reflection) x = reflect(x, grad);
    return clip(x, grad);
  }
};

// Where one output point reads: the source coordinates and, for bilinear, the four corners
// (north-west, north-east, south-west, south-east) with their weights and whether they lie
// inside the input (decided on the float coordinates, so huge, infinite or NaN grid values
// never reach an index).
template <class T>
struct Point {
  T gx_mult = 0, gy_mult = 0;  // d(source)/d(grid) per axis
  T e = 0, w = 0, s = 0, n = 0;   // distances to the east/west/south/north neighbours' far sides
  bool in[4] = {false, false, false, false};  // nw, ne, sw, se
  int64_t off[4] = {0, 0, 0, 0};              // offsets in the [h, w] plane (0 when outside)

  DL_HOST_DEVICE Point(const Axis<T>& ax, const Axis<T>& ay, const T* g, GridSampleMode mode) {
    const T x = ax.source(g[0], gx_mult), y = ay.source(g[1], gy_mult);
    const int64_t W = ax.size, H = ay.size;
    if (mode == GridSampleMode::Nearest) {
      const T xr = std::nearbyint(x), yr = std::nearbyint(y);  // ties to even, as torch
      in[0] = xr > -1 && xr < static_cast<T>(W) && yr > -1 && yr < static_cast<T>(H);
      if (in[0]) off[0] = static_cast<int64_t>(yr) * W + static_cast<int64_t>(xr);
      return;
    }
    const T x0 = std::floor(x), y0 = std::floor(y);
    w = x - x0;
    e = 1 - w;
    n = y - y0;
    s = 1 - n;
    const bool west = x0 > -1 && x0 < static_cast<T>(W), east = x0 > -2 && x0 < static_cast<T>(W - 1);
    const bool north = y0 > -1 && y0 < static_cast<T>(H), south = y0 > -2 && y0 < static_cast<T>(H - 1);
    const int64_t ix = west || east ? static_cast<int64_t>(x0) : 0;
    const int64_t iy = north || south ? static_cast<int64_t>(y0) : 0;
    const bool corner_in[4] = {north && west, north && east, south && west, south && east};
    const int64_t corner_off[4] = {iy * W + ix, iy * W + ix + 1, (iy + 1) * W + ix, (iy + 1) * W + ix + 1};
    for (int k = 0; k < 4; ++k) {
      in[k] = corner_in[k];
      off[k] = corner_in[k] ? corner_off[k] : 0;
    }
  }

  DL_HOST_DEVICE T weight(int k) const {
    switch (k) {
      case 0: return s * e;
      case 1: return s * w;
      case 2: return n * e;
      default: return n * w;
    }
  }
  DL_HOST_DEVICE T value(const T* plane, int k) const { return in[k] ? plane[off[k]] : T(0); }
};

}  // namespace dl::grid_sample_detail
