// CUDA convolution through cuDNN: forward, backward data and backward filter (conv2d, and
// conv_transpose2d through the same stubs), f32, f64, f16 and bf16, groups, stride, padding,
// dilation.
//
// Precision: float32 runs with CUDNN_FMA_MATH (no TF32) unless dl::cuda::allow_tf32() is set,
// so results match the CPU to fp32 rounding; float64 (gradient checks) computes in double;
// float16/bfloat16 (autocast) compute in float32 on tensor cores (CUDNN_TENSOR_OP_MATH), what
// the CPU's f32_compute does on exact f32 copies, up to the summation order.
//
// Algorithms: chosen once per (direction, shape, dtype, TF32 flag, device) from cuDNN's
// heuristics (cudnnGet*Algorithm_v7, no benchmarking runs) and cached. The first algorithm in
// the heuristics' order that is deterministic and whose workspace fits the limit wins, so a
// run is bit-identical to the next on the same GPU (exact resume); a non-deterministic one is
// taken only when no deterministic one fits. The limit is 1 GiB, or DLTOOL_CUDNN_WORKSPACE_MB.
// Workspaces come from the caching allocator (a U8 tensor on the device, freed after the call
// on the same stream).
//
// Bias: forward adds it with cudnnAddTensor; backward-weights writes gb with
// cudnnConvolutionBackwardBias. Every output is written with beta = 0 (no accumulation).
//
// conv_transpose2d's adjoint convolution can be "inconsistent": with output_padding >= stride
// (allowed when it is below the dilation) the x-space is larger than the y-space's
// convolution needs, and cuDNN refuses y dims other than its own output size. Then the y-space
// tensor is handled at cuDNN's size: forward crops, the backwards zero-pad gy (the extra
// outputs do not exist, so their gradient is 0).
#include <array>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cuda/cudnn.h"
#include "kernels/nn.h"

namespace dl::cuda {
namespace {

enum class Dir : int64_t { Fwd, BwdData, BwdFilter };

size_t workspace_limit() {
  static const size_t limit = [] {
    const char* env = std::getenv("DLTOOL_CUDNN_WORKSPACE_MB");
    size_t mb = 1024;
    if (env && *env) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(env, &end, 10);
      if (end && *end == '\0') mb = static_cast<size_t>(v);
    }
    return mb << 20;
  }();
  return limit;
}

// The descriptors of one convolution: x [n, c, h, w], w [o, c/g, kh, kw], y [n, o, oh, ow].
struct ConvDescs {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  ConvDescs(const Conv2dShape& s, DType t, cudnnMathType_t math) {
    x.set_nchw(t, s.n, s.c, s.h, s.w);
    y.set_nchw(t, s.n, s.o, s.oh, s.ow);
    w.set(t, s.o, s.c / s.groups, s.kh, s.kw);
    DL_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv.get(), cudnn_int(s.ph, "padding"), cudnn_int(s.pw, "padding"), cudnn_int(s.sh, "stride"),
        cudnn_int(s.sw, "stride"), cudnn_int(s.dh, "dilation"), cudnn_int(s.dw, "dilation"),
        CUDNN_CROSS_CORRELATION, t == DType::F64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT));
    DL_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv.get(), cudnn_int(s.groups, "groups")));
    DL_CUDNN_CHECK(cudnnSetConvolutionMathType(conv.get(), math));
  }
};

// PyTorch's choice: float32 without TF32 is restricted to FMA kernels; float32 with TF32 and
// float64 leave cuDNN its default (which permits TF32 tensor cores for float32); half types
// ask for tensor cores. Compute type: double for float64, float otherwise (ConvDescs).
cudnnMathType_t base_math(DType t, bool tf32) {
  if (t == DType::F16 || t == DType::BF16) return CUDNN_TENSOR_OP_MATH;
  return t == DType::F32 && !tf32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
}

// The per-direction cuDNN calls, so that the algorithm choice is written once.
template <Dir D> struct Ops;
template <> struct Ops<Dir::Fwd> {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static cudnnStatus_t count(cudnnHandle_t h, int* n) { return cudnnGetConvolutionForwardAlgorithmMaxCount(h, n); }
  static cudnnStatus_t heuristics(cudnnHandle_t h, const ConvDescs& d, int req, int* got, Perf* p) {
    return cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), req, got, p);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvDescs& d, int algo, size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(),
                                                   static_cast<cudnnConvolutionFwdAlgo_t>(algo), bytes);
  }
};
template <> struct Ops<Dir::BwdData> {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  static cudnnStatus_t count(cudnnHandle_t h, int* n) { return cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, n); }
  static cudnnStatus_t heuristics(cudnnHandle_t h, const ConvDescs& d, int req, int* got, Perf* p) {
    return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), req, got, p);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvDescs& d, int algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(),
                                                        static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), bytes);
  }
};
template <> struct Ops<Dir::BwdFilter> {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  static cudnnStatus_t count(cudnnHandle_t h, int* n) { return cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, n); }
  static cudnnStatus_t heuristics(cudnnHandle_t h, const ConvDescs& d, int req, int* got, Perf* p) {
    return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), req, got, p);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvDescs& d, int algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(),
                                                          static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), bytes);
  }
};

