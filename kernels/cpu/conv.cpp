// CPU convolution: oneDNN primitives for f32 (cached by shape), reference loops for f64 and as
// the test oracle. Also owns the process-wide oneDNN engine and stream (dnnl_engine(), dnnl_stream()).
#include <omp.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/f32_compute.h"
#include "kernels/nn.h"

namespace dl::cpu {

// One oneDNN CPU engine and stream for the process (declared again in pool.cpp).
dnnl::engine& dnnl_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}
dnnl::stream& dnnl_stream() {
  static dnnl::stream st(dnnl_engine());
  return st;
}

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// ---- reference kernels (f32/f64; accumulate in double) -----------------------------------
// Each output element is computed by one thread in a fixed order: thread-count independent.

template <class T>
void conv_fwd_ref(const Conv2dShape& s, const T* x, const T* wt, const T* bias, T* y) {
  const int64_t cpg = s.c / s.groups, opg = s.o / s.groups;
  parallel_for(s.n * s.o, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t no = i0; no < i1; ++no) {
      const int64_t n = no / s.o, o = no % s.o, g = o / opg;
      const T* xg = x + (n * s.c + g * cpg) * s.h * s.w;   // [cpg, h, w]
      const T* wo = wt + o * cpg * s.kh * s.kw;           // [cpg, kh, kw]
      T* yo = y + no * s.oh * s.ow;                        // [oh, ow]
      for (int64_t oy = 0; oy < s.oh; ++oy)
        for (int64_t ox = 0; ox < s.ow; ++ox) {
          double acc = bias ? static_cast<double>(bias[o]) : 0.0;
          for (int64_t ci = 0; ci < cpg; ++ci)
            for (int64_t ky = 0; ky < s.kh; ++ky) {
              const int64_t iy = oy * s.sh - s.ph + ky * s.dh;
              if (iy < 0 || iy >= s.h) continue;
              for (int64_t kx = 0; kx < s.kw; ++kx) {
                const int64_t ix = ox * s.sw - s.pw + kx * s.dw;
                if (ix < 0 || ix >= s.w) continue;
                acc += static_cast<double>(xg[(ci * s.h + iy) * s.w + ix]) *
                       static_cast<double>(wo[(ci * s.kh + ky) * s.kw + kx]);
              }
            }
          yo[oy * s.ow + ox] = static_cast<T>(acc);
        }
    }
  });
}

template <class T>
void conv_bwd_data_ref(const Conv2dShape& s, const T* gy, const T* wt, T* gx) {
  const int64_t cpg = s.c / s.groups, opg = s.o / s.groups;
  parallel_for(s.n * s.c, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t nc = i0; nc < i1; ++nc) {
      const int64_t n = nc / s.c, c = nc % s.c, g = c / cpg, ci = c % cpg;
      T* gxc = gx + nc * s.h * s.w;
      for (int64_t iy = 0; iy < s.h; ++iy)
        for (int64_t ix = 0; ix < s.w; ++ix) {
          double acc = 0.0;
          for (int64_t oo = 0; oo < opg; ++oo) {
            const int64_t o = g * opg + oo;
            const T* gyo = gy + (n * s.o + o) * s.oh * s.ow;
            const T* wo = wt + (o * cpg + ci) * s.kh * s.kw;
            for (int64_t ky = 0; ky < s.kh; ++ky) {
              const int64_t ty = iy + s.ph - ky * s.dh;  // = oy * sh
              if (ty < 0 || ty % s.sh) continue;
              const int64_t oy = ty / s.sh;
              if (oy >= s.oh) continue;
              for (int64_t kx = 0; kx < s.kw; ++kx) {
                const int64_t tx = ix + s.pw - kx * s.dw;
                if (tx < 0 || tx % s.sw) continue;
                const int64_t ox = tx / s.sw;
                if (ox >= s.ow) continue;
                acc += static_cast<double>(gyo[oy * s.ow + ox]) *
                       static_cast<double>(wo[ky * s.kw + kx]);
              }
            }
          }
          gxc[iy * s.w + ix] = static_cast<T>(acc);
        }
    }
  });
}

