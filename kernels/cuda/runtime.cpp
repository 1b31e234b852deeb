// CUDA runtime glue: device discovery, checked errors, the per-device stream, device guard.
// Any error from cudaGetDeviceCount (no driver, driver too old, no device) means "no CUDA
// device" — never a crash.
#include "kernels/cuda/runtime.h"

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/tensor/device.h"

namespace dl {

int cuda_device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky error
      return 0;
    }
    return n;
  }();
  return count;
}

namespace cuda {

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so later calls can go on
  throw std::runtime_error(std::string("CUDA error: ") + call + " failed at " + file + ":" +
                           std::to_string(line) + ": " + cudaGetErrorString(err) + " (" +
                           cudaGetErrorName(err) + ")");
}

void check_device(int device) {
  const int n = cuda_device_count();
  if (n == 0)
    throw std::runtime_error("no CUDA device is available (no GPU, or the driver cannot be used)");
  if (device < 0 || device >= n)
    throw std::runtime_error("device cuda:" + std::to_string(device) + " does not exist (" +
                             std::to_string(n) + " CUDA device(s) visible)");
}

int current_device() {
  check_device(0);
  int d = 0;
  DL_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

namespace {
std::mutex streams_mu;
// The backend's streams by device (null: not created yet). Leaked, streams included: static
// tensors may be destroyed after every other static.
std::vector<cudaStream_t>& streams = *new std::vector<cudaStream_t>();
}  // namespace

cudaStream_t stream(int device) {
  check_device(device);
  std::lock_guard<std::mutex> lock(streams_mu);
  if (streams.empty()) streams.assign(static_cast<size_t>(cuda_device_count()), nullptr);
  cudaStream_t& s = streams[static_cast<size_t>(device)];
  if (!s) {
    DeviceGuard guard(device);
    DL_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamDefault));
  }
  return s;
}

cudaStream_t current_stream() { return stream(current_device()); }

void synchronize_all() {
  std::vector<cudaStream_t> created;
  {
    std::lock_guard<std::mutex> lock(streams_mu);
    created = streams;
  }
  for (size_t d = 0; d < created.size(); ++d)
    if (created[d]) {
      DeviceGuard guard(static_cast<int>(d));
      DL_CUDA_CHECK(cudaStreamSynchronize(created[d]));
    }
}

namespace {
std::atomic<bool> g_allow_tf32{false};
}  // namespace
void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(); }

DeviceGuard::DeviceGuard(int device) {
  check_device(device);
  int cur = 0;
  DL_CUDA_CHECK(cudaGetDevice(&cur));
  if (cur != device) {
    DL_CUDA_CHECK(cudaSetDevice(device));
    prev_ = cur;
  }
}

DeviceGuard::~DeviceGuard() {
  if (prev_ >= 0) cudaSetDevice(prev_);  // no throw from a destructor
}

}  // namespace cuda
}  // namespace dl
