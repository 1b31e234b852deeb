// CPU pooling. Our loops (PyTorch's exact semantics) for f64, max-pooling training, adaptive
// pooling and what oneDNN cannot express; cached oneDNN primitives for f32 average pooling and
// max-pooling inference (see "oneDNN f32 path" for the measurements behind the split).
#include <omp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/f32_compute.h"
#include "kernels/nn.h"

namespace dl::cpu {

// The process-wide oneDNN engine and stream (defined in conv.cpp).
dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// ---- our kernels ---------------------------------------------------------------------------
// One (n, c) plane per work item: every output element is written by one thread in a fixed
// order, so results are thread-count independent (backward scatters within its own plane).

// Windows of every output index along one axis, PyTorch's rules (aten/src/ATen/native/Pool.h):
// [start, end) clipped to the input, and `span` = the window clipped to [-pad, size + pad)
// (the divisor of count_include_pad). Computed once per call, outside the plane loops.
struct Windows {
  std::vector<int64_t> start, end, span;
};
Windows windows(int64_t out, int64_t stride, int64_t pad, int64_t k, int64_t size) {
  Windows w;
  w.start.resize(out);
  w.end.resize(out);
  w.span.resize(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t s = o * stride - pad;
    int64_t e = std::min(s + k, size + pad);
    w.span[o] = e - s;
    w.start[o] = std::max<int64_t>(s, 0);
    w.end[o] = std::min(e, size);
  }
  return w;
}

// Plain copies of the shape (locals, so stores through the data pointers cannot alias them).
struct Dims {
  int64_t planes, h, w, oh, ow;
  explicit Dims(const Pool2dShape& s) : planes(s.n * s.c), h(s.h), w(s.w), oh(s.oh), ow(s.ow) {}
};

// Output columns [lo, hi) whose windows lie fully inside the input (no clipping).
std::pair<int64_t, int64_t> interior(const Windows& w, int64_t k) {
  int64_t lo = 0, hi = static_cast<int64_t>(w.start.size());
  while (lo < hi && w.end[lo] - w.start[lo] != k) ++lo;
  while (hi > lo && w.end[hi - 1] - w.start[hi - 1] != k) --hi;
  return {lo, hi};
}

// One window element across a run of output columns: best[i] = max(best[i], r[i * sw]) and
// its index. Selects are written as bit masks: GCC turns `take ? v : b` into a branch, which
// random data mispredicts half the time (measured 5-7x slower).
template <class T> struct SameSizeUInt;
template <> struct SameSizeUInt<float> { using type = uint32_t; };
template <> struct SameSizeUInt<double> { using type = uint64_t; };

// SW > 0: the stride as a compile-time constant (lets the compiler vectorize the usual 1 and 2).
template <class T, int SW>
inline void max_row(const T* __restrict r, int64_t n, int64_t sw_rt, int32_t off, T* __restrict best,
                    int32_t* __restrict bi) {
  using U = typename SameSizeUInt<T>::type;
  const int64_t sw = SW > 0 ? SW : sw_rt;
  for (int64_t i = 0; i < n; ++i) {
    const T v = r[i * sw];
    const T b = best[i];
    const bool take = (v > b) | (v != v);  // first maximum wins; a NaN wins (PyTorch)
    const U um = U(0) - U(take);
    const U bu = std::bit_cast<U>(b), vu = std::bit_cast<U>(v);
    best[i] = std::bit_cast<T>(U(bu ^ ((bu ^ vu) & um)));
    const int32_t cur = bi[i];
    bi[i] = cur ^ ((cur ^ static_cast<int32_t>(off + i * sw)) & -static_cast<int32_t>(take));
  }
}

// The 2x2, stride-2 window (LeNet's, VGG's, the recipes' pools) over n interior output columns
// of rows r0 and r1 = r0 + w: each row's pair first, then the rows. Equal to visiting the four
// elements row-major with `v > best || v != v` (max_row's rule): the first maximum of a row
// beats an equal one in the next row, and the last NaN wins. `off0`: r0's offset in its plane.
template <class T>
inline void max_2x2_row(const T* __restrict r0, const T* __restrict r1, int64_t n, int32_t off0, int32_t w,
                        T* __restrict best, int32_t* __restrict bi) {
  using U = typename SameSizeUInt<T>::type;
  auto pick = [](T keep, T v, bool take) {
    const U um = U(0) - U(take);
    const U ku = std::bit_cast<U>(keep), vu = std::bit_cast<U>(v);
    return std::bit_cast<T>(U(ku ^ ((ku ^ vu) & um)));
  };
  for (int64_t i = 0; i < n; ++i) {
    const T a = r0[2 * i], b = r0[2 * i + 1], c = r1[2 * i], d = r1[2 * i + 1];
    const bool tb = (b > a) | (b != b), td = (d > c) | (d != d);
    const T h0 = pick(a, b, tb), h1 = pick(c, d, td);
    const bool t1 = (h1 > h0) | (h1 != h1);
    best[i] = pick(h0, h1, t1);
    const int32_t i0 = off0 + static_cast<int32_t>(2 * i) + static_cast<int32_t>(tb);
    const int32_t i1 = off0 + w + static_cast<int32_t>(2 * i) + static_cast<int32_t>(td);
    bi[i] = i0 ^ ((i0 ^ i1) & -static_cast<int32_t>(t1));
  }
}

// Max pooling visits each window row-major and keeps the first maximum (a NaN wins and
// propagates), like PyTorch; `idx` (may be null) gets the argmax's offset in its input plane.
// Interior columns are processed one window element at a time across the output row
// (max_row), or a 2x2 stride-2 window at a time (max_2x2_row); clipped edge windows one by one.
template <class T>
void max_pool_fwd_ref(const Pool2dShape& s, const T* x, T* y, int32_t* idx) {
  const Dims d(s);
  const int64_t kw = s.kw, sw = s.sw, pw = s.pw;
  const Windows wy = windows(d.oh, s.sh, s.ph, s.kh, d.h), wx = windows(d.ow, sw, pw, kw, d.w);
  // Plain variables, not a structured binding: clang 14 (the fuzz build) cannot capture those.
  const std::pair<int64_t, int64_t> cols = interior(wx, kw);
  const int64_t lo = cols.first, hi = cols.second;
  const bool k2s2 = s.kh == 2 && kw == 2 && s.sh == 2 && sw == 2 && s.ph == 0 && pw == 0;
  parallel_for(d.planes, std::max<int64_t>(1, 4096 / (d.h * d.w)), [&](int64_t p0, int64_t p1) {
    std::vector<int32_t> idx_row(idx ? 0 : d.ow);
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * d.h * d.w;
      for (int64_t oy = 0; oy < d.oh; ++oy) {
        const int64_t y0 = wy.start[oy], y1 = wy.end[oy];
        T* best = y + (p * d.oh + oy) * d.ow;  // [ow]
        int32_t* bi = idx ? idx + (p * d.oh + oy) * d.ow : idx_row.data();
        auto generic = [&](int64_t ox) {
          const int64_t x0 = wx.start[ox], x1 = wx.end[ox];
          T b = xp[y0 * d.w + x0];
          int32_t i = static_cast<int32_t>(y0 * d.w + x0);
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) {
              const T v = xp[iy * d.w + ix];
              const bool take = v > b || v != v;
              b = take ? v : b;
              i = take ? static_cast<int32_t>(iy * d.w + ix) : i;
            }
          best[ox] = b;
          bi[ox] = i;
        };
        for (int64_t ox = 0; ox < lo; ++ox) generic(ox);
        for (int64_t ox = hi; ox < d.ow; ++ox) generic(ox);
        if (lo >= hi) continue;
        if (k2s2 && y1 - y0 == 2) {
          const int32_t off = static_cast<int32_t>(y0 * d.w + lo * 2);  // pw == 0
          max_2x2_row<T>(xp + off, xp + off + d.w, hi - lo, off, static_cast<int32_t>(d.w), best + lo, bi + lo);
          continue;
        }
        {
          const T* r = xp + y0 * d.w - pw;
          for (int64_t ox = lo; ox < hi; ++ox) {
            best[ox] = r[ox * sw];
            bi[ox] = static_cast<int32_t>(y0 * d.w - pw + ox * sw);
          }
        }
        for (int64_t iy = y0; iy < y1; ++iy)
          for (int64_t kx = 0; kx < kw; ++kx) {
            const int32_t off = static_cast<int32_t>(iy * d.w + kx - pw + lo * sw);  // input index of column lo
            if (sw == 2) max_row<T, 2>(xp + off, hi - lo, sw, off, best + lo, bi + lo);
            else if (sw == 1) max_row<T, 1>(xp + off, hi - lo, sw, off, best + lo, bi + lo);
            else max_row<T, 0>(xp + off, hi - lo, sw, off, best + lo, bi + lo);
          }
      }
    }
  });
}

