// CUDA embedding kernels (kernels/embedding.h), the device twins of kernels/cpu/embedding.cpp.
//
// Bad indices: the op layer (engine/ops/embedding.cpp checked_indices) checks every index on the
// host before any of these run, so kernels index rows without bounds checks, as the CPU's do.
//
// Weight gradient, deterministic without float atomics: the positions are sorted by index with
// CUB's radix sort, which is stable, so the positions of row v are a run of ascending k. Then one
// thread per (row v, column j) of grad_weight finds v's run by binary search and adds gy[k, j]
// over it in position order, in the gradient's dtype: the same additions in the same order as
// the CPU's counting sort + per-row loop, so grad_weight is bit-identical to the CPU's. Every
// element is written (rows without positions and the padding row get 0).
//
// max_norm renormalisation: the indices are sorted the same way and one warp takes each
// distinct row (the first of its run), so no row is scaled twice or by two threads at once.
#include <cub/device/device_radix_sort.cuh>

#include <cmath>

#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/embedding.h"

namespace dl::cuda {
namespace {

// ---- sorting positions by index ------------------------------------------------------------
__global__ void iota_kernel(int64_t* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = i;
}

// Indices (all in [0, v_count): the op layer checked them) sorted ascending into `keys`; with
// `order`, the positions in the same (stable) order.
struct SortedIndices {
  Tensor keys, order;  // i64 [n] each; order undefined when not asked for
};

SortedIndices sort_indices(const Tensor& indices, int64_t v_count, bool with_order, cudaStream_t s) {
  const int64_t n = indices.numel();
  const TensorOptions i64(DType::I64, indices.device());
  int bits = 1;  // radix bits covering 0 .. v_count - 1
  while (bits < 63 && (int64_t(1) << bits) < v_count) ++bits;
  // Non-negative, so the unsigned view sorts the same.
  const auto* keys_in = reinterpret_cast<const unsigned long long*>(indices.data<int64_t>());
  SortedIndices out{empty({n}, i64), Tensor()};
  auto* keys_out = reinterpret_cast<unsigned long long*>(out.keys.data<int64_t>());
  size_t temp_bytes = 0;
  if (with_order) {
    Tensor iota = empty({n}, i64);
    out.order = empty({n}, i64);
    iota_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(iota.data<int64_t>(), n);
    DL_CUDA_CHECK_LAUNCH();
    DL_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, iota.data<int64_t>(),
                                                  out.order.data<int64_t>(), n, 0, bits, s));
    Tensor temp = empty({static_cast<int64_t>(temp_bytes)}, TensorOptions(DType::U8, indices.device()));
    DL_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.raw_data(), temp_bytes, keys_in, keys_out,
                                                  iota.data<int64_t>(), out.order.data<int64_t>(), n, 0, bits, s));
  } else {
    DL_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, temp_bytes, keys_in, keys_out, n, 0, bits, s));
    Tensor temp = empty({static_cast<int64_t>(temp_bytes)}, TensorOptions(DType::U8, indices.device()));
    DL_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(temp.raw_data(), temp_bytes, keys_in, keys_out, n, 0, bits, s));
  }
  return out;
}

// First q in [0, n) with keys[q] >= v (n if none).
__device__ __forceinline__ int64_t lower_bound(const int64_t* keys, int64_t n, int64_t v) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (keys[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---- kernels ---------------------------------------------------------------------------------
template <class T>
__global__ void embedding_fwd_kernel(const T* w, const int64_t* idx, int64_t n, int64_t d, T* out) {
  const int64_t total = n * d;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = t / d, j = t - k * d;
    out[t] = w[idx[k] * d + j];
  }
}

// gw [v_count, d] = per row v, sum over its run of sorted positions of gy[order[q], :].
template <class T>
__global__ void embedding_bwd_kernel(const T* gy, const int64_t* keys, const int64_t* order, int64_t n,
                                     int64_t v_count, int64_t d, int64_t padding_idx, T* gw) {
  const int64_t total = v_count * d;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t v = t / d, j = t - v * d;
    T acc = T(0);
    if (v != padding_idx)
      for (int64_t q = lower_bound(keys, n, v); q < n && keys[q] == v; ++q) acc += gy[order[q] * d + j];
    gw[t] = acc;
  }
}