template <class T>
void conv_bwd_weights_ref(const Conv2dShape& s, const T* x, const T* gy, T* gw, T* gb) {
  const int64_t cpg = s.c / s.groups, opg = s.o / s.groups;
  parallel_for(s.o * cpg, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t oc = i0; oc < i1; ++oc) {
      const int64_t o = oc / cpg, ci = oc % cpg, c = (o / opg) * cpg + ci;
      for (int64_t ky = 0; ky < s.kh; ++ky)
        for (int64_t kx = 0; kx < s.kw; ++kx) {
          double acc = 0.0;
          for (int64_t n = 0; n < s.n; ++n) {
            const T* xc = x + (n * s.c + c) * s.h * s.w;
            const T* gyo = gy + (n * s.o + o) * s.oh * s.ow;
            for (int64_t oy = 0; oy < s.oh; ++oy) {
              const int64_t iy = oy * s.sh - s.ph + ky * s.dh;
              if (iy < 0 || iy >= s.h) continue;
              for (int64_t ox = 0; ox < s.ow; ++ox) {
                const int64_t ix = ox * s.sw - s.pw + kx * s.dw;
                if (ix < 0 || ix >= s.w) continue;
                acc += static_cast<double>(xc[iy * s.w + ix]) * static_cast<double>(gyo[oy * s.ow + ox]);
              }
            }
          }
          gw[(oc * s.kh + ky) * s.kw + kx] = static_cast<T>(acc);
        }
    }
  });
  if (gb) {
    parallel_for(s.o, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t o = i0; o < i1; ++o) {
        double acc = 0.0;
        for (int64_t n = 0; n < s.n; ++n) {
          const T* gyo = gy + (n * s.o + o) * s.oh * s.ow;
          for (int64_t i = 0; i < s.oh * s.ow; ++i) acc += static_cast<double>(gyo[i]);
        }
        gb[o] = static_cast<T>(acc);
      }
    });
  }
}

// ---- oneDNN f32 path -----------------------------------------------------------------------
// Primitives are created once per (pass, shape, hyper-parameters, bias, thread count) and
// reused. oneDNN chooses the memory formats (`any`): its fast direct-convolution kernels want
// blocked activations (nChw16c) and weights, and on plain NCHW it falls back to im2col + gemm,
// measured 4-5x slower on LeNet's layers. Our tensors stay plain NCHW / (g)oihw, so each
// argument whose chosen format differs gets a cached reorder (a few microseconds for
// weights, a small fraction of the convolution for activations; the first layer keeps a
// plain source because oneDNN handles few input channels on nchw directly).

enum class ConvPass : int64_t { Fwd, BwdData, BwdWeights };

using ConvKey = std::array<int64_t, 19>;

ConvKey conv_key(const Conv2dShape& s, ConvPass pass, bool bias) {
  return {static_cast<int64_t>(pass), bias, omp_get_max_threads(), s.n, s.c, s.h, s.w, s.o,
          s.kh, s.kw, s.oh, s.ow, s.sh, s.sw, s.ph, s.pw, s.dh, s.dw, s.groups};
}

struct ConvDescs {
  dnnl::memory::desc src, wei, bias, dst;  // plain user layouts
  dnnl::memory::dims strides, dilates, pad_l, pad_r;
};

ConvDescs conv_descs(const Conv2dShape& s, bool bias) {
  ConvDescs d;
  d.src = {{s.n, s.c, s.h, s.w}, dt::f32, tag::nchw};
  d.dst = {{s.n, s.o, s.oh, s.ow}, dt::f32, tag::nchw};
  if (s.groups == 1)
    d.wei = {{s.o, s.c, s.kh, s.kw}, dt::f32, tag::oihw};
  else
    d.wei = {{s.groups, s.o / s.groups, s.c / s.groups, s.kh, s.kw}, dt::f32, tag::goihw};
  if (bias) d.bias = {{s.o}, dt::f32, tag::a};
  d.strides = {s.sh, s.sw};
  d.dilates = {s.dh - 1, s.dw - 1};  // oneDNN counts dilation from 0
  d.pad_l = {s.ph, s.pw};
  d.pad_r = {s.ph, s.pw};  // consistent with PyTorch's floor output size
  return d;
}

dnnl::memory::desc any_like(const dnnl::memory::desc& d) {
  return dnnl::memory::desc(d.dims(), dt::f32, tag::any);
}

// One primitive argument: the user's plain layout, the layout the primitive wants, and the
// reorder between them when they differ.
struct ConvArg {
  int arg = 0;
  bool output = false;
  dnnl::memory::desc user, impl;
  dnnl::reorder reorder;  // user -> impl for inputs, impl -> user for outputs
  bool same = true;
};