template <class T>
void max_pool_bwd_ref(const Pool2dShape& s, const T* gy, const int32_t* idx, T* gx) {
  const Dims d(s);
  parallel_for(d.planes, std::max<int64_t>(1, 4096 / (d.h * d.w)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* gxp = gx + p * d.h * d.w;
      std::fill(gxp, gxp + d.h * d.w, T(0));
      const T* gyp = gy + p * d.oh * d.ow;
      const int32_t* ip = idx + p * d.oh * d.ow;
      for (int64_t i = 0; i < d.oh * d.ow; ++i) gxp[ip[i]] += gyp[i];
    }
  });
}

// Divisors of every output position, PyTorch's rule for count_include_pad.
std::vector<double> avg_divisors(const Pool2dShape& s, const Windows& wy, const Windows& wx) {
  std::vector<double> div(static_cast<size_t>(s.oh * s.ow));
  for (int64_t oy = 0; oy < s.oh; ++oy)
    for (int64_t ox = 0; ox < s.ow; ++ox) {
      int64_t n = s.kind == PoolKind::AvgIncludePad
                      ? wy.span[oy] * wx.span[ox]
                      : (wy.end[oy] - wy.start[oy]) * (wx.end[ox] - wx.start[ox]);
      div[oy * s.ow + ox] = static_cast<double>(std::max<int64_t>(n, 1));
    }
  return div;
}

