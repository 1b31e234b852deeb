// The CUDA device runtime (kernels/cuda/stream.h, allocator.cpp, host_allocator.cpp): devices
// by index, copies between devices, pinned memory and cross-stream safety of both caching
// allocators. Every test exits with code 4 (ctest: "Skipped") without a GPU; the two-GPU
// tests return early (passing, with a warning) on a one-GPU machine. Never run on a GPU yet.
#include <catch2/catch.hpp>

#ifdef DLTOOL_WITH_CUDA
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>

#include "engine/ops.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/stream.h"
#include "tests/support/fixtures.h"

using namespace dl;

namespace {

bool two_gpus() {
  if (cuda_device_count() >= 2) return true;
  WARN("skipped: needs 2 GPUs, " << cuda_device_count() << " visible");
  return false;
}

// Holds back a stream: work queued on it after the gate waits until open() (or 10 s, so a
// mistake in the test cannot hang it for ever). Nothing that synchronises the device may run
// while it is closed (cudaFree, empty_cache): the tests pre-fill the caches they use.
class StreamGate {
 public:
  explicit StreamGate(cudaStream_t s) : s_(s) { DL_CUDA_CHECK(cudaLaunchHostFunc(s, &StreamGate::wait, &open_)); }
  ~StreamGate() {
    open();
    cudaStreamSynchronize(s_);
  }
  void open() { open_.store(true); }

 private:
  static void CUDART_CB wait(void* flag) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!static_cast<std::atomic<bool>*>(flag)->load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  cudaStream_t s_;
  std::atomic<bool> open_{false};
};

int pointer_device(const void* p) {
  cudaPointerAttributes a{};
  DL_CUDA_CHECK(cudaPointerGetAttributes(&a, p));
  return a.device;
}

}  // namespace

TEST_CASE("cuda runtime: a cuda:N that does not exist is an error naming the number of GPUs", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  const int n = cuda_device_count();
  CHECK_THROWS_WITH(empty({4}, Device::cuda(n)),
                    Catch::Contains("device cuda:" + std::to_string(n) + " does not exist (" + std::to_string(n) +
                                    " CUDA device(s) visible)"));
}

TEST_CASE("cuda runtime: allocations and kernels follow the tensor's device, not the current one", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  if (!two_gpus()) return;
  cuda::DeviceGuard current(0);
  const size_t before = cuda::allocator_stats(1).allocated_bytes;
  Tensor a = arange(1000, DType::F32).to(Device::cuda(1));
  Tensor b = ones({1000}, Device::cuda(1));
  CHECK(pointer_device(a.raw_data()) == 1);
  CHECK(cuda::allocator_stats(1).allocated_bytes >= before + 2 * 4096);
  Tensor c = add(a, b);  // queued on cuda:1's stream while cuda:0 is current
  CHECK(c.device() == Device::cuda(1));
  CHECK(pointer_device(c.raw_data()) == 1);
  CHECK(cuda::current_device() == 0);
  CHECK_CLOSE(c.cpu(), add(arange(1000, DType::F32), ones({1000})), 0, 0);
}

TEST_CASE("cuda runtime: tensors move between GPUs (peer copies), dense and strided", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  if (!two_gpus()) return;
  Generator gen(7);
  Tensor host = randn({37, 53}, gen);
  Tensor x0 = host.to(Device::cuda(0));
  Tensor x1 = x0.to(Device::cuda(1));
  CHECK(x1.device() == Device::cuda(1));
  CHECK(pointer_device(x1.raw_data()) == 1);
  CHECK_CLOSE(x1.cpu(), host, 0, 0);
  CHECK_CLOSE(x1.to(Device::cuda(0)).cpu(), host, 0, 0);
  // A transposed source, a dtype change and a strided destination.
  CHECK_CLOSE(x0.t().to(Device::cuda(1)).cpu(), host.t(), 0, 0);
  CHECK_CLOSE(x0.to(DType::F64).to(Device::cuda(1)).cpu(), host.to(DType::F64), 0, 0);
  Tensor dst = zeros({53, 37}, Device::cuda(1)).t();
  dst.copy_(x0);
  CHECK_CLOSE(dst.cpu(), host, 0, 0);
  // The copy is ordered with later work on both devices: overwrite the source right away.
  Tensor y1 = x0.to(Device::cuda(1));
  fill_(x0, 0.0);
  CHECK_CLOSE(y1.cpu(), host, 0, 0);
}

