// CUDA fused multi-tensor optimizer updates (kernels/optim.h), the device twins of
// kernels/cpu/optim.cpp.
//
// A call updates a list of parameters (a param group, usually) in as few launches as fit: one
// for up to kMaxTensors tensors and kMaxBlocks chunks of kChunk elements (kernels/
// multi_tensor_plan.h, torch's multi_tensor_apply). The tensors' addresses and the block ->
// (tensor, chunk) map travel by value in the kernel's arguments, so a launch needs no host to
// device copy. Each element is updated by one thread with the formula the CPU uses
// (kernels/optim_update.h), through DeviceMath: rn:: (helpers.cuh) keeps nvcc from fusing the
// operations into FMAs the CPU does not use, and sqrt and division are correctly rounded, so
// results should equal the CPU's bit for bit.
#include <cstdint>

#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"
#include "kernels/multi_tensor_plan.h"
#include "kernels/optim.h"
#include "kernels/optim_update.h"

namespace dl::cuda {
namespace {

// Device arithmetic for kernels/optim_update.h: rn:: keeps nvcc from fusing into FMAs the CPU
// does not use; sqrt and division are correctly rounded.
struct DeviceMath {
  template <class T>
  __device__ static T add(T a, T b) { return rn::add(a, b); }
  template <class T>
  __device__ static T sub(T a, T b) { return rn::sub(a, b); }
  template <class T>
  __device__ static T mul(T a, T b) { return rn::mul(a, b); }
  template <class T>
  __device__ static T div(T a, T b) { return rn::div(a, b); }
  template <class T>
  __device__ static T sqrt(T a) { return dm::sqrt(a); }
};

// 5 roles x 36 addresses + 36 sizes + 320 blocks x (slot, chunk): 3,328 bytes, under the
// 4 KiB a kernel's parameters may take on every architecture, with room for the functor.
constexpr int kMaxTensors = 36;
constexpr int kMaxBlocks = 320;
constexpr int64_t kChunk = 65536;
constexpr int kOptimThreads = 512;

struct TensorListMeta {
  void* addr[kOptimRoles][kMaxTensors];
  int64_t numel[kMaxTensors];
  uint8_t block_slot[kMaxBlocks];
  int32_t block_chunk[kMaxBlocks];
};
static_assert(sizeof(TensorListMeta) <= 3500, "kernel arguments must stay under 4 KiB with the functor");

template <class T, class F>
__global__ void __launch_bounds__(kOptimThreads) multi_tensor_kernel(TensorListMeta meta, F f) {
  const int slot = meta.block_slot[blockIdx.x];
  const int64_t n = meta.numel[slot];
  const int64_t begin = int64_t(meta.block_chunk[blockIdx.x]) * kChunk;
  const int64_t end = begin + kChunk < n ? begin + kChunk : n;
  T* t[kOptimRoles];
#pragma unroll
  for (int k = 0; k < kOptimRoles; ++k) t[k] = static_cast<T*>(meta.addr[k][slot]);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) f(t, i);
}

// Launches f over every row of `rows` (dtype T, on one device).
template <class T, class F>
void launch_multi_tensor(const OptimList& rows, const F& f) {
  if (rows.empty()) return;
  const int dev = rows[0][0].device().index;
  DeviceGuard guard(dev);
  std::vector<int64_t> numels;
  numels.reserve(rows.size());
  for (const OptimRow& r : rows) numels.push_back(r[0].numel());
  for (const MultiTensorLaunch& l : plan_multi_tensor(numels, kChunk, kMaxTensors, kMaxBlocks)) {
    TensorListMeta meta{};
    for (size_t s = 0; s < l.tensors.size(); ++s) {
      const OptimRow& r = rows[l.tensors[s]];
      for (int k = 0; k < kOptimRoles; ++k) meta.addr[k][s] = r[k].defined() ? r[k].data<T>() : nullptr;
      meta.numel[s] = r[0].numel();
    }
    for (size_t b = 0; b < l.block_slot.size(); ++b) {
      meta.block_slot[b] = static_cast<uint8_t>(l.block_slot[b]);
      meta.block_chunk[b] = static_cast<int32_t>(l.block_chunk[b]);
    }
    multi_tensor_kernel<T><<<static_cast<unsigned>(l.block_slot.size()), kOptimThreads, 0, stream(dev)>>>(meta, f);
    DL_CUDA_CHECK_LAUNCH();
  }
}

template <class Args>
void cuda_optim_step(const OptimList& rows, const Args& a, const char* name) {
  if (rows.empty()) return;
  dispatch_float(rows[0][0].dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    launch_multi_tensor<T>(rows, optim_update::make_update<DeviceMath, T>(a));
  });
}

#define DL_CUDA_OPTIM_STEP(name, Args)                                                         \
  void cuda_##name(const OptimList& rows, const Args& a) { cuda_optim_step(rows, a, #name); } \
  DL_REGISTER_KERNEL(name##_stub, CUDA, cuda_##name);

DL_CUDA_OPTIM_STEP(sgd_step, SgdArgs)
DL_CUDA_OPTIM_STEP(adam_step, AdamArgs)
DL_CUDA_OPTIM_STEP(rmsprop_step, RmspropArgs)
DL_CUDA_OPTIM_STEP(adagrad_step, AdagradArgs)
DL_CUDA_OPTIM_STEP(adadelta_step, AdadeltaArgs)
DL_CUDA_OPTIM_STEP(adamax_step, AdamaxArgs)
DL_CUDA_OPTIM_STEP(nadam_step, NadamArgs)
DL_CUDA_OPTIM_STEP(radam_step, RadamArgs)
DL_CUDA_OPTIM_STEP(asgd_step, AsgdArgs)
DL_CUDA_OPTIM_STEP(rprop_step, RpropArgs)
#undef DL_CUDA_OPTIM_STEP

}  // namespace

}  // namespace dl::cuda
