// Storage: a reference-counted block of device memory. Tensors are views onto a Storage.
#pragma once
#include <cstddef>
#include <memory>
#include <new>
#include <string>

#include "engine/tensor/device.h"

namespace dl {

// An allocation the device could not satisfy. It derives from std::bad_alloc, so code that
// catches bad_alloc still catches it; what() says how many bytes on which device, and each
// level up the stack prefixes what was being allocated: the tensor (empty()), the layer
// (GraphModel), the file (data and checkpoint readers) — see with_context().
class OutOfMemoryError : public std::bad_alloc {
 public:
  explicit OutOfMemoryError(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }
  // The same error with "<context>: " in front of the message.
  OutOfMemoryError with_context(const std::string& context) const {
    return OutOfMemoryError(context + ": " + message_);
  }

 private:
  std::string message_;
};

// "0 B", "512 B", "1.5 KiB", "5.8 TiB": byte counts in messages.
std::string format_bytes(double bytes);

// Bytes handed out by an allocator and not yet returned (blocks kept in its cache do not
// count), and the largest such value since the last reset_peak().
struct MemoryStats {
  size_t in_use = 0;
  size_t peak = 0;
};

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
  // Allocation statistics (zero where an allocator does not track them).
  virtual MemoryStats stats() const { return {}; }
  virtual void reset_peak() {}
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
