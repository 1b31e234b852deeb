// CUDA class-index losses (kernels/loss.h: cross_entropy, nll_loss and multilabel_margin_loss,
// forward and backward), the device twins of kernels/cpu/loss.cpp: the same formulas,
// per-position losses and sums in double, exp and log in the scores' dtype.
//
// Scores are [N, C, inner]; a position p = (n, i) reads x[n, c, i] at base + c * inner.
//   - inner == 1: a group of G threads per position (reduce.cuh: 1, a warp or a block, chosen
//     from C), the class sums combined by the deterministic group sums;
//   - inner > 1: one thread per position walking the classes (reads coalesced across i).
// Totals (Sum / Mean and total_weight) are reduced by one block in a fixed order
// (class_loss_finish_kernel): deterministic, in double, but not the CPU's sequential order.
//
// Bad targets: the stubs must return the first bad position before writing anything (the op
// layer turns it into its error message). The targets live on the device, so the forward
// validates them with a kernel (the minimum bad position, by an integer atomicMin: the same
// result in any order) and reads that one int64 back: a stream synchronisation per forward
// call. Under deferred checks (engine/tensor/host_reads.h) the op layer sanitizes the targets
// first (sanitize_class_targets) and the kernels skip that read (ClassLossArgs::check_targets).
#include <climits>

#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/f32_compute.h"
#include "kernels/loss.h"

namespace dl::cuda {
namespace {

// ---- shared pieces ---------------------------------------------------------------------------
template <class T>
__device__ __forceinline__ double weight_of(const T* w, int64_t c) {
  return w ? static_cast<double>(w[c]) : 1.0;
}

// Per-position gradient scale s (kernels/loss.h), read on the device (no host sync).
template <class T>
struct GradScale {
  const T* g;   // grad_out: [count] (None) or 0-dim
  const T* tw;  // total_weight (Mean) or nullptr
  bool per_position;
  __device__ double operator()(int64_t p) const {
    if (per_position) return static_cast<double>(g[p]);
    const double s = static_cast<double>(g[0]);
    return tw ? s / static_cast<double>(tw[0]) : s;
  }
};

template <class T>
GradScale<T> grad_scale(const Tensor& grad_out, const Tensor& tw, Reduction red) {
  return {grad_out.data<T>(), red == Reduction::Mean ? tw.data<T>() : nullptr, red == Reduction::None};
}

__global__ void first_bad_target_kernel(const int64_t* t, int64_t count, int64_t classes, int64_t ignore,
                                        unsigned long long* first) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < count; p += int64_t(gridDim.x) * blockDim.x)
    if (bad_class_target(t[p], classes, ignore)) atomicMin(first, static_cast<unsigned long long>(p));
}

// The first target that is neither ignore_index nor in [0, C), or -1. Synchronises the stream.
int64_t first_bad_target(const Tensor& target, const ClassLossArgs& a, cudaStream_t s) {
  const int64_t count = a.n * a.inner;
  if (count == 0) return -1;
  Tensor first = empty({1}, TensorOptions(DType::I64, target.device()));
  auto* fp = reinterpret_cast<unsigned long long*>(first.data<int64_t>());
  DL_CUDA_CHECK(cudaMemsetAsync(fp, 0xFF, sizeof(unsigned long long), s));  // ULLONG_MAX: none
  first_bad_target_kernel<<<grid_for(count, kThreads), kThreads, 0, s>>>(target.data<int64_t>(), count, a.classes,
                                                                         a.ignore_index, fp);
  DL_CUDA_CHECK_LAUNCH();
  unsigned long long host = 0;
  DL_CUDA_CHECK(cudaMemcpyAsync(&host, fp, sizeof(host), cudaMemcpyDeviceToHost, s));
  DL_CUDA_CHECK(cudaStreamSynchronize(s));
  return host == ULLONG_MAX ? -1 : static_cast<int64_t>(host);
}