struct ConvEntry {
  bool ok = false;  // false: oneDNN could not build it; use the reference kernel
  dnnl::primitive prim;
  std::vector<ConvArg> args;  // in DNNL_ARG order of the stub's pointers
};

std::mutex g_conv_mu;
std::map<ConvKey, std::shared_ptr<ConvEntry>> g_conv_cache;

void add_arg(ConvEntry& e, int arg, bool output, const dnnl::memory::desc& user, const dnnl::memory::desc& impl) {
  ConvArg a;
  a.arg = arg;
  a.output = output;
  a.user = user;
  a.impl = impl;
  a.same = user == impl;
  if (!a.same) {
    auto& eng = dnnl_engine();
    a.reorder = output ? dnnl::reorder(dnnl::reorder::primitive_desc(eng, impl, eng, user))
                       : dnnl::reorder(dnnl::reorder::primitive_desc(eng, user, eng, impl));
  }
  e.args.push_back(std::move(a));
}

std::shared_ptr<ConvEntry> make_conv_entry(const Conv2dShape& s, ConvPass pass, bool bias) {
  auto e = std::make_shared<ConvEntry>();
  try {
    ConvDescs d = conv_descs(s, bias);
    auto& eng = dnnl_engine();
    auto src = any_like(d.src), wei = any_like(d.wei), dst = any_like(d.dst);
    auto fwd_desc = bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                           dnnl::algorithm::convolution_direct, src, wei,
                                                           d.bias, dst, d.strides, d.dilates, d.pad_l, d.pad_r)
                         : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                           dnnl::algorithm::convolution_direct, src, wei,
                                                           dst, d.strides, d.dilates, d.pad_l, d.pad_r);
    dnnl::convolution_forward::primitive_desc fwd(fwd_desc, eng);
    if (pass == ConvPass::Fwd) {
      e->prim = dnnl::convolution_forward(fwd);
      add_arg(*e, DNNL_ARG_SRC, false, d.src, fwd.src_desc());
      add_arg(*e, DNNL_ARG_WEIGHTS, false, d.wei, fwd.weights_desc());
      if (bias) add_arg(*e, DNNL_ARG_BIAS, false, d.bias, fwd.bias_desc());
      add_arg(*e, DNNL_ARG_DST, true, d.dst, fwd.dst_desc());
    } else if (pass == ConvPass::BwdData) {
      dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, src, wei, dst,
                                                 d.strides, d.dilates, d.pad_l, d.pad_r);
      dnnl::convolution_backward_data::primitive_desc pd(desc, eng, fwd);
      e->prim = dnnl::convolution_backward_data(pd);
      add_arg(*e, DNNL_ARG_DIFF_DST, false, d.dst, pd.diff_dst_desc());
      add_arg(*e, DNNL_ARG_WEIGHTS, false, d.wei, pd.weights_desc());
      add_arg(*e, DNNL_ARG_DIFF_SRC, true, d.src, pd.diff_src_desc());
    } else {
      auto desc = bias ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src,
                                                                  wei, d.bias, dst, d.strides, d.dilates,
                                                                  d.pad_l, d.pad_r)
                       : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src,
                                                                  wei, dst, d.strides, d.dilates, d.pad_l,
                                                                  d.pad_r);
      dnnl::convolution_backward_weights::primitive_desc pd(desc, eng, fwd);
      e->prim = dnnl::convolution_backward_weights(pd);
      add_arg(*e, DNNL_ARG_SRC, false, d.src, pd.src_desc());
      add_arg(*e, DNNL_ARG_DIFF_DST, false, d.dst, pd.diff_dst_desc());
      add_arg(*e, DNNL_ARG_DIFF_WEIGHTS, true, d.wei, pd.diff_weights_desc());
      if (bias) add_arg(*e, DNNL_ARG_DIFF_BIAS, true, d.bias, pd.diff_bias_desc());
    }
    e->ok = true;
  } catch (const dnnl::error&) {
    e->ok = false;
  }
  return e;
}

std::shared_ptr<ConvEntry> conv_entry(const Conv2dShape& s, ConvPass pass, bool bias) {
  ConvKey key = conv_key(s, pass, bias);
  std::lock_guard<std::mutex> lock(g_conv_mu);
  auto it = g_conv_cache.find(key);
  if (it != g_conv_cache.end()) return it->second;
  auto e = make_conv_entry(s, pass, bias);
  g_conv_cache.emplace(key, e);
  return e;
}