template <class T>
void avg_pool_fwd_ref(const Pool2dShape& s, const T* x, T* y) {
  const Dims d(s);
  const Windows wy = windows(d.oh, s.sh, s.ph, s.kh, d.h), wx = windows(d.ow, s.sw, s.pw, s.kw, d.w);
  const std::vector<double> div = avg_divisors(s, wy, wx);
  parallel_for(d.planes, std::max<int64_t>(1, 4096 / (d.h * d.w)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * d.h * d.w;
      T* yp = y + p * d.oh * d.ow;
      for (int64_t oy = 0; oy < d.oh; ++oy) {
        const int64_t y0 = wy.start[oy], y1 = wy.end[oy];
        for (int64_t ox = 0; ox < d.ow; ++ox) {
          const int64_t x0 = wx.start[ox], x1 = wx.end[ox];
          double acc = 0.0;
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) acc += static_cast<double>(xp[iy * d.w + ix]);
          yp[oy * d.ow + ox] = static_cast<T>(acc / div[oy * d.ow + ox]);
        }
      }
    }
  });
}

template <class T>
void avg_pool_bwd_ref(const Pool2dShape& s, const T* gy, T* gx) {
  const Dims d(s);
  const Windows wy = windows(d.oh, s.sh, s.ph, s.kh, d.h), wx = windows(d.ow, s.sw, s.pw, s.kw, d.w);
  const std::vector<double> div = avg_divisors(s, wy, wx);
  parallel_for(d.planes, std::max<int64_t>(1, 4096 / (d.h * d.w)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* gxp = gx + p * d.h * d.w;
      std::fill(gxp, gxp + d.h * d.w, T(0));
      const T* gyp = gy + p * d.oh * d.ow;
      for (int64_t oy = 0; oy < d.oh; ++oy) {
        const int64_t y0 = wy.start[oy], y1 = wy.end[oy];
        for (int64_t ox = 0; ox < d.ow; ++ox) {
          const int64_t x0 = wx.start[ox], x1 = wx.end[ox];
          const T g = static_cast<T>(static_cast<double>(gyp[oy * d.ow + ox]) / div[oy * d.ow + ox]);
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) gxp[iy * d.w + ix] += g;
        }
      }
    }
  });
}

