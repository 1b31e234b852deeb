// Where a tensor lives: "cpu" or "cuda:N".
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace dl {

enum class DeviceType : uint8_t { CPU = 0, CUDA = 1 };
constexpr int kNumDeviceTypes = 2;

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
  // Parses "cpu", "cuda" (= cuda:0), "cuda:N" (N a non-negative decimal integer). Throws
  // std::invalid_argument naming the text. Whether cuda:N exists is checked where the device
  // is first used (an error naming the number of devices visible).
  static Device parse(const std::string& text);
};

// The device of a process from a config's device text (train.device). "cuda" without an index
// means this process's GPU: with one GPU visible (a single-GPU machine, or SLURM's
// --gpus-per-task / a CUDA_VISIBLE_DEVICES that gives each task its own GPU) that is cuda:0;
// with several, the GPU of the process's `local_rank` on its node (data-parallel: one process
// per GPU; pass 0 for a single process). "cpu" and "cuda:N" are taken as written.
// `visible_devices` is cuda_device_count() (0: no check here; the caller reports "no CUDA
// device"). Throws std::invalid_argument for bad text, and when local_rank has no GPU of its
// own (local_rank >= visible_devices > 1), naming both numbers and the fix.
Device resolve_device(const std::string& text, int local_rank, int visible_devices);

// Memory an allocation on a device can count on, and where the number comes from.
struct AvailableMemory {
  double bytes = 0;
  std::string source;  // "MemAvailable in /proc/meminfo", "DLTOOL_MEMORY_LIMIT", ...
};
// CPU: the smaller of MemAvailable (/proc/meminfo) and the cgroup's limit minus its usage
// (v2 memory.max - memory.current, v1 memory.limit_in_bytes - memory.usage_in_bytes).
// The environment variable DLTOOL_MEMORY_LIMIT (bytes, or a number with a K, M, G or T
// suffix: 512M, 8G) replaces the detection on every device; DLTOOL_MEMORY_LIMIT=none, or a
// device whose free memory cannot be told, gives nullopt (no check). A malformed value throws
// std::invalid_argument naming the variable.
std::optional<AvailableMemory> available_memory(Device device);

// True when the CUDA backend was compiled in and a device can be used right now.
bool cuda_available();
int cuda_device_count();

}  // namespace dl
