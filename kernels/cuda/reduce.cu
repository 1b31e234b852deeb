// CUDA reductions over x viewed as a contiguous [outer, reduce, inner] block: sum, arg max/min
// (with values) and var/std. Deterministic: each output is produced by one thread, one warp
// or one block in a fixed order (reduce.cuh); large reductions with few outputs use a fixed
// two-pass split (chunk sizes depend on the shape only) whose partial sums are combined in
// order. No atomics. Sums accumulate in double, as the CPU kernels do.
//
// Kernel choice (shape only):
//   inner > 1  : one thread per output, looping over r (reads coalesced across i); when there
//                are few outputs and a long r, r is split into slices summed in a second pass.
//   inner == 1 : reduce < 32: one thread per row; <= 1024: one warp per row; else one block
//                per row; a few very long rows are cut into chunks (two passes).
#include <cmath>
#include <type_traits>

#include "kernels/cuda/loop.cuh"
#include "kernels/f32_compute.h"
#include "kernels/cuda/reduce.cuh"
#include "kernels/reduce.h"

namespace dl::cuda {
namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

unsigned grid_1d(int64_t n) { return grid_for(n, kBlockThreads); }

[[noreturn]] void unsupported(const char* what, DType t) {
  throw std::invalid_argument(std::string(what) + ": unsupported dtype " + dtype_name(t) + " on cuda");
}

template <class F>
void dispatch_float(DType t, const char* what, F&& f) {
  if (t == DType::F32) return f(float{});
  if (t == DType::F64) return f(double{});
  unsupported(what, t);
}

// ---- sum ---------------------------------------------------------------------------------
// out[row] = sum of x[row, 0:len] (G threads per row).
template <int G, class Tin, class Tout>
__global__ void row_sum_kernel(const Tin* x, int64_t rows, int64_t len, Tout* out) {
  __shared__ double sh[kBlockThreads / 32];
  const int lane = Group<G>::lane();
  for (int64_t row = Group<G>::first_row(); row < rows; row += Group<G>::row_step()) {
    const Tin* p = x + row * len;
    double acc = 0;
    for (int64_t r = lane; r < len; r += G) acc += static_cast<double>(p[r]);
    acc = group_sum<G>(acc, sh);
    if (lane == 0) out[row] = static_cast<Tout>(acc);
  }
}

// partial[row, c] = sum of x[row, c*chunk : (c+1)*chunk]; grid (chunks, rows), one block each.
template <class T>
__global__ void row_chunk_sum_kernel(const T* x, int64_t len, int64_t chunk, double* partial) {
  __shared__ double sh[kBlockThreads / 32];
  const int64_t row = blockIdx.y, c = blockIdx.x;
  const int64_t begin = c * chunk, end = min(len, begin + chunk);
  const T* p = x + row * len;
  double acc = 0;
  for (int64_t r = begin + threadIdx.x; r < end; r += kBlockThreads) acc += static_cast<double>(p[r]);
  acc = group_sum<kBlockThreads>(acc, sh);
  if (threadIdx.x == 0) partial[row * gridDim.x + c] = acc;
}

// out[o, i] = sum_r x[o, r, i], one thread per output.
template <class Tin, class Tout>
__global__ void col_sum_kernel(const Tin* x, int64_t outer, int64_t reduce, int64_t inner, Tout* out) {
  const int64_t m = outer * inner;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < m;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = j / inner, i = j - o * inner;
    const Tin* p = x + o * reduce * inner + i;
    double acc = 0;
    for (int64_t r = 0; r < reduce; ++r) acc += static_cast<double>(p[r * inner]);
    out[j] = static_cast<Tout>(acc);
  }
}

