// Storage: a reference-counted block of device memory. Tensors are views onto a Storage.
#pragma once
#include <cstddef>
#include <memory>

#include "engine/tensor/device.h"

namespace dl {

// Device allocator interface. CPU uses an aligned, caching allocator; CUDA registers its own.
struct Allocator {
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  // Copies between this device and the host, or within the device.
  virtual void copy_from_host(void* dst, const void* src, size_t nbytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t nbytes) = 0;
  virtual void copy_within(void* dst, const void* src, size_t nbytes) = 0;
  virtual void memset_zero(void* dst, size_t nbytes) = 0;
  virtual void synchronize() {}
  virtual void empty_cache() {}
};

Allocator& allocator_for(DeviceType t);
// Registers the allocator of a device type (the CUDA backend does this at start-up).
void register_allocator(DeviceType t, Allocator* a);

class StorageImpl {
 public:
  StorageImpl(size_t nbytes, Device device);
  ~StorageImpl();
  StorageImpl(const StorageImpl&) = delete;
  StorageImpl& operator=(const StorageImpl&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

using Storage = std::shared_ptr<StorageImpl>;

}  // namespace dl