// Adaptive windows: [floor(i * in / out), ceil((i + 1) * in / out)).
inline int64_t ada_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
inline int64_t ada_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

template <class T>
void adaptive_avg_fwd_ref(const Pool2dShape& s, const T* x, T* y) {
  parallel_for(s.n * s.c, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * s.h * s.w;
      T* yp = y + p * s.oh * s.ow;
      for (int64_t oy = 0; oy < s.oh; ++oy) {
        const int64_t y0 = ada_start(oy, s.h, s.oh), y1 = ada_end(oy, s.h, s.oh);
        for (int64_t ox = 0; ox < s.ow; ++ox) {
          const int64_t x0 = ada_start(ox, s.w, s.ow), x1 = ada_end(ox, s.w, s.ow);
          double acc = 0.0;
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) acc += static_cast<double>(xp[iy * s.w + ix]);
          yp[oy * s.ow + ox] = static_cast<T>(acc / static_cast<double>((y1 - y0) * (x1 - x0)));
        }
      }
    }
  });
}

template <class T>
void adaptive_avg_bwd_ref(const Pool2dShape& s, const T* gy, T* gx) {
  parallel_for(s.n * s.c, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* gxp = gx + p * s.h * s.w;
      std::fill(gxp, gxp + s.h * s.w, T(0));
      const T* gyp = gy + p * s.oh * s.ow;
      for (int64_t oy = 0; oy < s.oh; ++oy) {
        const int64_t y0 = ada_start(oy, s.h, s.oh), y1 = ada_end(oy, s.h, s.oh);
        for (int64_t ox = 0; ox < s.ow; ++ox) {
          const int64_t x0 = ada_start(ox, s.w, s.ow), x1 = ada_end(ox, s.w, s.ow);
          T g = static_cast<T>(static_cast<double>(gyp[oy * s.ow + ox]) /
                               static_cast<double>((y1 - y0) * (x1 - x0)));
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) gxp[iy * s.w + ix] += g;
        }
      }
    }
  });
}

// ---- oneDNN f32 path --------------------------------------------------------------------------
// Used for f32 max-pooling inference and f32 average pooling (forward and backward). Max
// pooling in training uses our kernels above: on plain NCHW, oneDNN's forward_training (with
// its workspace) and backward took 0.6 + 0.7 ms for LeNet's first pool (64x6x28x28, 1 thread)
// against 0.3 + 0.15 ms for ours, while its inference forward (0.14 ms) beats ours.
//
// oneDNN checks (h - kh + pad_l + pad_r) / sh + 1 == oh; PyTorch's ceil_mode windows may reach
// past h + ph, so the right padding is what the last window needs (never below 0).
int64_t right_pad(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return std::max<int64_t>(0, (out - 1) * stride + k - in - pad);
}

// oneDNN divides include-padding averages by kh * kw; PyTorch by the window clipped to
// [-p, size + p). They agree unless ceil_mode pushes the right padding beyond p.
bool dnnl_expresses(const Pool2dShape& s) {
  if (s.kind != PoolKind::AvgIncludePad) return true;
  return right_pad(s.h, s.oh, s.kh, s.sh, s.ph) <= s.ph &&
         right_pad(s.w, s.ow, s.kw, s.sw, s.pw) <= s.pw;
}