TEST_CASE("cuda runtime: pinned host memory round trip, asynchronous copy to the device", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  Generator gen(3);
  Tensor host = randn({64, 33}, gen);
  Tensor pinned = host.pin_memory();
  CHECK(pinned.is_pinned());
  CHECK_FALSE(host.is_pinned());
  CHECK(pinned.pin_memory().same(pinned));
  CHECK(pinned.device() == Device::cpu());
  CHECK_CLOSE(pinned, host, 0, 0);
  CHECK_CLOSE(host.t().pin_memory(), host.t(), 0, 0);
  CHECK_THROWS_AS(host.to(Device::cuda(0)).pin_memory(), std::invalid_argument);
  for (int i = 0; i < 3; ++i) {  // the second and third come from the cache
    Tensor d = pinned.to(Device::cuda(0));
    CHECK_CLOSE(d.cpu(), host, 0, 0);
    CHECK_CLOSE(pinned.to(DType::I64).pin_memory().to(Device::cuda(0)).cpu(), host.to(DType::I64), 0, 0);
  }
  Tensor empty_pinned = empty({0, 3}).pin_memory();
  CHECK(empty_pinned.is_pinned());
  CHECK(empty_pinned.to(Device::cuda(0)).numel() == 0);
}

TEST_CASE("cuda runtime: events record, wait and query", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  cudaStream_t side = nullptr;
  {
    cuda::DeviceGuard g(0);
    DL_CUDA_CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  }
  cuda::Event never;
  CHECK(never.query());
  {
    StreamGate gate(side);
    cuda::Event e;
    e.record(side, 0);
    CHECK(e.recorded());
    CHECK_FALSE(e.query());
    e.wait(cuda::stream(0));  // the device stream now waits for the side stream
    cuda::Event after;
    after.record(cuda::stream(0), 0);
    CHECK_FALSE(after.query());
    gate.open();
    after.synchronize();
    CHECK(e.query());
  }
  DL_CUDA_CHECK(cudaStreamDestroy(side));
}

TEST_CASE("cuda runtime: a block used on a second stream is not reused before that stream's work ends",
          "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  cudaStream_t side = nullptr;
  {
    cuda::DeviceGuard g(0);
    DL_CUDA_CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  }
  CHECK_THROWS_AS(cuda::record_stream(zeros({4}), side), std::invalid_argument);
  const Shape shape{1 << 18};  // 1 MiB: one size class
  Tensor t = zeros(shape, Device::cuda(0));
  void* used = t.raw_data();
  void* spare = nullptr;
  {
    Tensor s = empty(shape, Device::cuda(0));  // cached below, so no cudaMalloc while the gate is shut
    spare = s.raw_data();
  }
  {
    StreamGate gate(side);
    cuda::record_stream(t, side);  // as if a kernel queued on `side` behind the gate read t
    cuda::record_stream(t, cuda::stream(0));  // its own stream: nothing to record
    t = Tensor();
    Tensor u = empty(shape, Device::cuda(0));
    CHECK(u.raw_data() == spare);  // not `used`: side's work on it has not run yet
    CHECK(u.raw_data() != used);
    gate.open();
    DL_CUDA_CHECK(cudaStreamSynchronize(side));
  }
  // Once the side stream is done, the held block returns to the pool at the next allocation.
  const uint64_t mallocs = cuda::allocator_stats(0).device_mallocs;
  Tensor a = empty(shape, Device::cuda(0)), b = empty(shape, Device::cuda(0));
  CHECK(std::set<void*>{a.raw_data(), b.raw_data()} == std::set<void*>{used, spare});
  CHECK(cuda::allocator_stats(0).device_mallocs == mallocs);
  DL_CUDA_CHECK(cudaStreamDestroy(side));
}

TEST_CASE("cuda runtime: a pinned block is not reused before the copy that reads it has finished", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  const Shape shape{1 << 16};  // 256 KiB
  Tensor pinned = full(shape, 2.0).pin_memory();
  void* used = pinned.raw_data();
  void* spare = nullptr;
  {
    Tensor s = empty(shape).pin_memory();  // cached pinned block: no cudaHostAlloc below
    spare = s.raw_data();
    Tensor d = empty(shape, Device::cuda(0));  // cached device block for the copy's destination
  }
  Tensor on_device;
  {
    StreamGate gate(cuda::stream(0));
    on_device = pinned.to(Device::cuda(0));  // queued behind the gate: the copy has not run
    pinned = Tensor();
    Tensor next = empty(shape).pin_memory();
    CHECK(next.raw_data() == spare);  // not `used`, which the pending copy still reads
    CHECK(next.raw_data() != used);
    gate.open();
  }
  CHECK_CLOSE(on_device.cpu(), full(shape, 2.0), 0, 0);
  Tensor again = empty(shape).pin_memory();  // the copy has finished: `used` is back in the pool
  CHECK(again.raw_data() == used);
}

#endif  // DLTOOL_WITH_CUDA
