// CUDA copy (broadcast + dtype conversion), fill, where and all_finite.
// Same-dtype work is dispatched on the element size only (a copy moves bits), so where/fill
// and plain copies need 3-4 kernel instantiations instead of one per dtype. float16/bfloat16
// take part in dtype conversions (autocast's casts, engine/amp) through float, rounding to
// nearest even as the CPU does (kernels/cpu/half.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>
#include <type_traits>

#include "kernels/cuda/loop.cuh"
#include "kernels/f32_compute.h"
#include "kernels/elementwise.h"

namespace dl::cuda {
namespace {

template <class T>
struct Tag {
  using type = T;
};

// Calls f(Tag<T>{}) with T the C++ type of `t` (f32, f64, i64, u8, bool).
template <class F>
void dispatch_all(DType t, const char* what, F&& f) {
  switch (t) {
    case DType::F32: return f(Tag<float>{});
    case DType::F64: return f(Tag<double>{});
    case DType::I64: return f(Tag<int64_t>{});
    case DType::U8: return f(Tag<uint8_t>{});
    case DType::Bool: return f(Tag<bool>{});
    default:
      throw std::invalid_argument(std::string(what) + ": unsupported dtype " + dtype_name(t) +
                                  " on cuda");
  }
}

// Calls f(Tag<U>{}) with U an unsigned type of the element size of `t`.
template <class F>
void dispatch_bits(DType t, F&& f) {
  switch (dtype_size(t)) {
    case 1: return f(Tag<uint8_t>{});
    case 2: return f(Tag<uint16_t>{});
    case 4: return f(Tag<uint32_t>{});
    default: return f(Tag<uint64_t>{});
  }
}

// Conversions' types: the dispatch_all types plus __half and __nv_bfloat16.
template <class F>
void dispatch_convertible(DType t, F&& f) {
  if (t == DType::F16) return f(Tag<__half>{});
  if (t == DType::BF16) return f(Tag<__nv_bfloat16>{});
  dispatch_all(t, "copy", f);
}

template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

template <class Td, class Ts>
struct ConvertOp {
  __device__ __forceinline__ Td operator()(Ts v) const {
    if constexpr (std::is_same_v<Ts, __half>) return ConvertOp<Td, float>{}(__half2float(v));
    else if constexpr (std::is_same_v<Ts, __nv_bfloat16>) return ConvertOp<Td, float>{}(__bfloat162float(v));
    else if constexpr (std::is_same_v<Td, __half>) return __float2half_rn(static_cast<float>(v));
    else if constexpr (std::is_same_v<Td, __nv_bfloat16>) return __float2bfloat16_rn(static_cast<float>(v));
    else if constexpr (std::is_same_v<Td, bool>) return v != Ts(0);
    else return static_cast<Td>(v);
  }
};

// ---- copy --------------------------------------------------------------------------------
void cuda_copy(const Tensor& src, Tensor& dst) {
  if (dst.numel() == 0) return;
  if (src.dtype() == dst.dtype()) {
    auto plan = make_plan<2>(dst, {&src});
    if (plan.contiguous) {  // one dense run on both sides (no broadcast): a device memcpy
      if (plan.base.p[0] != plan.base.p[1]) {
        DeviceGuard guard(plan.device);
        DL_CUDA_CHECK(cudaMemcpyAsync(plan.base.p[0], plan.base.p[1],
                                      static_cast<size_t>(plan.numel) * dst.element_size(),
                                      cudaMemcpyDeviceToDevice, stream(plan.device)));
      }
      return;
    }
    dispatch_bits(dst.dtype(), [&](auto tag) {
      using U = typename decltype(tag)::type;
      launch_map1<U, U>(src, dst, ConvertOp<U, U>{});
    });
    return;
  }
  dispatch_convertible(dst.dtype(), [&](auto dtag) {
    using Td = typename decltype(dtag)::type;
    dispatch_convertible(src.dtype(), [&](auto stag) {
      using Ts = typename decltype(stag)::type;
      launch_map1<Td, Ts>(src, dst, ConvertOp<Td, Ts>{});
    });
  });
}

// ---- fill --------------------------------------------------------------------------------
template <class U>
__global__ void fill_contig_kernel(U* out, int64_t n, U v) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = v;
}

template <class U>
__global__ void fill_strided_kernel(Ptrs<1> p, OffsetCalc<1> calc, int64_t n, U v) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[1];
    calc.get(i, off);
    *reinterpret_cast<U*>(p.p[0] + off[0]) = v;
  }
}

