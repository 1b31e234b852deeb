// grid_sample on the CPU (kernels/grid_sample.h), f32 and f64: PyTorch 1.13's CPU rules
// (GridSamplerKernel.cpp's ComputeLocation / ApplyGridSample, in kernels/grid_sample_coords.h,
// shared with the CUDA kernel), written per point instead of per vector of points. Forward
// splits the output points of all samples across threads (each output element has one writer);
// backward splits the samples, so each sample's input gradient is accumulated by one thread in
// output-point order and results do not depend on the thread count.
#include <cmath>
#include <cstdint>

#include "kernels/cpu/loop.h"
#include "kernels/grid_sample.h"
#include "kernels/grid_sample_coords.h"

namespace dl::cpu {
namespace {

using grid_sample_detail::Axis;
using grid_sample_detail::Point;

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
