// grid_sample on the CPU (kernels/grid_sample.h), f32 and f64: PyTorch 1.13's CPU rules
// (GridSamplerKernel.cpp's ComputeLocation / ApplyGridSample), written per point instead of
// per vector of points. Forward splits the output points of all samples across threads (each
// output element has one writer); backward splits the samples, so each sample's input gradient
// is accumulated by one thread in output-point order and results do not depend on the thread
// count.
#include <cmath>
#include <cstdint>

#include "kernels/cpu/loop.h"
#include "kernels/grid_sample.h"

namespace dl::cpu {
namespace {

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

  Axis(int64_t n, const GridSampleShape& s)
      : size(n), max_val(static_cast<T>(n - 1)),
        scale(s.align_corners ? static_cast<T>(n - 1) / 2 : static_cast<T>(n) / 2),
        shift(s.align_corners ? T(0) : T(0.5)), low(s.align_corners ? T(0) : T(-0.5)),
        twice_span(s.align_corners ? static_cast<T>(n - 1) * 2 : static_cast<T>(n) * 2), pad(s.padding) {}

  // Clamps to [0, size - 1] (NaN to 0); the gradient is 0 on and beyond the borders.
  T clip(T x, T& grad) const {
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
  T reflect(T x, T& grad) const {
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
  T source(T g, T& grad) const {
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

  Point(const Axis<T>& ax, const Axis<T>& ay, const T* g, GridSampleMode mode) {
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

  T weight(int k) const {
    switch (k) {
      case 0: return s * e;
      case 1: return s * w;
      case 2: return n * e;
      default: return n * w;
    }
  }
  T value(const T* plane, int k) const { return in[k] ? plane[off[k]] : T(0); }
};

template <class T>
void forward(const GridSampleShape& s, const T* input, const T* grid, T* y) {
  const Axis<T> ax(s.w, s), ay(s.h, s);
  const int64_t points = s.oh * s.ow, plane = s.h * s.w;
  parallel_for(s.n * points, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s.c)), [&](int64_t p0, int64_t p1) {
    for (int64_t np = p0; np < p1; ++np) {
      const int64_t b = np / points, p = np % points;
      const Point<T> pt(ax, ay, grid + np * 2, s.mode);
      const T* in_b = input + b * s.c * plane;
      T* y_b = y + b * s.c * points + p;
      for (int64_t c = 0; c < s.c; ++c) {
        const T* in_c = in_b + c * plane;
        if (s.mode == GridSampleMode::Nearest) {
          y_b[c * points] = pt.value(in_c, 0);
          continue;
        }
        y_b[c * points] = pt.value(in_c, 0) * pt.weight(0) + pt.value(in_c, 1) * pt.weight(1) +
                          pt.value(in_c, 2) * pt.weight(2) + pt.value(in_c, 3) * pt.weight(3);
      }
    }
  });
}

template <class T>
void backward(const GridSampleShape& s, const T* gy, const T* input, const T* grid, T* g_input, T* g_grid) {
  const Axis<T> ax(s.w, s), ay(s.h, s);
  const int64_t points = s.oh * s.ow, plane = s.h * s.w;
  const bool bilinear = s.mode == GridSampleMode::Bilinear;
  parallel_for(s.n, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* gin_b = g_input ? g_input + b * s.c * plane : nullptr;
      if (gin_b)
        for (int64_t i = 0; i < s.c * plane; ++i) gin_b[i] = 0;
      for (int64_t p = 0; p < points; ++p) {
        const int64_t np = b * points + p;
        const Point<T> pt(ax, ay, grid + np * 2, s.mode);
        const T* gy_b = gy + b * s.c * points + p;
        const T* in_b = input + b * s.c * plane;
        T gx = 0, gyy = 0;
        for (int64_t c = 0; c < s.c; ++c) {
          const T g = gy_b[c * points];
          if (!bilinear) {
            if (gin_b && pt.in[0]) gin_b[c * plane + pt.off[0]] += g;
            continue;
          }
          if (gin_b)
            for (int k = 0; k < 4; ++k)
              if (pt.in[k]) gin_b[c * plane + pt.off[k]] += pt.weight(k) * g;
          if (g_grid) {
            const T* in_c = in_b + c * plane;
            const T nw = pt.value(in_c, 0), ne = pt.value(in_c, 1), sw = pt.value(in_c, 2), se = pt.value(in_c, 3);
            gx += ((ne - nw) * pt.s + (se - sw) * pt.n) * g;
            gyy += ((sw - nw) * pt.e + (se - ne) * pt.w) * g;
          }
        }
        if (g_grid) {  // nearest: zero, like torch
          g_grid[np * 2] = bilinear ? gx * pt.gx_mult : T(0);
          g_grid[np * 2 + 1] = bilinear ? gyy * pt.gy_mult : T(0);
        }
      }
    }
  });
}

void cpu_grid_sample_fwd(const GridSampleShape& s, const Tensor& input, const Tensor& grid, Tensor& y) {
  DL_DISPATCH_FLOAT(input.dtype(), "grid_sample", [&] {
    forward<scalar_t>(s, input.data<scalar_t>(), grid.data<scalar_t>(), y.data<scalar_t>());
  });
}

void cpu_grid_sample_bwd(const GridSampleShape& s, const Tensor& gy, const Tensor& input, const Tensor& grid,
                         Tensor& g_input, Tensor& g_grid) {
  DL_DISPATCH_FLOAT(input.dtype(), "grid_sample backward", [&] {
    backward<scalar_t>(s, gy.data<scalar_t>(), input.data<scalar_t>(), grid.data<scalar_t>(),
                       g_input.defined() ? g_input.data<scalar_t>() : nullptr,
                       g_grid.defined() ? g_grid.data<scalar_t>() : nullptr);
  });
}

}  // namespace

DL_REGISTER_KERNEL(grid_sample_fwd_stub, CPU, cpu_grid_sample_fwd);
DL_REGISTER_KERNEL(grid_sample_bwd_stub, CPU, cpu_grid_sample_bwd);

}  // namespace dl::cpu