void cuda_fill(Tensor& dst, double value) {
  if (dst.numel() == 0) return;
  // The value's bit pattern in dst's dtype, converted on the host as the CPU kernel does.
  uint64_t bits = 0;
  dispatch_all(dst.dtype(), "fill", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T v;
    if constexpr (std::is_same_v<T, bool>) v = value != 0.0;
    else v = static_cast<T>(value);
    std::memcpy(&bits, &v, sizeof(T));
  });
  auto plan = make_plan<1>(dst, {});
  DeviceGuard guard(plan.device);
  cudaStream_t s = stream(plan.device);
  const size_t es = dst.element_size();
  if (plan.contiguous && (bits == 0 || es == 1)) {
    DL_CUDA_CHECK(cudaMemsetAsync(plan.base.p[0], static_cast<int>(bits & 0xff),
                                  static_cast<size_t>(plan.numel) * es, s));
    return;
  }
  dispatch_bits(dst.dtype(), [&](auto tag) {
    using U = typename decltype(tag)::type;
    U v;
    std::memcpy(&v, &bits, sizeof(U));
    const unsigned grid = grid_for(plan.numel, kThreads * 4);
    if (plan.contiguous)
      fill_contig_kernel<U><<<grid, kThreads, 0, s>>>(reinterpret_cast<U*>(plan.base.p[0]), plan.numel, v);
    else
      fill_strided_kernel<U><<<grid, kThreads, 0, s>>>(plan.base, plan.calc, plan.numel, v);
    DL_CUDA_CHECK_LAUNCH();
  });
}

// ---- where -------------------------------------------------------------------------------
template <class U>
__global__ void where_contig_kernel(U* out, const bool* c, const U* a, const U* b, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = c[i] ? a[i] : b[i];
}

template <class U>
__global__ void where_strided_kernel(Ptrs<4> p, OffsetCalc<4> calc, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[4];
    calc.get(i, off);
    const bool c = *reinterpret_cast<const bool*>(p.p[1] + off[1]);
    *reinterpret_cast<U*>(p.p[0] + off[0]) =
        c ? *reinterpret_cast<const U*>(p.p[2] + off[2]) : *reinterpret_cast<const U*>(p.p[3] + off[3]);
  }
}

void cuda_where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  if (a.dtype() != out.dtype() || b.dtype() != out.dtype())
    throw std::invalid_argument("where: operands must have the output's dtype");
  auto plan = make_plan<4>(out, {&cond, &a, &b});
  if (plan.numel == 0) return;
  DeviceGuard guard(plan.device);
  cudaStream_t s = stream(plan.device);
  const unsigned grid = grid_for(plan.numel, kThreads * 4);
  dispatch_bits(out.dtype(), [&](auto tag) {
    using U = typename decltype(tag)::type;
    if (plan.contiguous)
      where_contig_kernel<U><<<grid, kThreads, 0, s>>>(
          reinterpret_cast<U*>(plan.base.p[0]), reinterpret_cast<const bool*>(plan.base.p[1]),
          reinterpret_cast<const U*>(plan.base.p[2]), reinterpret_cast<const U*>(plan.base.p[3]),
          plan.numel);
    else
      where_strided_kernel<U><<<grid, kThreads, 0, s>>>(plan.base, plan.calc, plan.numel);
    DL_CUDA_CHECK_LAUNCH();
  });
}

// ---- all_finite --------------------------------------------------------------------------
// Any thread that sees a NaN/Inf stores 0 into *ok; all stores write the same value, so the
// result is deterministic without atomics.
template <class T>
__global__ void all_finite_kernel(const T* x, int64_t n, uint8_t* ok) {
  bool good = true;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    good = good && dm::isfinite(x[i]);
  if (!good) *ok = 0;
}

bool cuda_all_finite(const Tensor& x) {
  if (x.dtype() != DType::F32 && x.dtype() != DType::F64)
    throw std::invalid_argument(std::string("isfinite: unsupported dtype ") + dtype_name(x.dtype()) +
                                " (expected float32/float64)");
  if (x.numel() == 0) return true;
  Tensor c = x.contiguous();
  Tensor ok = empty({}, TensorOptions(DType::U8, x.device()));
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev);
  DL_CUDA_CHECK(cudaMemsetAsync(ok.raw_data(), 1, 1, s));
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(grid_for(c.numel(), kThreads * 8), 4096));
  if (x.dtype() == DType::F32)
    all_finite_kernel<float><<<grid, kThreads, 0, s>>>(c.data<float>(), c.numel(), static_cast<uint8_t*>(ok.raw_data()));
  else
    all_finite_kernel<double><<<grid, kThreads, 0, s>>>(c.data<double>(), c.numel(), static_cast<uint8_t*>(ok.raw_data()));
  DL_CUDA_CHECK_LAUNCH();
  uint8_t host = 0;
  DL_CUDA_CHECK(cudaMemcpyAsync(&host, ok.raw_data(), 1, cudaMemcpyDeviceToHost, s));
  DL_CUDA_CHECK(cudaStreamSynchronize(s));
  return host != 0;
}

}  // namespace

DL_REGISTER_KERNEL(copy_stub, CUDA, cuda_copy);
DL_REGISTER_KERNEL(fill_stub, CUDA, f32_compute<cuda_fill>);
DL_REGISTER_KERNEL(where_stub, CUDA, f32_compute<cuda_where>);
DL_REGISTER_KERNEL(all_finite_stub, CUDA, f32_compute<cuda_all_finite>);

}  // namespace dl::cuda