struct AlgoChoice {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
};

using AlgoKey = std::array<int64_t, 20>;

AlgoKey algo_key(Dir dir, const Conv2dShape& s, DType t, bool tf32, int device) {
  return {static_cast<int64_t>(dir), static_cast<int64_t>(t), tf32, device, s.n, s.c, s.h, s.w, s.o, s.kh,
          s.kw, s.oh, s.ow, s.sh, s.sw, s.ph, s.pw, s.dh, s.dw, s.groups};
}

std::string shape_text(const Conv2dShape& s) {
  auto str = [](int64_t v) { return std::to_string(v); };
  return "x [" + str(s.n) + ", " + str(s.c) + ", " + str(s.h) + ", " + str(s.w) + "], weight [" + str(s.o) + ", " +
         str(s.c / s.groups) + ", " + str(s.kh) + ", " + str(s.kw) + "], groups " + str(s.groups);
}

// Heuristics' order; first pass deterministic algorithms only, second pass any. Each
// candidate's workspace is asked again with the math type it will run with.
template <Dir D>
AlgoChoice choose_algo(cudnnHandle_t h, const Conv2dShape& s, DType t, bool tf32) {
  using O = Ops<D>;
  ConvDescs d(s, t, base_math(t, tf32));
  int max_count = 0;
  DL_CUDNN_CHECK(O::count(h, &max_count));
  std::vector<typename O::Perf> perf(static_cast<size_t>(max_count > 0 ? max_count : 1));
  int got = 0;
  DL_CUDNN_CHECK(O::heuristics(h, d, static_cast<int>(perf.size()), &got, perf.data()));
  for (int pass = 0; pass < 2; ++pass)
    for (int i = 0; i < got; ++i) {
      const auto& p = perf[static_cast<size_t>(i)];
      if (p.status != CUDNN_STATUS_SUCCESS) continue;
      if (pass == 0 && p.determinism != CUDNN_DETERMINISTIC) continue;
      AlgoChoice c;
      c.algo = static_cast<int>(p.algo);
      c.math = t == DType::F32 && !tf32 ? CUDNN_FMA_MATH : p.mathType;
      if (cudnnSetConvolutionMathType(d.conv.get(), c.math) != CUDNN_STATUS_SUCCESS) continue;
      if (O::workspace(h, d, c.algo, &c.workspace) != CUDNN_STATUS_SUCCESS) continue;
      if (c.workspace <= workspace_limit()) return c;
    }
  throw std::runtime_error("conv2d on cuda: cuDNN offers no algorithm for " + shape_text(s) +
                           " within the workspace limit of " + std::to_string(workspace_limit() >> 20) +
                           " MiB (DLTOOL_CUDNN_WORKSPACE_MB)");
}

template <Dir D>
AlgoChoice cached_algo(cudnnHandle_t h, const Conv2dShape& s, DType t, bool tf32, int device) {
  static std::mutex mu;
  static std::map<AlgoKey, AlgoChoice> cache;
  const AlgoKey key = algo_key(D, s, t, tf32, device);
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  const AlgoChoice c = choose_algo<D>(h, s, t, tf32);
  std::lock_guard<std::mutex> lock(mu);
  cache.emplace(key, c);
  return c;
}

// Everything one cuDNN call needs: device, handle, descriptors set up with the chosen
// algorithm's math type, the workspace, and alpha = 1 / beta = 0 of the dtype's scalar type
// (double for float64 data, float otherwise, half types included).
template <Dir D>
struct ConvCall {
  int device;
  DeviceGuard guard;
  cudnnHandle_t h;
  DType dtype;
  AlgoChoice algo;
  ConvDescs d;
  Tensor ws;
  float one_f = 1.f, zero_f = 0.f;
  double one_d = 1.0, zero_d = 0.0;

  ConvCall(const Conv2dShape& s, const Tensor& any)
      : device(any.device().index),
        guard(device),
        h(cudnn_handle(device)),
        dtype(any.dtype()),
        algo(cached_algo<D>(h, s, dtype, dtype == DType::F32 && allow_tf32(), device)),
        d(s, dtype, algo.math) {
    if (algo.workspace > 0)
      ws = empty({static_cast<int64_t>(algo.workspace)}, TensorOptions(DType::U8, any.device()));
  }
  void* ws_ptr() const { return algo.workspace > 0 ? ws.raw_data() : nullptr; }
  const void* one() const { return dtype == DType::F64 ? static_cast<const void*>(&one_d) : &one_f; }
  const void* zero() const { return dtype == DType::F64 ? static_cast<const void*>(&zero_d) : &zero_f; }
};

