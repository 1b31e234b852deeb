// The checks and the timeout loop every process-group backend shares (engine/dist/backend.h).
#include "engine/dist/backend.h"

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>

namespace dl::dist::detail {

void check_tensor(const Tensor& t, const char* op, const char* backend, DeviceType device, bool reduce) {
  const std::string where = std::string(op) + ": ";
  if (!t.defined()) throw std::invalid_argument(where + "expected a tensor, got an undefined one");
  if (!t.is_contiguous())
    throw std::invalid_argument(where + "expected a contiguous tensor, got " + t.str() +
                                " (non-contiguous; call .contiguous() first)");
  if (t.device().type != device)
    throw std::invalid_argument(where + "the " + backend + " backend works on " +
                                (device == DeviceType::CPU ? "cpu" : "cuda") + " tensors, got " + t.str());
  if (reduce && t.dtype() != DType::F32 && t.dtype() != DType::F64 && t.dtype() != DType::I64)
    throw std::invalid_argument(where + "expected a float32, float64 or int64 tensor, got " + t.str());
}

void check_root(int root, int world_size, const char* op) {
  if (root < 0 || root >= world_size)
    throw std::invalid_argument(std::string(op) + ": root " + std::to_string(root) + " is not a rank in [0, " +
                                std::to_string(world_size) + ")");
}

std::string timeout_message(int rank, int world_size, const std::string& what, double timeout_s) {
  char secs[32];
  std::snprintf(secs, sizeof secs, "%g", timeout_s);
  return "rank " + std::to_string(rank) + " of " + std::to_string(world_size) + ": " + what +
         " did not complete within " + secs +
         " s: another rank died, hung or runs a different code path; the job is aborted";
}

std::string tensor_op_text(const char* op, const Tensor& t) {
  return std::string(op) + " of " + std::to_string(t.numel()) + " " + dtype_name(t.dtype()) + " values";
}

void wait_until(const std::function<bool()>& done, double timeout_s, const std::function<std::string()>& what,
                int rank, int world_size) {
  using clock = std::chrono::steady_clock;
  const clock::time_point start = clock::now();
  const auto spin = std::chrono::seconds(1);
  const auto limit = std::chrono::duration<double>(timeout_s);
  while (!done()) {
    const clock::duration elapsed = clock::now() - start;
    if (elapsed > limit) throw DistError(timeout_message(rank, world_size, what(), timeout_s));
    if (elapsed < spin)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

}  // namespace dl::dist::detail
