#include "engine/tensor/device.h"

#include <stdexcept>

namespace dl {

std::string Device::str() const {
  if (type == DeviceType::CPU) return "cpu";
  return "cuda:" + std::to_string(index);
}

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    std::string idx = text.substr(5);
    bool ok = !idx.empty() && idx.size() < 4;
    for (char c : idx) ok = ok && c >= '0' && c <= '9';
    if (ok) return cuda(std::stoi(idx));
  }
  throw std::invalid_argument("invalid device '" + text + "' (expected cpu, cuda or cuda:N)");
}

#ifndef DLTOOL_WITH_CUDA
int cuda_device_count() { return 0; }
#endif

bool cuda_available() { return cuda_device_count() > 0; }

}  // namespace dl
