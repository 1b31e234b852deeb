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

// Device allocator interface: blocks of memory, nothing else (copies between devices are a
// DeviceTransfer's). CPU uses an aligned, caching allocator; CUDA registers its own, and its
// pinned host allocator is one too.
struct Allocator {
  virtual ~Allocator() = default;
  // `nbytes` on `device` (its index picks the GPU). Throws OutOfMemoryError when it cannot.
  virtual void* allocate(size_t nbytes, Device device) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  // Waits until the work queued on every device of this type has finished.
  virtual void synchronize() {}
  virtual void empty_cache() {}
  // Allocation statistics (zero where an allocator does not track them).
  virtual MemoryStats stats() const { return {}; }
  virtual void reset_peak() {}
};

Allocator& allocator_for(DeviceType t);
// Registers the allocator of a device type (the CUDA backend does this at start-up).
void register_allocator(DeviceType t, Allocator* a);

class StorageImpl;

// Moving bytes between devices, and page-locked host memory: what the engine needs of an
// accelerator backend besides its allocator (like PyTorch's CUDAHooks). The CUDA backend
// registers one (kernels/cuda/stream.cpp). Offsets are in bytes from the storages' data().
struct DeviceTransfer {
  virtual ~DeviceTransfer() = default;
  // Copies `nbytes` from `src` to `dst`: one of them is on this backend's device type, the
  // other on the cpu or on the same type (any index). Ordered after the work queued on both
  // devices. Returns once a cpu destination holds the bytes and a pageable cpu source may be
  // reused; from a pinned source the copy may still be running (the pinned allocator keeps
  // the block until it has finished: do not write to a pinned tensor right after .to(cuda)).
  virtual void copy(StorageImpl& dst, size_t dst_offset, const StorageImpl& src, size_t src_offset,
                    size_t nbytes) = 0;
  // Page-locked host memory (Tensor::pin_memory).
  virtual Allocator& pinned_allocator() = 0;
};

// The DeviceTransfer of an accelerator type; std::runtime_error when dltool was built
// without that backend.
DeviceTransfer& transfer_for(DeviceType t);
void register_transfer(DeviceType t, DeviceTransfer* x);

class StorageImpl {
 public:
  // `nbytes` from the allocator of `device`'s type, on that device.
  StorageImpl(size_t nbytes, Device device);
  // `nbytes` of page-locked cpu memory (pinned() is true).
  static std::shared_ptr<StorageImpl> make_pinned(size_t nbytes);
  ~StorageImpl();
  StorageImpl(const StorageImpl&) = delete;
  StorageImpl& operator=(const StorageImpl&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  bool pinned() const { return pinned_; }

 private:
  StorageImpl(size_t nbytes, Device device, Allocator& allocator, bool pinned);

  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;  // the allocator data_ came from
  bool pinned_ = false;
};

using Storage = std::shared_ptr<StorageImpl>;

}  // namespace dl
