// Where a tensor lives: "cpu" or "cuda:N".
#pragma once
#include <cstdint>
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
  // Parses "cpu", "cuda", "cuda:1". Throws std::invalid_argument naming the text.
  static Device parse(const std::string& text);
};

// True when the CUDA backend was compiled in and a device can be used right now.
bool cuda_available();
int cuda_device_count();

}  // namespace dl