// safe[p] = t[p], or ignore where t[p] is out of range; *first = the first such p (atomicMin
// over ULLONG_MAX, which reads as -1 in int64 when there is none).
__global__ void sanitize_targets_kernel(const int64_t* t, int64_t count, int64_t classes, int64_t ignore,
                                        int64_t* safe, unsigned long long* first) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < count; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t v = t[p];
    const bool bad = bad_class_target(v, classes, ignore);
    safe[p] = bad ? ignore : v;
    if (bad) atomicMin(first, static_cast<unsigned long long>(p));
  }
}

// One block: total_weight = sum of w_t over non-ignored positions and, unless None, the reduced
// loss (sum of loss[p], divided by total_weight for Mean) into out[0].
template <class T>
__global__ void class_loss_finish_kernel(const double* loss, const int64_t* t, const T* w, int64_t count,
                                         int64_t ignore, Reduction red, T* out, T* tw) {
  __shared__ double sh[kBlockThreads / 32];
  double sl = 0.0, sw = 0.0;
  for (int64_t p = threadIdx.x; p < count; p += kBlockThreads) {
    if (loss) sl += loss[p];
    if (t[p] != ignore) sw += weight_of(w, t[p]);
  }
  sl = group_sum<kBlockThreads>(sl, sh);
  sw = group_sum<kBlockThreads>(sw, sh);
  if (threadIdx.x != 0) return;
  tw[0] = static_cast<T>(sw);
  if (red != Reduction::None) out[0] = static_cast<T>(red == Reduction::Mean ? sl / sw : sl);
}

// Per-position losses: `out` directly for None, else a double buffer the finish kernel sums.
template <class T>
struct LossSink {
  T* none_out;  // [count] or nullptr
  double* buf;  // [count] or nullptr
  __device__ void put(int64_t p, double v) const {
    if (none_out) none_out[p] = static_cast<T>(v);
    else buf[p] = v;
  }
};

template <class T>
void finish_forward(const LossSink<T>& sink, const Tensor& target, const Tensor& weight, const ClassLossArgs& a,
                    Tensor& out, Tensor& tw, cudaStream_t s) {
  class_loss_finish_kernel<T><<<1, kBlockThreads, 0, s>>>(
      sink.buf, target.data<int64_t>(), weight.defined() ? weight.data<T>() : nullptr, a.n * a.inner, a.ignore_index,
      a.reduction, out.data<T>(), tw.data<T>());
  DL_CUDA_CHECK_LAUNCH();
}

// ---- cross_entropy ---------------------------------------------------------------------------
template <int G, class T>
__global__ void ce_fwd_kernel(const T* x, const int64_t* t, const T* w, int64_t count, int64_t C, int64_t inner,
                              int64_t ignore, double eps, T* lse, LossSink<T> sink) {
  __shared__ double sh[kBlockThreads / 32];
  const int lane = Group<G>::lane();
  for (int64_t p = Group<G>::first_row(); p < count; p += Group<G>::row_step()) {
    const int64_t n = p / inner;
    const T* base = x + n * C * inner + (p - n * inner);  // base[c * inner] = x[n, c, i]
    double mx = -INFINITY;
    for (int64_t c = lane; c < C; c += G) mx = fmax(mx, static_cast<double>(base[c * inner]));
    const T m = static_cast<T>(group_max<G>(mx, sh));
    double se = 0.0, swx = 0.0, wsum = 0.0;
    for (int64_t c = lane; c < C; c += G) {
      const T v = base[c * inner];
      se += static_cast<double>(dm::exp(T(v - m)));
      if (eps > 0) {
        swx += weight_of(w, c) * static_cast<double>(v);
        wsum += weight_of(w, c);
      }
    }
    se = group_sum<G>(se, sh);
    if (eps > 0) {
      swx = group_sum<G>(swx, sh);
      wsum = group_sum<G>(wsum, sh);
    }
    if (lane != 0) continue;
    const double l = static_cast<double>(m) + ::log(se);
    lse[p] = static_cast<T>(l);
    const int64_t tgt = t[p];
    double v = 0.0;
    if (tgt != ignore) {
      v = (1 - eps) * weight_of(w, tgt) * (l - static_cast<double>(base[tgt * inner]));
      if (eps > 0) v += eps / static_cast<double>(C) * (wsum * l - swx);
    }
    sink.put(p, v);
  }
}