dnnl::algorithm pool_alg(PoolKind k) {
  switch (k) {
    case PoolKind::Max: return dnnl::algorithm::pooling_max;
    case PoolKind::AvgIncludePad: return dnnl::algorithm::pooling_avg_include_padding;
    case PoolKind::AvgExcludePad: return dnnl::algorithm::pooling_avg_exclude_padding;
  }
  return dnnl::algorithm::pooling_max;
}

enum class PoolPass : int64_t { Forward, Backward };
using PoolKey = std::array<int64_t, 15>;

struct PoolEntry {
  bool ok = false;  // false: oneDNN could not build it; use our kernels
  dnnl::memory::desc src, dst;
  dnnl::primitive prim;
};

std::mutex g_pool_mu;
std::map<PoolKey, std::shared_ptr<PoolEntry>> g_pool_cache;

std::shared_ptr<PoolEntry> make_pool_entry(const Pool2dShape& s, PoolPass pass) {
  auto e = std::make_shared<PoolEntry>();
  try {
    auto& eng = dnnl_engine();
    e->src = dnnl::memory::desc({s.n, s.c, s.h, s.w}, dt::f32, tag::nchw);
    e->dst = dnnl::memory::desc({s.n, s.c, s.oh, s.ow}, dt::f32, tag::nchw);
    dnnl::memory::dims strides{s.sh, s.sw}, kernel{s.kh, s.kw}, pad_l{s.ph, s.pw};
    dnnl::memory::dims pad_r{right_pad(s.h, s.oh, s.kh, s.sh, s.ph), right_pad(s.w, s.ow, s.kw, s.sw, s.pw)};
    auto alg = pool_alg(s.kind);
    if (pass == PoolPass::Forward) {
      dnnl::pooling_forward::primitive_desc fwd(
          dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference, alg, e->src, e->dst, strides,
                                      kernel, pad_l, pad_r),
          eng);
      e->prim = dnnl::pooling_forward(fwd);
    } else {
      dnnl::pooling_forward::primitive_desc hint(
          dnnl::pooling_forward::desc(dnnl::prop_kind::forward_training, alg, e->src, e->dst, strides,
                                      kernel, pad_l, pad_r),
          eng);
      dnnl::pooling_backward::primitive_desc bwd(
          dnnl::pooling_backward::desc(alg, e->src, e->dst, strides, kernel, pad_l, pad_r), eng, hint);
      if (bwd.workspace_desc().get_size() != 0) throw dnnl::error(dnnl_unimplemented, "workspace");
      e->prim = dnnl::pooling_backward(bwd);
    }
    e->ok = true;
  } catch (const dnnl::error&) {
    e->ok = false;
  }
  return e;
}

std::shared_ptr<PoolEntry> pool_entry(const Pool2dShape& s, PoolPass pass) {
  PoolKey key{static_cast<int64_t>(pass), static_cast<int64_t>(s.kind), omp_get_max_threads(),
              s.n, s.c, s.h, s.w, s.oh, s.ow, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw};
  std::lock_guard<std::mutex> lock(g_pool_mu);
  auto it = g_pool_cache.find(key);
  if (it != g_pool_cache.end()) return it->second;
  auto e = make_pool_entry(s, pass);
  g_pool_cache.emplace(key, e);
  return e;
}

// Runs a cached oneDNN pooling primitive; false when there is none for this shape.
bool run_dnnl_pool(const Pool2dShape& s, PoolPass pass, int src_arg, void* src, int dst_arg, void* dst) {
  auto e = pool_entry(s, pass);
  if (!e->ok) return false;
  auto& eng = dnnl_engine();
  e->prim.execute(dnnl_stream(), {{src_arg, dnnl::memory(pass == PoolPass::Forward ? e->src : e->dst, eng, src)},
                                  {dst_arg, dnnl::memory(pass == PoolPass::Forward ? e->dst : e->src, eng, dst)}});
  dnnl_stream().wait();
  return true;
}

