// Device names, the device a process trains on, and pinned memory where no GPU is needed (the
// CUDA side is tests/engine/test_cuda_runtime.cpp).
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "engine/ops.h"
#include "tests/support/fixtures.h"

using namespace dl;

TEST_CASE("device: parse accepts cpu, cuda and cuda:N", "[device]") {
  CHECK(Device::parse("cpu") == Device::cpu());
  CHECK(Device::parse("cuda") == Device::cuda(0));
  CHECK(Device::parse("cuda:0") == Device::cuda(0));
  CHECK(Device::parse("cuda:7") == Device::cuda(7));
  CHECK(Device::parse("cuda:12") == Device::cuda(12));
  CHECK(Device::parse("cuda:007") == Device::cuda(7));
  CHECK(Device::parse("cuda:3").str() == "cuda:3");
}

TEST_CASE("device: parse rejects what is not a device with a clear std::invalid_argument", "[device]") {
  for (const char* bad : {"cuda:", "cuda:-1", "cuda:+1", "cuda:1.0", "cuda: 1", "cuda:1 ", "cuda:x", "cuda:0x1",
                          "cuda:99999999999"})
    CHECK_THROWS_MATCHES(Device::parse(bad), std::invalid_argument,
                         Catch::Message(std::string("invalid device '") + bad +
                                        "': the index after 'cuda:' must be a non-negative integer (cuda:0, cuda:1, ...)"));
  for (const char* bad : {"", "gpu", "CUDA", "cpu:0", "cuda0", " cpu"})
    CHECK_THROWS_MATCHES(Device::parse(bad), std::invalid_argument,
                         Catch::Message(std::string("invalid device '") + bad + "' (expected cpu, cuda or cuda:N)"));
}

TEST_CASE("device: resolve_device maps 'cuda' to the process's own GPU", "[device]") {
  // cpu and an explicit index are taken as written, whatever the rank or the GPUs visible.
  CHECK(resolve_device("cpu", 3, 8) == Device::cpu());
  CHECK(resolve_device("cuda:1", 0, 8) == Device::cuda(1));
  CHECK(resolve_device("cuda:5", 3, 2) == Device::cuda(5));  // too big: reported where it is used
  // A single process: the first visible GPU.
  CHECK(resolve_device("cuda", 0, 1) == Device::cuda(0));
  CHECK(resolve_device("cuda", 0, 4) == Device::cuda(0));
  // Data-parallel with every GPU of the node visible: local rank r uses cuda:r.
  CHECK(resolve_device("cuda", 1, 4) == Device::cuda(1));
  CHECK(resolve_device("cuda", 3, 4) == Device::cuda(3));
  // One GPU visible per task (srun --gpus-per-task=1, CUDA_VISIBLE_DEVICES per rank): cuda:0.
  CHECK(resolve_device("cuda", 3, 1) == Device::cuda(0));
  // No GPU at all: cuda:0, which the caller reports as "no CUDA device is available".
  CHECK(resolve_device("cuda", 2, 0) == Device::cuda(0));
  // More ranks on the node than GPUs: no GPU of its own.
  CHECK_THROWS_MATCHES(resolve_device("cuda", 2, 2), std::invalid_argument,
                       Catch::Message("device 'cuda' on local rank 2: only 2 CUDA devices are visible on this node, "
                                      "so this process has no GPU of its own; launch at most 2 processes per node, "
                                      "or give each task its own GPU (srun --gpus-per-task=1 or CUDA_VISIBLE_DEVICES)"));
  CHECK_THROWS_AS(resolve_device("cuda:-1", 0, 2), std::invalid_argument);
  CHECK_THROWS_AS(resolve_device("gpu", 0, 2), std::invalid_argument);
}

TEST_CASE("device: a cuda:N beyond the GPUs there are is an error naming their number where it is used",
          "[device]") {
  if (cuda_available()) return;  // the [cuda] tests cover a machine with GPUs
#ifdef DLTOOL_WITH_CUDA
  CHECK_THROWS_WITH(empty({4}, Device::cuda(3)), Catch::Contains("no CUDA device is available"));
#else
  CHECK_THROWS_WITH(empty({4}, Device::cuda(3)), Catch::Contains("dltool was built without this backend"));
#endif
}

TEST_CASE("device: pin_memory without a usable GPU is a clear error and is_pinned is false", "[device]") {
  Tensor x = arange(6).reshape({2, 3});
  CHECK_FALSE(x.is_pinned());
  CHECK_FALSE(x.transpose(0, 1).is_pinned());
  if (cuda_available()) return;  // pinning works there: test_cuda_runtime.cpp
#ifdef DLTOOL_WITH_CUDA
  CHECK_THROWS_MATCHES(x.pin_memory(), std::runtime_error,
                       Catch::Message("pin_memory: no CUDA device is available (no GPU, or the driver cannot be used)"));
#else
  CHECK_THROWS_MATCHES(x.pin_memory(), std::runtime_error,
                       Catch::Message("pin_memory: pinned (page-locked) memory needs the CUDA backend, and dltool was "
                                      "built without CUDA"));
#endif
}