// gx = p_c * (A + B * W) - A * [c == t] - B * w_c,  A = s (1 - eps) w_t,  B = s eps / C.
template <int G, class T>
__global__ void ce_bwd_kernel(GradScale<T> scale, const T* x, const int64_t* t, const T* w, const T* lse,
                              int64_t count, int64_t C, int64_t inner, int64_t ignore, double eps, T* gx) {
  __shared__ double sh[kBlockThreads / 32];
  const int lane = Group<G>::lane();
  for (int64_t p = Group<G>::first_row(); p < count; p += Group<G>::row_step()) {
    const int64_t n = p / inner, off = n * C * inner + (p - n * inner);
    const T* base = x + off;
    T* gbase = gx + off;
    const int64_t tgt = t[p];
    if (tgt == ignore) {  // uniform over the group
      for (int64_t c = lane; c < C; c += G) gbase[c * inner] = T(0);
      continue;
    }
    double wsum = 0.0;
    if (eps > 0) {
      for (int64_t c = lane; c < C; c += G) wsum += weight_of(w, c);
      wsum = group_sum<G>(wsum, sh);
    }
    const double s = scale(p);
    const double A = s * (1 - eps) * weight_of(w, tgt), B = s * eps / static_cast<double>(C);
    const double coef = eps > 0 ? A + B * wsum : A;
    const T l = lse[p];
    for (int64_t c = lane; c < C; c += G) {
      const double pc = static_cast<double>(dm::exp(T(base[c * inner] - l)));
      gbase[c * inner] = static_cast<T>(pc * coef - B * weight_of(w, c) - (c == tgt ? A : 0.0));
    }
  }
}

// Runs kernel<G> for the positions: groups sized from C for [N, C] scores, one thread each otherwise.
template <class F>
void by_position(const ClassLossArgs& a, F&& launch) {
  if (a.inner == 1) with_group_size(a.classes, launch);
  else launch(std::integral_constant<int, 1>{});
  DL_CUDA_CHECK_LAUNCH();
}

int64_t cuda_cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight, const ClassLossArgs& a,
                           Tensor& out, Tensor& tw, Tensor& lse) {
  const int dev = logits.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  if (a.check_targets)
    if (const int64_t bad = first_bad_target(target, a, s); bad >= 0) return bad;
  const int64_t count = a.n * a.inner;
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    Tensor buf;
    if (a.reduction != Reduction::None) buf = empty({count}, TensorOptions(DType::F64, logits.device()));
    const LossSink<T> sink{a.reduction == Reduction::None ? out.data<T>() : nullptr,
                           buf.defined() ? buf.data<double>() : nullptr};
    if (count > 0)
      by_position(a, [&](auto g) {
        constexpr int G = decltype(g)::value;
        ce_fwd_kernel<G, T><<<group_grid<G>(count), kBlockThreads, 0, s>>>(
            logits.data<T>(), target.data<int64_t>(), weight.defined() ? weight.data<T>() : nullptr, count,
            a.classes, a.inner, a.ignore_index, a.label_smoothing, lse.data<T>(), sink);
      });
    finish_forward<T>(sink, target, weight, a, out, tw, s);
  });
  return -1;
}

void cuda_cross_entropy_backward(const Tensor& grad_out, const Tensor& logits, const Tensor& target,
                                 const Tensor& weight, const Tensor& lse, const Tensor& tw, const ClassLossArgs& a,
                                 Tensor& grad_in) {
  const int64_t count = a.n * a.inner;
  if (count * a.classes == 0) return;
  const int dev = logits.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  dispatch_float(logits.dtype(), "cross_entropy backward", [&](auto tag) {
    using T = decltype(tag);
    by_position(a, [&](auto g) {
      constexpr int G = decltype(g)::value;
      ce_bwd_kernel<G, T><<<group_grid<G>(count), kBlockThreads, 0, s>>>(
          grad_scale<T>(grad_out, tw, a.reduction), logits.data<T>(), target.data<int64_t>(),
          weight.defined() ? weight.data<T>() : nullptr, lse.data<T>(), count, a.classes, a.inner, a.ignore_index,
          a.label_smoothing, grad_in.data<T>());
    });
  });
}