// conv_transpose2d's inconsistent adjoint (see the top): cuDNN's y-space size for this shape.
// floor((in + 2 pad - dilation (k - 1) - 1) / stride) + 1; the numerator is >= 0 for every
// shape the op layer passes (a conv2d input covers the dilated kernel; an adjoint's x-space is
// (oh - 1) * stride + output_padding larger than it).
int64_t out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation) {
  return (in + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
}
Conv2dShape cudnn_sized(const Conv2dShape& s) {
  Conv2dShape c = s;
  c.oh = out_size(s.h, s.kh, s.ph, s.sh, s.dh);
  c.ow = out_size(s.w, s.kw, s.pw, s.sw, s.dw);
  return c;
}
bool same_y(const Conv2dShape& a, const Conv2dShape& b) { return a.oh == b.oh && a.ow == b.ow; }

// gy [n, o, s.oh, s.ow] zero-padded at the bottom/right to [n, o, c.oh, c.ow].
Tensor pad_y(const Tensor& gy, const Conv2dShape& s, const Conv2dShape& c) {
  Tensor big = zeros({c.n, c.o, c.oh, c.ow}, gy.options());
  big.narrow(2, 0, s.oh).narrow(3, 0, s.ow).copy_(gy);
  return big;
}

void check_sizes(const Conv2dShape& s, const Conv2dShape& c) {
  if (c.oh < s.oh || c.ow < s.ow)
    throw std::logic_error("conv2d on cuda: y-space " + std::to_string(s.oh) + "x" + std::to_string(s.ow) +
                           " is larger than the convolution's output " + std::to_string(c.oh) + "x" +
                           std::to_string(c.ow));
}

void cuda_conv2d_fwd(const Conv2dShape& s0, const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y0) {
  const Conv2dShape s = cudnn_sized(s0);
  check_sizes(s0, s);
  ConvCall<Dir::Fwd> call(s, x);
  const bool crop = !same_y(s, s0);
  Tensor y = crop ? empty({s.n, s.o, s.oh, s.ow}, y0.options()) : y0;
  DL_CUDNN_CHECK(cudnnConvolutionForward(call.h, call.one(), call.d.x.get(), x.raw_data(), call.d.w.get(),
                                         weight.raw_data(), call.d.conv.get(),
                                         static_cast<cudnnConvolutionFwdAlgo_t>(call.algo.algo), call.ws_ptr(),
                                         call.algo.workspace, call.zero(), call.d.y.get(), y.raw_data()));
  if (bias.defined()) {
    TensorDesc b;
    b.set_nchw(bias.dtype(), 1, s.o, 1, 1);
    DL_CUDNN_CHECK(cudnnAddTensor(call.h, call.one(), b.get(), bias.raw_data(), call.one(), call.d.y.get(),
                                  y.raw_data()));
  }
  if (crop) y0.copy_(y.narrow(2, 0, s0.oh).narrow(3, 0, s0.ow));
}

void cuda_conv2d_bwd_data(const Conv2dShape& s0, const Tensor& gy0, const Tensor& weight, Tensor& gx) {
  const Conv2dShape s = cudnn_sized(s0);
  check_sizes(s0, s);
  ConvCall<Dir::BwdData> call(s, gy0);
  const Tensor gy = same_y(s, s0) ? gy0 : pad_y(gy0, s0, s);
  DL_CUDNN_CHECK(cudnnConvolutionBackwardData(call.h, call.one(), call.d.w.get(), weight.raw_data(), call.d.y.get(),
                                              gy.raw_data(), call.d.conv.get(),
                                              static_cast<cudnnConvolutionBwdDataAlgo_t>(call.algo.algo),
                                              call.ws_ptr(), call.algo.workspace, call.zero(), call.d.x.get(),
                                              gx.raw_data()));
}

void cuda_conv2d_bwd_weights(const Conv2dShape& s0, const Tensor& x, const Tensor& gy0, Tensor& gw, Tensor& gb) {
  const Conv2dShape s = cudnn_sized(s0);
  check_sizes(s0, s);
  ConvCall<Dir::BwdFilter> call(s, x);
  const Tensor gy = same_y(s, s0) ? gy0 : pad_y(gy0, s0, s);
  DL_CUDNN_CHECK(cudnnConvolutionBackwardFilter(call.h, call.one(), call.d.x.get(), x.raw_data(), call.d.y.get(),
                                                gy.raw_data(), call.d.conv.get(),
                                                static_cast<cudnnConvolutionBwdFilterAlgo_t>(call.algo.algo),
                                                call.ws_ptr(), call.algo.workspace, call.zero(), call.d.w.get(),
                                                gw.raw_data()));
  if (gb.defined()) {
    TensorDesc b;
    b.set_nchw(gb.dtype(), 1, s.o, 1, 1);
    DL_CUDNN_CHECK(cudnnConvolutionBackwardBias(call.h, call.one(), call.d.y.get(), gy.raw_data(), call.zero(),
                                                b.get(), gb.raw_data()));
  }
}

}  // namespace

DL_REGISTER_KERNEL(conv2d_fwd_stub, CUDA, cuda_conv2d_fwd);
DL_REGISTER_KERNEL(conv2d_bwd_data_stub, CUDA, cuda_conv2d_bwd_data);
DL_REGISTER_KERNEL(conv2d_bwd_weights_stub, CUDA, cuda_conv2d_bwd_weights);

}  // namespace dl::cuda