// ---- stubs -----------------------------------------------------------------------------------
// Max-pooling workspace: a U8 tensor holding int32 [n, c, oh, ow], the argmax's offset within
// its input plane (int32 halves the index traffic; there is no i32 dtype).
void cpu_pool2d_fwd(const Pool2dShape& s, const Tensor& x, Tensor& y, Tensor* workspace) {
  const bool is_max = s.kind == PoolKind::Max;
  const bool use_dnnl = x.dtype() == DType::F32 && dnnl_expresses(s) && !(is_max && workspace);
  if (use_dnnl && run_dnnl_pool(s, PoolPass::Forward, DNNL_ARG_SRC, x.raw_data(), DNNL_ARG_DST, y.raw_data()))
    return;
  if (is_max && s.h * s.w > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("max_pool2d: input planes above 2^31 elements are not supported");
  DL_DISPATCH_FLOAT(x.dtype(), "pool2d", [&] {
    if (is_max) {
      int32_t* idx = nullptr;
      if (workspace) {  // int32 plane offsets stored in a U8 tensor (there is no i32 dtype)
        *workspace = empty({y.numel() * 4}, TensorOptions(DType::U8, x.device()));
        idx = static_cast<int32_t*>(workspace->raw_data());
      }
      max_pool_fwd_ref<scalar_t>(s, x.data<scalar_t>(), y.data<scalar_t>(), idx);
    } else {
      avg_pool_fwd_ref<scalar_t>(s, x.data<scalar_t>(), y.data<scalar_t>());
    }
  });
}

void cpu_pool2d_bwd(const Pool2dShape& s, const Tensor& gy, const Tensor& workspace, Tensor& gx) {
  const bool is_max = s.kind == PoolKind::Max;
  if (!is_max && gy.dtype() == DType::F32 && dnnl_expresses(s) &&
      run_dnnl_pool(s, PoolPass::Backward, DNNL_ARG_DIFF_DST, gy.raw_data(), DNNL_ARG_DIFF_SRC, gx.raw_data()))
    return;
  DL_DISPATCH_FLOAT(gy.dtype(), "pool2d backward", [&] {
    if (is_max)
      max_pool_bwd_ref<scalar_t>(s, gy.data<scalar_t>(), static_cast<const int32_t*>(workspace.raw_data()),
                                 gx.data<scalar_t>());
    else
      avg_pool_bwd_ref<scalar_t>(s, gy.data<scalar_t>(), gx.data<scalar_t>());
  });
}

void cpu_adaptive_avg_pool2d_fwd(const Pool2dShape& s, const Tensor& x, Tensor& y) {
  DL_DISPATCH_FLOAT(x.dtype(), "adaptive_avg_pool2d", [&] {
    adaptive_avg_fwd_ref<scalar_t>(s, x.data<scalar_t>(), y.data<scalar_t>());
  });
}

void cpu_adaptive_avg_pool2d_bwd(const Pool2dShape& s, const Tensor& gy, Tensor& gx) {
  DL_DISPATCH_FLOAT(gy.dtype(), "adaptive_avg_pool2d backward", [&] {
    adaptive_avg_bwd_ref<scalar_t>(s, gy.data<scalar_t>(), gx.data<scalar_t>());
  });
}

}  // namespace

DL_REGISTER_KERNEL(pool2d_fwd_stub, CPU, f32_compute<cpu_pool2d_fwd>);
DL_REGISTER_KERNEL(pool2d_bwd_stub, CPU, f32_compute<cpu_pool2d_bwd>);
DL_REGISTER_KERNEL(adaptive_avg_pool2d_fwd_stub, CPU, f32_compute<cpu_adaptive_avg_pool2d_fwd>);
DL_REGISTER_KERNEL(adaptive_avg_pool2d_bwd_stub, CPU, f32_compute<cpu_adaptive_avg_pool2d_bwd>);

}  // namespace dl::cpu