// ---- nll_loss --------------------------------------------------------------------------------
template <class T>
__global__ void nll_fwd_kernel(const T* x, const int64_t* t, const T* w, int64_t count, int64_t C, int64_t inner,
                               int64_t ignore, LossSink<T> sink) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < count; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t tgt = t[p], n = p / inner, i = p - n * inner;
    sink.put(p, tgt == ignore ? 0.0 : -weight_of(w, tgt) * static_cast<double>(x[(n * C + tgt) * inner + i]));
  }
}

// gx [N, C, inner] = -s * w_t at c == t, 0 elsewhere; one thread per element.
template <class T>
__global__ void nll_bwd_kernel(GradScale<T> scale, const int64_t* t, const T* w, int64_t count, int64_t C,
                               int64_t inner, int64_t ignore, T* gx) {
  const int64_t total = count * C;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e % inner, nc = e / inner, c = nc % C, n = nc / C;
    const int64_t p = n * inner + i, tgt = t[p];
    gx[e] = tgt != ignore && c == tgt ? static_cast<T>(-scale(p) * weight_of(w, tgt)) : T(0);
  }
}

int64_t cuda_nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight, const ClassLossArgs& a,
                      Tensor& out, Tensor& tw) {
  const int dev = log_probs.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  if (a.check_targets)
    if (const int64_t bad = first_bad_target(target, a, s); bad >= 0) return bad;
  const int64_t count = a.n * a.inner;
  dispatch_float(log_probs.dtype(), "nll_loss", [&](auto tag) {
    using T = decltype(tag);
    Tensor buf;
    if (a.reduction != Reduction::None) buf = empty({count}, TensorOptions(DType::F64, log_probs.device()));
    const LossSink<T> sink{a.reduction == Reduction::None ? out.data<T>() : nullptr,
                           buf.defined() ? buf.data<double>() : nullptr};
    if (count > 0) {
      nll_fwd_kernel<T><<<grid_for(count, kThreads), kThreads, 0, s>>>(
          log_probs.data<T>(), target.data<int64_t>(), weight.defined() ? weight.data<T>() : nullptr, count,
          a.classes, a.inner, a.ignore_index, sink);
      DL_CUDA_CHECK_LAUNCH();
    }
    finish_forward<T>(sink, target, weight, a, out, tw, s);
  });
  return -1;
}

void cuda_nll_loss_backward(const Tensor& grad_out, const Tensor& target, const Tensor& weight, const Tensor& tw,
                            const ClassLossArgs& a, Tensor& grad_in) {
  const int64_t count = a.n * a.inner;
  if (count * a.classes == 0) return;
  const int dev = grad_in.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  dispatch_float(grad_in.dtype(), "nll_loss backward", [&](auto tag) {
    using T = decltype(tag);
    nll_bwd_kernel<T><<<grid_for(count * a.classes, kThreads), kThreads, 0, s>>>(
        grad_scale<T>(grad_out, tw, a.reduction), target.data<int64_t>(),
        weight.defined() ? weight.data<T>() : nullptr, count, a.classes, a.inner, a.ignore_index, grad_in.data<T>());
    DL_CUDA_CHECK_LAUNCH();
  });
}

// No host read: the verdict stays on the device until a deferred check reads it.
void cuda_sanitize_class_targets(const Tensor& target, const ClassLossArgs& a, Tensor& safe, Tensor& first_bad) {
  const int dev = target.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  auto* fp = reinterpret_cast<unsigned long long*>(first_bad.data<int64_t>());
  DL_CUDA_CHECK(cudaMemsetAsync(fp, 0xFF, sizeof(unsigned long long), s));
  const int64_t count = target.numel();
  if (count == 0) return;
  sanitize_targets_kernel<<<grid_for(count, kThreads), kThreads, 0, s>>>(target.data<int64_t>(), count, a.classes,
                                                                         a.ignore_index, safe.data<int64_t>(), fp);
  DL_CUDA_CHECK_LAUNCH();
}

