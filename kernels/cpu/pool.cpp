// CPU pooling: oneDNN primitives for f32 max / average pooling (cached by shape), reference
// loops with PyTorch's exact semantics for f64, for the cases oneDNN cannot express, and for
// adaptive average pooling.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>

#include "kernels/cpu/loop.h"
#include "kernels/nn.h"

namespace dl::cpu {

// The process-wide oneDNN engine and stream (defined in conv.cpp).
dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// ---- reference kernels ----------------------------------------------------------------------
// One (n, c) plane per work item: every output element is written by one thread in a fixed
// order, so results are thread-count independent (backward scatters within its own plane).

// Window of output index `o` along one axis, PyTorch's rules (aten/src/ATen/native/Pool.h):
// [start, end) clipped to the input, and `span` = the window clipped to [-pad, size + pad)
// (the divisor of count_include_pad).
struct Window {
  int64_t start, end, span;
};
inline Window window(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t size) {
  int64_t s = o * stride - pad;
  int64_t e = std::min(s + k, size + pad);
  Window w{std::max<int64_t>(s, 0), std::min(e, size), e - s};
  return w;
}

template <class T>
void max_pool_fwd_ref(const Pool2dShape& s, const T* x, T* y, int64_t* idx) {
  parallel_for(s.n * s.c, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * s.h * s.w;
      T* yp = y + p * s.oh * s.ow;
      int64_t* ip = idx ? idx + p * s.oh * s.ow : nullptr;
      for (int64_t oy = 0; oy < s.oh; ++oy) {
        Window wy = window(oy, s.sh, s.ph, s.kh, s.h);
        for (int64_t ox = 0; ox < s.ow; ++ox) {
          Window wx = window(ox, s.sw, s.pw, s.kw, s.w);
          T best = -std::numeric_limits<T>::infinity();
          int64_t best_i = wy.start * s.w + wx.start;
          for (int64_t iy = wy.start; iy < wy.end; ++iy)
            for (int64_t ix = wx.start; ix < wx.end; ++ix) {
              T v = xp[iy * s.w + ix];
              if (v > best || std::isnan(v)) {  // first maximum wins; NaN propagates (torch)
                best = v;
                best_i = iy * s.w + ix;
              }
            }
          yp[oy * s.ow + ox] = best;
          if (ip) ip[oy * s.ow + ox] = best_i;
        }
      }
    }
  });
}

template <class T>
void max_pool_bwd_ref(const Pool2dShape& s, const T* gy, const int64_t* idx, T* gx) {
  parallel_for(s.n * s.c, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* gxp = gx + p * s.h * s.w;
      std::fill(gxp, gxp + s.h * s.w, T(0));
      const T* gyp = gy + p * s.oh * s.ow;
      const int64_t* ip = idx + p * s.oh * s.ow;
      for (int64_t i = 0; i < s.oh * s.ow; ++i) gxp[ip[i]] += gyp[i];
    }
  });
}

template <class T>
void avg_pool_fwd_ref(const Pool2dShape& s, const T* x, T* y) {
  const bool include_pad = s.kind == PoolKind::AvgIncludePad;
  parallel_for(s.n * s.c, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * s.h * s.w;
      T* yp = y + p * s.oh * s.ow;
      for (int64_t oy = 0; oy < s.oh; ++oy) {
        Window wy = window(oy, s.sh, s.ph, s.kh, s.h);
        for (int64_t ox = 0; ox < s.ow; ++ox) {
          Window wx = window(ox, s.sw, s.pw, s.kw, s.w);
          double acc = 0.0;
          for (int64_t iy = wy.start; iy < wy.end; ++iy)
            for (int64_t ix = wx.start; ix < wx.end; ++ix) acc += static_cast<double>(xp[iy * s.w + ix]);
          int64_t div = include_pad ? wy.span * wx.span : (wy.end - wy.start) * (wx.end - wx.start);
          yp[oy * s.ow + ox] = static_cast<T>(div > 0 ? acc / static_cast<double>(div) : 0.0);
        }
      }
    }
  });
}

