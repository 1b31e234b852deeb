// CUDA runtime glue: device discovery. Any error from cudaGetDeviceCount (no driver, driver
// too old, no device) means "no CUDA device" — never a crash.
#include <cuda_runtime.h>

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

}  // namespace dl