// partial[s, j] = sum over r in slice s of x[o, r, i] (j = o * inner + i).
template <class T>
__global__ void col_partial_kernel(const T* x, int64_t outer, int64_t reduce, int64_t inner,
                                   int64_t slices, int64_t slice_len, double* partial) {
  const int64_t m = outer * inner, total = m * slices;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = t / m, j = t - s * m;
    const int64_t o = j / inner, i = j - o * inner;
    const int64_t begin = s * slice_len, end = min(reduce, begin + slice_len);
    const T* p = x + o * reduce * inner + i;
    double acc = 0;
    for (int64_t r = begin; r < end; ++r) acc += static_cast<double>(p[r * inner]);
    partial[t] = acc;
  }
}

template <class Tin, class Tout>
void launch_row_sum(const Tin* x, int64_t rows, int64_t len, Tout* out, cudaStream_t s) {
  if (len < 32)
    col_sum_kernel<Tin, Tout><<<grid_1d(rows), kBlockThreads, 0, s>>>(x, rows, len, 1, out);
  else if (len <= 1024)
    row_sum_kernel<32, Tin, Tout><<<group_grid<32>(rows), kBlockThreads, 0, s>>>(x, rows, len, out);
  else
    row_sum_kernel<kBlockThreads, Tin, Tout><<<group_grid<kBlockThreads>(rows), kBlockThreads, 0, s>>>(x, rows, len, out);
  DL_CUDA_CHECK_LAUNCH();
}

void cuda_sum(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner, Tensor& out) {
  const int64_t m = outer * inner;
  if (m == 0) return;
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  dispatch_float(x.dtype(), "sum", [&](auto tag) {
    using T = decltype(tag);
    const T* src = x.data<T>();
    T* dst = out.data<T>();
    if (inner == 1) {
      if (outer < 256 && reduce > 16384) {  // few long rows: fixed chunks, then their sum
        const int64_t chunks = std::min<int64_t>(ceil_div(reduce, 8192), 1024);
        const int64_t chunk = ceil_div(reduce, chunks);
        Tensor partial = empty({outer * chunks}, TensorOptions(DType::F64, x.device()));
        row_chunk_sum_kernel<T><<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(outer)),
                                  kBlockThreads, 0, s>>>(src, reduce, chunk, partial.data<double>());
        DL_CUDA_CHECK_LAUNCH();
        launch_row_sum<double, T>(partial.data<double>(), outer, chunks, dst, s);
      } else {
        launch_row_sum<T, T>(src, outer, reduce, dst, s);
      }
      return;
    }
    if (m >= 8192 || reduce <= 64) {
      col_sum_kernel<T, T><<<grid_1d(m), kBlockThreads, 0, s>>>(src, outer, reduce, inner, dst);
      DL_CUDA_CHECK_LAUNCH();
      return;
    }
    // Few outputs, long reduction: slices of r summed separately, then in slice order.
    int64_t slices = std::min<int64_t>(ceil_div(reduce, 64), std::max<int64_t>(1, 65536 / m));
    const int64_t slice_len = ceil_div(reduce, slices);
    slices = ceil_div(reduce, slice_len);
    Tensor partial = empty({slices * m}, TensorOptions(DType::F64, x.device()));
    col_partial_kernel<T><<<grid_1d(slices * m), kBlockThreads, 0, s>>>(
        src, outer, reduce, inner, slices, slice_len, partial.data<double>());
    DL_CUDA_CHECK_LAUNCH();
    col_sum_kernel<double, T><<<grid_1d(m), kBlockThreads, 0, s>>>(partial.data<double>(), 1, slices, m, dst);
    DL_CUDA_CHECK_LAUNCH();
  });
}

// ---- arg max / min -----------------------------------------------------------------------
template <class T>
__device__ __forceinline__ bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  else return false;
}

// True when candidate (bv, bi) beats the current (av, ai): NaN is the extreme (the first NaN
// wins), ties go to the smaller index. A total order, so any combination order gives the
// same winner as the sequential scan.
template <class T, bool kMax>
__device__ __forceinline__ bool arg_better(T av, int64_t ai, T bv, int64_t bi) {
  const bool an = is_nan(av), bn = is_nan(bv);
  if (an || bn) return bn && (!an || bi < ai);
  if (kMax ? (bv > av) : (bv < av)) return true;
  return bv == av && bi < ai;
}

