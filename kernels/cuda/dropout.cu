// CUDA dropout (kernels/nn.h dropout_stub), the device twin of cpu_dropout in
// kernels/cpu/norm.cpp. Element i draws Philox counter offset + i with the shared host/device
// code of kernels/random.h (the draw rand() makes for x's dtype), so the mask depends on the
// generator state only, never on the launch shape, and is bit-identical to the CPU's: the
// comparison u < p, the scale 1 / (1 - p) (rounded to T on the host, as the CPU does) and the
// single product x * mask involve no rounding the two devices could do differently.
#include <type_traits>

#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"
#include "kernels/f32_compute.h"
#include "kernels/nn.h"
#include "kernels/random.h"

namespace dl::cuda {
namespace {

template <class T>
__global__ void dropout_kernel(const T* x, int64_t n, T p, T scale, uint64_t seed, uint64_t offset, T* y, T* mask) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const Philox4 r = philox4x32_10(seed, offset + static_cast<uint64_t>(i));
    T u;
    if constexpr (std::is_same_v<T, float>) u = uniform_float(r.v[0]);
    else u = uniform_double(r.v[0], r.v[1]);
    const T m = u < p ? T(0) : scale;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

void cuda_dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& y, Tensor& mask) {
  const int64_t n = x.numel();
  if (n == 0) return;
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  dispatch_float(x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    dropout_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream(dev)>>>(
        x.data<T>(), n, static_cast<T>(p), static_cast<T>(1.0 / (1.0 - p)), seed, offset, y.data<T>(), mask.data<T>());
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

// f16/bf16 inputs through f32 (kernels/f32_compute.h), as the CPU kernel is registered.
DL_REGISTER_KERNEL(dropout_stub, CUDA, f32_compute<cuda_dropout>);

}  // namespace dl::cuda