// ---- multilabel_margin_loss (kernels/loss.h: the CPU's row code) ------------------------------
// One thread per row (forward) or per element (backward): each runs the sequential row code,
// so results are the CPU's bits. first_bad is the minimum bad position (atomicMin), no host read.
template <class T>
__global__ void multilabel_fwd_kernel(const T* x, const int64_t* t, int64_t n, int64_t C, T* out, uint8_t* is_target,
                                      unsigned long long* first) {
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < n; r += int64_t(gridDim.x) * blockDim.x) {
    const int64_t* tr = t + r * C;
    const int64_t k = multilabel_slots(tr, C);
    out[r] = static_cast<T>(multilabel_row_sum(x + r * C, tr, k, C, is_target + r * C) / static_cast<double>(C));
    if (multilabel_bad_at(tr, k, C)) atomicMin(first, static_cast<unsigned long long>(r * C + k));
  }
}

template <class T>
__global__ void multilabel_bwd_kernel(const T* g, const T* x, const int64_t* t, const uint8_t* is_target, int64_t n,
                                      int64_t C, T* gx) {
  const int64_t total = n * C;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / C, c = e - r * C;
    const int64_t* tr = t + r * C;
    const int64_t count = multilabel_grad_count(x + r * C, tr, multilabel_slots(tr, C), C, is_target + r * C, c);
    gx[e] = static_cast<T>(static_cast<double>(count) * (static_cast<double>(g[r]) / static_cast<double>(C)));
  }
}

void cuda_multilabel_margin(const Tensor& x, const Tensor& target, Tensor& loss_rows, Tensor& is_target,
                            Tensor& first_bad) {
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  auto* fp = reinterpret_cast<unsigned long long*>(first_bad.data<int64_t>());
  DL_CUDA_CHECK(cudaMemsetAsync(fp, 0xFF, sizeof(unsigned long long), s));  // ULLONG_MAX: -1
  const int64_t n = x.size(0), C = x.size(1);
  if (n == 0) return;
  dispatch_float(x.dtype(), "multilabel_margin_loss", [&](auto tag) {
    using T = decltype(tag);
    multilabel_fwd_kernel<T><<<grid_for(n, kThreads), kThreads, 0, s>>>(
        x.data<T>(), target.data<int64_t>(), n, C, loss_rows.data<T>(), is_target.data<uint8_t>(), fp);
    DL_CUDA_CHECK_LAUNCH();
  });
}

void cuda_multilabel_margin_backward(const Tensor& grad_rows, const Tensor& x, const Tensor& target,
                                     const Tensor& is_target, Tensor& grad_in) {
  const int64_t n = x.size(0), C = x.size(1);
  if (n * C == 0) return;
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  dispatch_float(x.dtype(), "multilabel_margin_loss backward", [&](auto tag) {
    using T = decltype(tag);
    multilabel_bwd_kernel<T><<<grid_for(n * C, kThreads), kThreads, 0, s>>>(
        grad_rows.data<T>(), x.data<T>(), target.data<int64_t>(), is_target.data<uint8_t>(), n, C, grad_in.data<T>());
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

DL_REGISTER_KERNEL(multilabel_margin_stub, CUDA, f32_compute<cuda_multilabel_margin>);
DL_REGISTER_KERNEL(multilabel_margin_backward_stub, CUDA, f32_compute<cuda_multilabel_margin_backward>);
DL_REGISTER_KERNEL(sanitize_class_targets_stub, CUDA, cuda_sanitize_class_targets);
DL_REGISTER_KERNEL(cross_entropy_stub, CUDA, cuda_cross_entropy);
DL_REGISTER_KERNEL(cross_entropy_backward_stub, CUDA, cuda_cross_entropy_backward);
DL_REGISTER_KERNEL(nll_loss_stub, CUDA, cuda_nll_loss);
DL_REGISTER_KERNEL(nll_loss_backward_stub, CUDA, cuda_nll_loss_backward);

}  // namespace dl::cuda