// One warp per sorted index; the first of each run scales its row when its norm exceeds max_norm.
template <class T>
__global__ void embedding_renorm_kernel(T* w, const int64_t* keys, int64_t n, int64_t d, double max_norm, double p) {
  const int lane = Group<32>::lane();
  for (int64_t q = Group<32>::first_row(); q < n; q += Group<32>::row_step()) {
    if (q > 0 && keys[q] == keys[q - 1]) continue;  // the same for the whole warp
    T* row = w + keys[q] * d;
    double acc = 0.0;
    if (isinf(p)) {
      for (int64_t j = lane; j < d; j += 32) acc = fmax(acc, fabs(static_cast<double>(row[j])));
      acc = group_max<32>(acc, nullptr);
    } else {
      for (int64_t j = lane; j < d; j += 32) {
        const double a = fabs(static_cast<double>(row[j]));
        acc += p == 2.0 ? a * a : p == 1.0 ? a : ::pow(a, p);
      }
      acc = group_sum<32>(acc, nullptr);
      acc = p == 2.0 ? ::sqrt(acc) : p == 1.0 ? acc : ::pow(acc, 1.0 / p);
    }
    if (acc <= max_norm) continue;
    const T scale = static_cast<T>(max_norm / (acc + 1e-7));
    for (int64_t j = lane; j < d; j += 32) row[j] *= scale;
  }
}

// ---- stubs -----------------------------------------------------------------------------------
void cuda_embedding_fwd(const Tensor& weight, const Tensor& indices, Tensor& out) {
  const int64_t n = indices.numel(), d = weight.size(1);
  if (n * d == 0) return;
  const int dev = weight.device().index;
  DeviceGuard guard(dev);
  dispatch_float(weight.dtype(), "embedding", [&](auto tag) {
    using T = decltype(tag);
    embedding_fwd_kernel<T><<<grid_for(n * d, kThreads), kThreads, 0, stream(dev)>>>(
        weight.data<T>(), indices.data<int64_t>(), n, d, out.data<T>());
    DL_CUDA_CHECK_LAUNCH();
  });
}

void cuda_embedding_bwd(const Tensor& gy, const Tensor& indices, int64_t padding_idx, Tensor& grad_weight) {
  const int64_t v_count = grad_weight.size(0), d = grad_weight.size(1), n = indices.numel();
  if (v_count * d == 0) return;
  const int dev = gy.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  dispatch_float(gy.dtype(), "embedding backward", [&](auto tag) {
    using T = decltype(tag);
    SortedIndices sorted;
    if (n > 0) sorted = sort_indices(indices, v_count, true, s);
    embedding_bwd_kernel<T><<<grid_for(v_count * d, kThreads), kThreads, 0, s>>>(
        gy.data<T>(), n > 0 ? sorted.keys.data<int64_t>() : nullptr, n > 0 ? sorted.order.data<int64_t>() : nullptr,
        n, v_count, d, padding_idx, grad_weight.data<T>());
    DL_CUDA_CHECK_LAUNCH();
  });
}

void cuda_embedding_renorm(Tensor& weight, const Tensor& indices, double max_norm, double norm_type) {
  const int64_t n = indices.numel(), d = weight.size(1);
  if (n * d == 0) return;
  const int dev = weight.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  dispatch_float(weight.dtype(), "embedding_renorm_", [&](auto tag) {
    using T = decltype(tag);
    SortedIndices sorted = sort_indices(indices, weight.size(0), false, s);
    embedding_renorm_kernel<T><<<group_grid<32>(n), kBlockThreads, 0, s>>>(
        weight.data<T>(), sorted.keys.data<int64_t>(), n, d, max_norm, norm_type);
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

DL_REGISTER_KERNEL(embedding_fwd_stub, CUDA, cuda_embedding_fwd);
DL_REGISTER_KERNEL(embedding_bwd_stub, CUDA, cuda_embedding_bwd);
DL_REGISTER_KERNEL(embedding_renorm_stub, CUDA, cuda_embedding_renorm);

}  // namespace dl::cuda
