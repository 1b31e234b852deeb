// Events, copies and cross-stream safety of the CUDA backend, outside the allocators.
//
//   cuda::Event done;
//   done.record(cuda::stream(0), 0);         // marks the work queued on cuda:0's stream so far
//   done.wait(copy_stream);                  // copy_stream's later work waits for it (no host wait)
//   cuda::record_stream(t, copy_stream);     // t's block is used there: not reused before it ends
//
// The copies are what Tensor::copy_/to() use between devices (through the DeviceTransfer this
// backend registers): host to device asynchronous from pinned memory, synchronous from
// pageable memory; device to host synchronous (the host reads next); between two GPUs
// asynchronous and ordered with both devices' streams. Host C++ only.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "engine/tensor/tensor.h"

namespace dl::cuda {

// A CUDA event (timing disabled), created on its first record() on the recorded stream's
// device. Move-only; destroying it while its work is pending is fine (CUDA releases it later).
class Event {
 public:
  Event() = default;
  ~Event();
  Event(Event&& o) noexcept;
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Marks the work queued on `s`, a stream of `device`, so far. An event stays on the device
  // of its first record (std::logic_error for another).
  void record(cudaStream_t s, int device);
  // Work queued on `s` from now on waits for the recorded work (the host does not block).
  void wait(cudaStream_t s) const;
  // True when the recorded work has finished, or nothing was recorded.
  bool query() const;
  // The host waits for the recorded work.
  void synchronize() const;
  bool recorded() const { return event_ != nullptr; }

 private:
  cudaEvent_t event_ = nullptr;
  int device_ = -1;
};

// ---- copies (n bytes; nothing happens for n == 0) -------------------------------------------
// Host -> cuda:`device` on its stream. `pinned_block` is the base of the pinned host block
// `src` lies in (StorageImpl::data() of a pinned storage): the copy is asynchronous and the
// pinned allocator keeps the block until it has finished. Null (pageable memory): the host
// waits for the copy, since the caller may reuse `src` at once.
void copy_h2d(void* dst, int device, const void* src, size_t n, const void* pinned_block);
// cuda:`device` -> host, after the device's queued work; the host waits (it reads dst next).
void copy_d2h(void* dst, const void* src, int device, size_t n);
// Within cuda:`device`, on its stream.
void copy_d2d(void* dst, const void* src, int device, size_t n);
// cuda:`src_device` -> cuda:`dst_device` (cudaMemcpyPeerAsync on the source's stream, after
// the destination stream's queued work; the destination's stream waits for it). Peer access
// is enabled once per pair where the GPUs support it; elsewhere the driver stages the copy
// through host memory. The host does not wait.
void copy_peer(void* dst, int dst_device, const void* src, int src_device, size_t n);

// ---- streams other than the backend's -------------------------------------------------------
// Tells the caching allocator that `t`'s block is used by work queued on `s` (PyTorch's
// Tensor.record_stream): when the block is freed, it returns to the pool only after the work
// queued on `s` until then has finished. Not needed for stream(device), the stream every block
// belongs to. std::invalid_argument for a tensor not on a CUDA device.
void record_stream(const Tensor& t, cudaStream_t s);

// ---- pinned host memory (kernels/cuda/host_allocator.cpp) -----------------------------------
// The caching allocator of page-locked host memory (cudaHostAlloc, portable): freed blocks are
// kept by size class and reused only once the copies that read them have finished (PyTorch's
// CachingHostAllocator).
Allocator& pinned_host_allocator();
// Records that a copy queued on `s` (a stream of `device`) reads the pinned block starting at
// `block`: the block is not reused before that copy has finished.
void record_pinned_use(const void* block, cudaStream_t s, int device);

}  // namespace dl::cuda