template <class T>
__device__ __forceinline__ T shfl_xor(T v, int o) {
  if constexpr (sizeof(T) == 1) return static_cast<T>(__shfl_xor_sync(0xffffffffu, static_cast<int>(v), o));
  else return __shfl_xor_sync(0xffffffffu, v, o);
}

template <class T, bool kMax>
__global__ void arg_col_kernel(const T* x, int64_t outer, int64_t reduce, int64_t inner, T* values,
                               int64_t* indices) {
  const int64_t m = outer * inner;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < m;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = j / inner, i = j - o * inner;
    const T* p = x + o * reduce * inner + i;
    T best = p[0];
    int64_t bi = 0;
    for (int64_t r = 1; r < reduce; ++r) {
      const T v = p[r * inner];
      if (arg_better<T, kMax>(best, bi, v, r)) {
        best = v;
        bi = r;
      }
    }
    indices[j] = bi;
    if (values) values[j] = best;
  }
}

// One warp per row (inner == 1).
template <class T, bool kMax>
__global__ void arg_row_kernel(const T* x, int64_t rows, int64_t len, T* values, int64_t* indices) {
  const int lane = Group<32>::lane();
  for (int64_t row = Group<32>::first_row(); row < rows; row += Group<32>::row_step()) {
    const T* p = x + row * len;
    T best = T();
    int64_t bi = -1;  // -1: nothing seen yet
    for (int64_t r = lane; r < len; r += 32) {
      const T v = p[r];
      if (bi < 0 || arg_better<T, kMax>(best, bi, v, r)) {
        best = v;
        bi = r;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const T ov = shfl_xor(best, o);
      const int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (oi >= 0 && (bi < 0 || arg_better<T, kMax>(best, bi, ov, oi))) {
        best = ov;
        bi = oi;
      }
    }
    if (lane == 0) {
      indices[row] = bi;
      if (values) values[row] = best;
    }
  }
}

template <class T, bool kMax>
void launch_arg(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner, Tensor& values,
                Tensor& indices, cudaStream_t s) {
  const T* src = static_cast<const T*>(x.raw_data());
  T* vals = values.defined() ? static_cast<T*>(values.raw_data()) : nullptr;
  int64_t* idx = indices.data<int64_t>();
  const int64_t m = outer * inner;
  if (inner == 1 && reduce >= 32)
    arg_row_kernel<T, kMax><<<group_grid<32>(outer), kBlockThreads, 0, s>>>(src, outer, reduce, vals, idx);
  else
    arg_col_kernel<T, kMax><<<grid_1d(m), kBlockThreads, 0, s>>>(src, outer, reduce, inner, vals, idx);
  DL_CUDA_CHECK_LAUNCH();
}

template <class T>
void arg_typed(ArgReduceOp op, const Tensor& x, int64_t outer, int64_t reduce, int64_t inner,
               Tensor& values, Tensor& indices, cudaStream_t s) {
  if (op == ArgReduceOp::Max) launch_arg<T, true>(x, outer, reduce, inner, values, indices, s);
  else launch_arg<T, false>(x, outer, reduce, inner, values, indices, s);
}

void cuda_arg_reduce(ArgReduceOp op, const Tensor& x, int64_t outer, int64_t reduce, int64_t inner,
                     Tensor& values, Tensor& indices) {
  if (outer * inner == 0) return;
  if (reduce <= 0) throw std::invalid_argument("max/min: cannot reduce over an empty dimension");
  if (values.defined() && values.dtype() != x.dtype())
    throw std::invalid_argument("max/min: values must have the input's dtype");
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  switch (x.dtype()) {
    case DType::F32: return arg_typed<float>(op, x, outer, reduce, inner, values, indices, s);
    case DType::F64: return arg_typed<double>(op, x, outer, reduce, inner, values, indices, s);
    case DType::I64: return arg_typed<int64_t>(op, x, outer, reduce, inner, values, indices, s);
    case DType::U8: return arg_typed<uint8_t>(op, x, outer, reduce, inner, values, indices, s);
    case DType::Bool: return arg_typed<bool>(op, x, outer, reduce, inner, values, indices, s);
    default: unsupported("max/min", x.dtype());
  }
}

// ---- var / std ---------------------------------------------------------------------------
// Two passes in double: the mean, then the squared deviations.
template <class T>
__global__ void var_col_kernel(const T* x, int64_t outer, int64_t reduce, int64_t inner, double denom,
                               bool take_sqrt, T* out) {
  const int64_t m = outer * inner;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < m;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = j / inner, i = j - o * inner;
    const T* p = x + o * reduce * inner + i;
    if (reduce == 0) {  // NaN, like the CPU kernel (whatever the correction)
      out[j] = static_cast<T>(NAN);
      continue;
    }
    double sum = 0;
    for (int64_t r = 0; r < reduce; ++r) sum += static_cast<double>(p[r * inner]);
    const double mean = sum / static_cast<double>(reduce);
    double ss = 0;
    for (int64_t r = 0; r < reduce; ++r) {
      const double d = static_cast<double>(p[r * inner]) - mean;
      ss += d * d;
    }
    const double v = ss / denom;
    out[j] = static_cast<T>(take_sqrt ? ::sqrt(v) : v);
  }
}