// Runs the entry on user buffers (one pointer per entry arg, same order): reorders inputs into
// temporaries where the primitive wants another layout, runs it, reorders outputs back.
void run_conv(const ConvEntry& e, std::initializer_list<void*> ptrs) {
  auto& eng = dnnl_engine();
  auto& st = dnnl_stream();
  std::unordered_map<int, dnnl::memory> args;
  std::vector<std::pair<const ConvArg*, dnnl::memory>> outputs;  // (arg, user memory) to reorder
  std::vector<Tensor> temps;  // keep temporaries alive until the stream is done
  auto p = ptrs.begin();
  for (const ConvArg& a : e.args) {
    dnnl::memory user(a.user, eng, *p++);
    if (a.same) {
      args.emplace(a.arg, user);
      continue;
    }
    temps.push_back(empty({static_cast<int64_t>(a.impl.get_size())}, DType::U8));
    dnnl::memory impl(a.impl, eng, temps.back().raw_data());
    if (a.output) outputs.emplace_back(&a, user);
    else a.reorder.execute(st, user, impl);
    args.emplace(a.arg, impl);
  }
  e.prim.execute(st, args);
  for (auto& [a, user] : outputs) a->reorder.execute(st, args.at(a->arg), user);
  st.wait();
}

// ---- stubs -------------------------------------------------------------------------------

void cpu_conv2d_fwd(const Conv2dShape& s, const Tensor& x, const Tensor& weight, const Tensor& bias,
                    Tensor& y) {
  const bool has_bias = bias.defined();
  if (x.dtype() == DType::F32) {
    auto e = conv_entry(s, ConvPass::Fwd, has_bias);
    if (e->ok) {
      if (has_bias) run_conv(*e, {x.raw_data(), weight.raw_data(), bias.raw_data(), y.raw_data()});
      else run_conv(*e, {x.raw_data(), weight.raw_data(), y.raw_data()});
      return;
    }
  }
  DL_DISPATCH_FLOAT(x.dtype(), "conv2d", [&] {
    conv_fwd_ref<scalar_t>(s, x.data<scalar_t>(), weight.data<scalar_t>(),
                           has_bias ? bias.data<scalar_t>() : nullptr, y.data<scalar_t>());
  });
}

void cpu_conv2d_bwd_data(const Conv2dShape& s, const Tensor& gy, const Tensor& weight, Tensor& gx) {
  if (gy.dtype() == DType::F32) {
    auto e = conv_entry(s, ConvPass::BwdData, false);
    if (e->ok) {
      run_conv(*e, {gy.raw_data(), weight.raw_data(), gx.raw_data()});
      return;
    }
  }
  DL_DISPATCH_FLOAT(gy.dtype(), "conv2d backward", [&] {
    conv_bwd_data_ref<scalar_t>(s, gy.data<scalar_t>(), weight.data<scalar_t>(), gx.data<scalar_t>());
  });
}

void cpu_conv2d_bwd_weights(const Conv2dShape& s, const Tensor& x, const Tensor& gy, Tensor& gw,
                            Tensor& gb) {
  const bool has_bias = gb.defined();
  if (x.dtype() == DType::F32) {
    auto e = conv_entry(s, ConvPass::BwdWeights, has_bias);
    if (e->ok) {
      if (has_bias) run_conv(*e, {x.raw_data(), gy.raw_data(), gw.raw_data(), gb.raw_data()});
      else run_conv(*e, {x.raw_data(), gy.raw_data(), gw.raw_data()});
      return;
    }
  }
  DL_DISPATCH_FLOAT(x.dtype(), "conv2d backward", [&] {
    conv_bwd_weights_ref<scalar_t>(s, x.data<scalar_t>(), gy.data<scalar_t>(), gw.data<scalar_t>(),
                                   has_bias ? gb.data<scalar_t>() : nullptr);
  });
}

}  // namespace

DL_REGISTER_KERNEL(conv2d_fwd_stub, CPU, f32_compute<cpu_conv2d_fwd>);
DL_REGISTER_KERNEL(conv2d_bwd_data_stub, CPU, f32_compute<cpu_conv2d_bwd_data>);
DL_REGISTER_KERNEL(conv2d_bwd_weights_stub, CPU, f32_compute<cpu_conv2d_bwd_weights>);

}  // namespace dl::cpu
