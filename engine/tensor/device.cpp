#include "engine/tensor/device.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace dl {
namespace {

// The first number in a file ("max" or a missing file: nullopt).
std::optional<double> read_number(const std::string& path) {
  std::ifstream f(path);
  double v = 0;
  if (f >> v) return v;
  return std::nullopt;
}

std::optional<double> meminfo_available() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream is(line.substr(13));
      double kib = 0;
      if (is >> kib) return kib * 1024;
    }
  return std::nullopt;
}

// A cgroup's limit minus its usage (v2, then v1; a v1 "no limit" is a huge number).
std::optional<double> cgroup_available() {
  for (auto [limit, usage] : {std::pair{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
                              std::pair{"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                        "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    auto l = read_number(limit), u = read_number(usage);
    if (l && *l < 1e18) return *l - (u ? *u : 0);
  }
  return std::nullopt;
}

// DLTOOL_MEMORY_LIMIT: "8G" (or 8GB, 8GiB), "512M", "1048576", "none".
double parse_limit(const std::string& text) {
  std::size_t end = 0;
  double v = -1;
  try {
    v = std::stod(text, &end);
  } catch (const std::exception&) {
    end = 0;
  }
  std::string unit = text.substr(end);
  for (std::string suffix : {"iB", "B"})  // 8G, 8GB and 8GiB all mean 8 * 2^30
    if (unit.size() > suffix.size() && unit.ends_with(suffix)) unit.resize(unit.size() - suffix.size());
  double scale = unit.empty() ? 1 : 0;
  const char* units = "KMGT";
  for (int i = 0; i < 4 && unit.size() == 1; ++i)
    if (std::toupper(static_cast<unsigned char>(unit[0])) == units[i]) scale = double(int64_t(1) << (10 * (i + 1)));
  if (end == 0 || scale == 0 || !(v >= 0))
    throw std::invalid_argument("DLTOOL_MEMORY_LIMIT='" + text +
                                "': expected a byte count such as 512M, 8G or 1048576, or 'none'");
  return v * scale;
}

}  // namespace

std::optional<AvailableMemory> available_memory(Device device) {
  if (const char* env = std::getenv("DLTOOL_MEMORY_LIMIT")) {
    if (std::string(env) == "none") return std::nullopt;
    return AvailableMemory{parse_limit(env), "DLTOOL_MEMORY_LIMIT"};
  }
  if (!device.is_cpu()) return std::nullopt;
  std::optional<AvailableMemory> best;
  if (auto m = meminfo_available()) best = AvailableMemory{*m, "MemAvailable in /proc/meminfo"};
  if (auto c = cgroup_available(); c && (!best || *c < best->bytes))
    best = AvailableMemory{std::max(*c, 0.0), "the cgroup's memory limit minus its usage"};
  return best;
}

std::string Device::str() const {
  if (type == DeviceType::CPU) return "cpu";
  return "cuda:" + std::to_string(index);
}

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    const std::string idx = text.substr(5);
    const bool digits = !idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos;
    // Digits only (no sign, space or suffix), and small enough for an int.
    if (!digits || idx.size() > 9)
      throw std::invalid_argument("invalid device '" + text +
                                  "': the index after 'cuda:' must be a non-negative integer (cuda:0, cuda:1, ...)");
    return cuda(std::stoi(idx));
  }
  throw std::invalid_argument("invalid device '" + text + "' (expected cpu, cuda or cuda:N)");
}

Device resolve_device(const std::string& text, int local_rank, int visible_devices) {
  const Device d = Device::parse(text);
  if (!d.is_cuda() || text != "cuda" || visible_devices <= 1) return d;
  if (local_rank < 0 || local_rank >= visible_devices)
    throw std::invalid_argument(
        "device 'cuda' on local rank " + std::to_string(local_rank) + ": only " + std::to_string(visible_devices) +
        " CUDA devices are visible on this node, so this process has no GPU of its own; launch at most " +
        std::to_string(visible_devices) +
        " processes per node, or give each task its own GPU (srun --gpus-per-task=1 or CUDA_VISIBLE_DEVICES)");
  return Device::cuda(local_rank);
}

#ifndef DLTOOL_WITH_CUDA
int cuda_device_count() { return 0; }
#endif

bool cuda_available() { return cuda_device_count() > 0; }

}  // namespace dl