template <int G, class T>
__global__ void var_row_kernel(const T* x, int64_t rows, int64_t len, double denom, bool take_sqrt, T* out) {
  __shared__ double sh[kBlockThreads / 32];
  const int lane = Group<G>::lane();
  for (int64_t row = Group<G>::first_row(); row < rows; row += Group<G>::row_step()) {
    const T* p = x + row * len;
    double sum = 0;
    for (int64_t r = lane; r < len; r += G) sum += static_cast<double>(p[r]);
    const double mean = group_sum<G>(sum, sh) / static_cast<double>(len);
    double ss = 0;
    for (int64_t r = lane; r < len; r += G) {
      const double d = static_cast<double>(p[r]) - mean;
      ss += d * d;
    }
    const double v = group_sum<G>(ss, sh) / denom;
    if (lane == 0) out[row] = static_cast<T>(take_sqrt ? ::sqrt(v) : v);
  }
}

void cuda_var(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner, int64_t correction,
              bool take_sqrt, Tensor& out) {
  const int64_t m = outer * inner;
  if (m == 0) return;
  const double denom = static_cast<double>(std::max<int64_t>(0, reduce - correction));
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  dispatch_float(x.dtype(), "var", [&](auto tag) {
    using T = decltype(tag);
    const T* src = x.data<T>();
    T* dst = out.data<T>();
    if (inner > 1 || reduce < 32)
      var_col_kernel<T><<<grid_1d(m), kBlockThreads, 0, s>>>(src, outer, reduce, inner, denom, take_sqrt, dst);
    else if (reduce <= 1024)
      var_row_kernel<32, T><<<group_grid<32>(outer), kBlockThreads, 0, s>>>(src, outer, reduce, denom, take_sqrt, dst);
    else
      var_row_kernel<kBlockThreads, T><<<group_grid<kBlockThreads>(outer), kBlockThreads, 0, s>>>(
          src, outer, reduce, denom, take_sqrt, dst);
    DL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

DL_REGISTER_KERNEL(sum_stub, CUDA, f32_compute<cuda_sum>);
DL_REGISTER_KERNEL(arg_reduce_stub, CUDA, f32_compute<cuda_arg_reduce>);
DL_REGISTER_KERNEL(var_stub, CUDA, f32_compute<cuda_var>);

}  // namespace dl::cuda
