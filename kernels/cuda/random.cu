// CUDA random fills. Element i uses Philox counter offset + i with the same arithmetic as
// kernels/cpu/random.cpp, so a generator state draws the same numbers on both devices.
// The double-precision steps use explicit round-to-nearest intrinsics (__dadd_rn, ...) so nvcc
// cannot fuse them into FMAs the CPU does not use: uniform draws (f32, f64) and f32 normal
// draws are bit-identical to the CPU's; f64 normal draws may differ in the last ulps, because
// CUDA's log/cos are not glibc's.
#include <cmath>
#include <type_traits>

#include "kernels/cuda/loop.cuh"
#include "kernels/random.h"

namespace dl::cuda {
namespace {

template <class T>
__global__ void random_kernel(T* p, int64_t n, bool normal, double a, double b, uint64_t seed,
                              uint64_t offset) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const Philox4 r = philox4x32_10(seed, offset + static_cast<uint64_t>(i));
    if (!normal) {
      const double u = std::is_same_v<T, float> ? static_cast<double>(uniform_float(r.v[0]))
                                                : uniform_double(r.v[0], r.v[1]);
      p[i] = static_cast<T>(__dadd_rn(a, __dmul_rn(__dsub_rn(b, a), u)));  // a + (b - a) * u
    } else {
      // Box-Muller; u1 in (0, 1] so log is finite.
      const double u1 = __dsub_rn(1.0, uniform_double(r.v[0], r.v[1]));
      const double u2 = uniform_double(r.v[2], r.v[3]);
      const double z = __dmul_rn(::sqrt(__dmul_rn(-2.0, ::log(u1))), ::cos(__dmul_rn(2.0 * M_PI, u2)));
      p[i] = static_cast<T>(__dadd_rn(a, __dmul_rn(b, z)));  // a + b * z
    }
  }
}

void cuda_random_fill(Tensor& t, RandomKind kind, double a, double b, uint64_t seed, uint64_t offset) {
  if (!t.is_contiguous()) throw std::invalid_argument("random fill: tensor must be contiguous");
  const int64_t n = t.numel();
  if (n == 0) return;
  const int dev = t.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  const unsigned grid = grid_for(n, kThreads * 4);
  const bool normal = kind == RandomKind::Normal;
  if (t.dtype() == DType::F32)
    random_kernel<float><<<grid, kThreads, 0, s>>>(t.data<float>(), n, normal, a, b, seed, offset);
  else if (t.dtype() == DType::F64)
    random_kernel<double><<<grid, kThreads, 0, s>>>(t.data<double>(), n, normal, a, b, seed, offset);
  else
    throw std::invalid_argument(std::string("random: unsupported dtype ") + dtype_name(t.dtype()) +
                                " (expected float32/float64)");
  DL_CUDA_CHECK_LAUNCH();
}

}  // namespace

DL_REGISTER_KERNEL(random_fill_stub, CUDA, cuda_random_fill);

}  // namespace dl::cuda
