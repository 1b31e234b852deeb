// Events, copies between devices and the DeviceTransfer of the CUDA backend (stream.h).
#include "kernels/cuda/stream.h"

#include <algorithm>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/cuda/runtime.h"

namespace dl::cuda {

// ---- Event ------------------------------------------------------------------------------------
Event::~Event() {
  if (event_) cudaEventDestroy(event_);  // no throw from a destructor (the runtime may be gone)
}

Event::Event(Event&& o) noexcept : event_(std::exchange(o.event_, nullptr)), device_(o.device_) {}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (event_) cudaEventDestroy(event_);
    event_ = std::exchange(o.event_, nullptr);
    device_ = o.device_;
  }
  return *this;
}

void Event::record(cudaStream_t s, int device) {
  DeviceGuard guard(device);
  if (!event_) {
    DL_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
    device_ = device;
  } else if (device != device_) {
    throw std::logic_error("cuda::Event of cuda:" + std::to_string(device_) + " recorded on a stream of cuda:" +
                           std::to_string(device));
  }
  DL_CUDA_CHECK(cudaEventRecord(event_, s));
}

void Event::wait(cudaStream_t s) const {
  if (event_) DL_CUDA_CHECK(cudaStreamWaitEvent(s, event_, 0));
}

bool Event::query() const {
  if (!event_) return true;
  const cudaError_t err = cudaEventQuery(event_);
  if (err == cudaErrorNotReady) {
    cudaGetLastError();  // not an error: clear it
    return false;
  }
  DL_CUDA_CHECK(err);
  return true;
}

void Event::synchronize() const {
  if (event_) DL_CUDA_CHECK(cudaEventSynchronize(event_));
}

// ---- copies -----------------------------------------------------------------------------------
void copy_h2d(void* dst, int device, const void* src, size_t n, const void* pinned_block) {
  if (n == 0) return;
  DeviceGuard guard(device);
  cudaStream_t s = stream(device);
  DL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s));
  if (pinned_block)
    record_pinned_use(pinned_block, s, device);
  else
    DL_CUDA_CHECK(cudaStreamSynchronize(s));  // pageable: the caller may reuse src right after
}

void copy_d2h(void* dst, const void* src, int device, size_t n) {
  if (n == 0) return;
  DeviceGuard guard(device);
  cudaStream_t s = stream(device);
  DL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s));
  DL_CUDA_CHECK(cudaStreamSynchronize(s));  // the host reads dst next
}

void copy_d2d(void* dst, const void* src, int device, size_t n) {
  if (n == 0) return;
  DeviceGuard guard(device);
  DL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, stream(device)));
}

namespace {

// Enables direct access between two GPUs, both ways, once per pair (where supported).
void enable_peer_access(int a, int b) {
  static std::mutex mu;
  static std::set<std::pair<int, int>> done;
  std::lock_guard<std::mutex> lock(mu);
  if (!done.insert({std::min(a, b), std::max(a, b)}).second) return;
  for (auto [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
    int can = 0;
    DL_CUDA_CHECK(cudaDeviceCanAccessPeer(&can, from, to));
    if (!can) continue;
    DeviceGuard guard(from);
    const cudaError_t err = cudaDeviceEnablePeerAccess(to, 0);
    if (err == cudaErrorPeerAccessAlreadyEnabled)
      cudaGetLastError();  // enabled by someone else (NCCL): fine
    else
      DL_CUDA_CHECK(err);
  }
}

}  // namespace

void copy_peer(void* dst, int dst_device, const void* src, int src_device, size_t n) {
  if (n == 0) return;
  if (dst_device == src_device) return copy_d2d(dst, src, dst_device, n);
  enable_peer_access(src_device, dst_device);
  cudaStream_t s_src = stream(src_device), s_dst = stream(dst_device);
  // dst's old contents may still be read by work queued on its device: the copy waits for it.
  Event dst_ready;
  dst_ready.record(s_dst, dst_device);
  dst_ready.wait(s_src);
  {
    DeviceGuard guard(src_device);
    DL_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, n, s_src));
  }
  // Later work on dst's device (reading dst, or reusing its block) waits for the copy; later
  // work on src's device (reusing src's block) is queued after it on the same stream.
  Event done;
  done.record(s_src, src_device);
  done.wait(s_dst);
}

namespace {

// What Tensor::copy_ calls for a copy with a CUDA side.
class CudaTransfer final : public DeviceTransfer {
 public:
  void copy(StorageImpl& dst, size_t dst_offset, const StorageImpl& src, size_t src_offset,
            size_t nbytes) override {
    char* d = static_cast<char*>(dst.data()) + dst_offset;
    const char* s = static_cast<const char*>(src.data()) + src_offset;
    const Device dd = dst.device(), sd = src.device();
    if (sd.is_cpu())
      copy_h2d(d, dd.index, s, nbytes, src.pinned() ? src.data() : nullptr);
    else if (dd.is_cpu())
      copy_d2h(d, s, sd.index, nbytes);
    else
      copy_peer(d, dd.index, s, sd.index, nbytes);  // same index: a device copy
  }

  Allocator& pinned_allocator() override { return pinned_host_allocator(); }
};

// Registration touches no CUDA API, so a CPU-only machine never loads the driver here.
const bool registered = [] {
  static CudaTransfer* t = new CudaTransfer();  // leaked: outlives static tensors
  register_transfer(DeviceType::CUDA, t);
  return true;
}();

}  // namespace
}  // namespace dl::cuda
