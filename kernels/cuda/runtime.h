// CUDA backend runtime: checked CUDA calls, the backend's one stream per device, a device
// guard and the caching allocator's statistics. Host C++ only (no device code), so it can be
// included from .cpp files, .cu files and tests of a CUDA build.
//
//   DL_CUDA_CHECK(cudaMemsetAsync(p, 0, n, dl::cuda::stream(dev)));
//   my_kernel<<<grid, block, 0, dl::cuda::stream(dev)>>>(...);
//   DL_CUDA_CHECK_LAUNCH();
//
// Every failing call becomes a std::runtime_error naming the call, file:line and
// cudaGetErrorString. All work of the backend (our kernels, cuBLAS, cuDNN, copies) is queued
// on stream(device): work is ordered, so the caching allocator can hand a freed block to the
// next allocation at once, and the host waits only where it reads data (a copy to the host,
// all_finite, synchronize). Work on another stream (NCCL's, a copy stream) marks the blocks it
// uses with record_stream (kernels/cuda/stream.h), and orders itself with Events.
//
// Devices by index: every launch site takes the device from its tensors (out.device().index,
// GemmArgs::device_index) and opens a DeviceGuard(device) before queueing on stream(device);
// the allocator allocates on the storage's device the same way. The guard lives in each
// kernel, not in the dispatcher: engine/dispatch.h is backend-neutral (CPU builds, CPU ops pay
// nothing), and only the kernel knows which operand decides the device (cuBLAS calls get raw
// pointers and an index).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace dl::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);

#define DL_CUDA_CHECK(expr)                                                        \
  do {                                                                             \
    cudaError_t dl_cuda_err_ = (expr);                                             \
    if (dl_cuda_err_ != cudaSuccess)                                               \
      ::dl::cuda::throw_cuda_error(dl_cuda_err_, #expr, __FILE__, __LINE__);       \
  } while (0)

// After a kernel launch: reports a bad launch configuration (not errors inside the kernel,
// which surface at the next synchronising call).
#define DL_CUDA_CHECK_LAUNCH() DL_CUDA_CHECK(cudaGetLastError())

// Throws std::runtime_error when no CUDA device is usable or `device` is out of range.
void check_device(int device);
int current_device();
// The backend's stream on `device` (created on first use). It is a blocking stream, so stray
// work on the legacy default stream still serialises with it.
cudaStream_t stream(int device);
cudaStream_t current_stream();
// The host waits for the work queued on every backend stream created so far (devices this
// process never used are not touched: no context is created on them).
void synchronize_all();

// Makes `device` current for the guard's lifetime (no-op when it already is).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

// TF32 for float32 matmul/convolution (cuDNN; cuBLAS when its helper reads it). Off by default:
// float32 results then match the CPU to fp32 rounding. Process-wide; read when a kernel runs
// (cuDNN's algorithm cache is keyed by it). Mixed precision (train.precision: tf32) sets it.
void set_allow_tf32(bool allow);
bool allow_tf32();

// Caching allocator statistics of one device (kernels/cuda/allocator.cpp).
struct AllocatorStats {
  size_t allocated_bytes = 0;   // blocks held by live storages (rounded sizes)
  size_t cached_bytes = 0;      // freed blocks kept for reuse
  size_t peak_allocated_bytes = 0;
  uint64_t device_mallocs = 0;  // cudaMalloc calls so far
  uint64_t cache_hits = 0;      // allocations served from the cache
};
AllocatorStats allocator_stats(int device);
// The block size an allocation of `nbytes` is rounded to (size classes of the cache).
size_t allocator_round_size(size_t nbytes);

}  // namespace dl::cuda