template <class T>
void avg_pool_bwd_ref(const Pool2dShape& s, const T* gy, T* gx) {
  const bool include_pad = s.kind == PoolKind::AvgIncludePad;
  parallel_for(s.n * s.c, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* gxp = gx + p * s.h * s.w;
      std::fill(gxp, gxp + s.h * s.w, T(0));
      const T* gyp = gy + p * s.oh * s.ow;
      for (int64_t oy = 0; oy < s.oh; ++oy) {
        Window wy = window(oy, s.sh, s.ph, s.kh, s.h);
        for (int64_t ox = 0; ox < s.ow; ++ox) {
          Window wx = window(ox, s.sw, s.pw, s.kw, s.w);
          int64_t div = include_pad ? wy.span * wx.span : (wy.end - wy.start) * (wx.end - wx.start);
          if (div <= 0) continue;
          T g = static_cast<T>(static_cast<double>(gyp[oy * s.ow + ox]) / static_cast<double>(div));
          for (int64_t iy = wy.start; iy < wy.end; ++iy)
            for (int64_t ix = wx.start; ix < wx.end; ++ix) gxp[iy * s.w + ix] += g;
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

enum class PoolPass : int64_t { Inference, Training, Backward };
using PoolKey = std::array<int64_t, 16>;

struct PoolEntry {
  bool ok = false;
  dnnl::memory::desc src, dst, ws;  // ws: zero desc when none
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
    auto prop = pass == PoolPass::Inference ? dnnl::prop_kind::forward_inference
                                            : dnnl::prop_kind::forward_training;
    dnnl::pooling_forward::primitive_desc fwd(
        dnnl::pooling_forward::desc(prop, alg, e->src, e->dst, strides, kernel, pad_l, pad_r), eng);
    if (pass == PoolPass::Backward) {
      dnnl::pooling_backward::primitive_desc bwd(
          dnnl::pooling_backward::desc(alg, e->src, e->dst, strides, kernel, pad_l, pad_r), eng, fwd);
      e->ws = bwd.workspace_desc();
      e->prim = dnnl::pooling_backward(bwd);
    } else {
      e->ws = fwd.workspace_desc();
      e->prim = dnnl::pooling_forward(fwd);
    }
    e->ok = true;
  } catch (const dnnl::error&) {
    e->ok = false;
  }
  return e;
}

std::shared_ptr<PoolEntry> pool_entry(const Pool2dShape& s, PoolPass pass) {
  PoolKey key{static_cast<int64_t>(pass), static_cast<int64_t>(s.kind), omp_get_max_threads(),
              s.n, s.c, s.h, s.w, s.oh, s.ow, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, 0};
  std::lock_guard<std::mutex> lock(g_pool_mu);
  auto it = g_pool_cache.find(key);
  if (it != g_pool_cache.end()) return it->second;
  auto e = make_pool_entry(s, pass);
  g_pool_cache.emplace(key, e);
  return e;
}

// Workspace dtypes: U8 = oneDNN's workspace bytes, I64 = reference argmax (plane offsets).
void cpu_pool2d_fwd(const Pool2dShape& s, const Tensor& x, Tensor& y, Tensor* workspace) {
  const bool is_max = s.kind == PoolKind::Max;
  static bool force_ref = getenv("NNOPS_POOL_REF") != nullptr;  // TEMP benchmark switch
  if (x.dtype() == DType::F32 && dnnl_expresses(s) && !force_ref) {
    auto e = pool_entry(s, workspace ? PoolPass::Training : PoolPass::Inference);
    if (e->ok) {
            std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl::memory(e->src, dnnl_engine(), x.raw_data())},
                                                 {DNNL_ARG_DST, dnnl::memory(e->dst, dnnl_engine(), y.raw_data())}};
      if (workspace && is_max) {
        *workspace = empty({static_cast<int64_t>(e->ws.get_size())}, TensorOptions(DType::U8, x.device()));
        args.emplace(DNNL_ARG_WORKSPACE, dnnl::memory(e->ws, dnnl_engine(), workspace->raw_data()));
      }
      e->prim.execute(dnnl_stream(), args);
      dnnl_stream().wait();
      return;
    }
  }
  DL_DISPATCH_FLOAT(x.dtype(), "pool2d", [&] {
    if (is_max) {
      int64_t* idx = nullptr;
      if (workspace) {
        *workspace = empty(y.shape(), TensorOptions(DType::I64, x.device()));
        idx = workspace->data<int64_t>();
      }
      max_pool_fwd_ref<scalar_t>(s, x.data<scalar_t>(), y.data<scalar_t>(), idx);
    } else {
      avg_pool_fwd_ref<scalar_t>(s, x.data<scalar_t>(), y.data<scalar_t>());
    }
  });
}

void cpu_pool2d_bwd(const Pool2dShape& s, const Tensor& gy, const Tensor& workspace, Tensor& gx) {
  const bool is_max = s.kind == PoolKind::Max;
  const bool dnnl_ws = is_max && workspace.defined() && workspace.dtype() == DType::U8;
  if (gy.dtype() == DType::F32 && dnnl_expresses(s) && (!is_max || dnnl_ws)) {
    auto e = pool_entry(s, PoolPass::Backward);
    if (e->ok) {
            std::unordered_map<int, dnnl::memory> args{
          {DNNL_ARG_DIFF_DST, dnnl::memory(e->dst, dnnl_engine(), gy.raw_data())},
          {DNNL_ARG_DIFF_SRC, dnnl::memory(e->src, dnnl_engine(), gx.raw_data())}};
      if (is_max) args.emplace(DNNL_ARG_WORKSPACE, dnnl::memory(e->ws, dnnl_engine(), workspace.raw_data()));
      e->prim.execute(dnnl_stream(), args);
      dnnl_stream().wait();
      return;
    }
    if (is_max) throw std::logic_error("max_pool2d backward: oneDNN workspace without a primitive");
  }
  DL_DISPATCH_FLOAT(gy.dtype(), "pool2d backward", [&] {
    if (is_max)
      max_pool_bwd_ref<scalar_t>(s, gy.data<scalar_t>(), workspace.data<int64_t>(), gx.data<scalar_t>());
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

DL_REGISTER_KERNEL(pool2d_fwd_stub, CPU, cpu_pool2d_fwd);
DL_REGISTER_KERNEL(pool2d_bwd_stub, CPU, cpu_pool2d_bwd);
DL_REGISTER_KERNEL(adaptive_avg_pool2d_fwd_stub, CPU, cpu_adaptive_avg_pool2d_fwd);
DL_REGISTER_KERNEL(adaptive_avg_pool2d_bwd_stub, CPU, cpu_adaptive_avg_pool2d_bwd);

}  // namespace dl::cpu
