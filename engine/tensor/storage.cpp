#include "engine/tensor/storage.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace dl {

std::string format_bytes(double bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 6) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[u]);
  return buf;
}

namespace {

// Caching host allocator: freed blocks are kept by (rounded) size and reused, so a training
// step does not malloc/free its large activations every iteration. 64-byte aligned.
class CpuAllocator final : public Allocator {
 public:
  ~CpuAllocator() override { empty_cache(); }

  void* allocate(size_t nbytes, Device /*cpu*/) override {
    if (nbytes == 0) return nullptr;
    size_t size = round(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= size;
        note_allocated(size);
        return p;
      }
    }
    void* p = size >= nbytes ? std::aligned_alloc(64, size) : nullptr;  // size < nbytes: wrapped
    if (!p) {
      empty_cache();
      p = size >= nbytes ? std::aligned_alloc(64, size) : nullptr;
      if (!p)
        throw OutOfMemoryError("out of memory: cannot allocate " + format_bytes(double(nbytes)) +
                               " on cpu (" + format_bytes(double(in_use_.load())) +
                               " already in use by tensors)");
    }
    note_allocated(size);
    return p;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    size_t size = round(nbytes);
    in_use_ -= size;
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_bytes_ + size > kMaxCached) {
      std::free(ptr);
      return;
    }
    free_[size].push_back(ptr);
    cached_bytes_ += size;
  }

  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, ptrs] : free_)
      for (void* p : ptrs) std::free(p);
    free_.clear();
    cached_bytes_ = 0;
  }

  MemoryStats stats() const override { return {in_use_.load(), peak_.load()}; }
  void reset_peak() override { peak_ = in_use_.load(); }

 private:
  void note_allocated(size_t size) {
    size_t now = in_use_ += size;
    size_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
  }

  static size_t round(size_t n) { return (n + 255) & ~size_t(255); }
  static constexpr size_t kMaxCached = size_t(2) << 30;
  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
  std::atomic<size_t> in_use_{0}, peak_{0};
};

Allocator*& allocator_slot(DeviceType t) {
  static Allocator* slots[kNumDeviceTypes] = {};
  return slots[static_cast<int>(t)];
}

DeviceTransfer*& transfer_slot(DeviceType t) {
  static DeviceTransfer* slots[kNumDeviceTypes] = {};
  return slots[static_cast<int>(t)];
}

}  // namespace

Allocator& allocator_for(DeviceType t) {
  if (t == DeviceType::CPU) {
    static CpuAllocator* cpu = new CpuAllocator();  // leaked on purpose: outlives static tensors
    return *cpu;
  }
  Allocator* a = allocator_slot(t);
  if (!a) throw std::runtime_error("no allocator for device type " + Device{t, 0}.str() +
                                   " (dltool was built without this backend)");
  return *a;
}

void register_allocator(DeviceType t, Allocator* a) { allocator_slot(t) = a; }

DeviceTransfer& transfer_for(DeviceType t) {
  DeviceTransfer* x = t == DeviceType::CPU ? nullptr : transfer_slot(t);
  if (!x) throw std::runtime_error("no transfer backend for device type " + Device{t, 0}.str() +
                                   " (dltool was built without this backend)");
  return *x;
}

void register_transfer(DeviceType t, DeviceTransfer* x) { transfer_slot(t) = x; }

StorageImpl::StorageImpl(size_t nbytes, Device device)
    : StorageImpl(nbytes, device, allocator_for(device.type), false) {}

StorageImpl::StorageImpl(size_t nbytes, Device device, Allocator& allocator, bool pinned)
    : nbytes_(nbytes), device_(device), allocator_(&allocator), pinned_(pinned) {
  data_ = allocator.allocate(nbytes, device);
}

std::shared_ptr<StorageImpl> StorageImpl::make_pinned(size_t nbytes) {
  // Like PyTorch without CUDA: pinned memory exists only with an accelerator backend.
  DeviceTransfer* cuda = transfer_slot(DeviceType::CUDA);
  if (!cuda)
    throw std::runtime_error("pin_memory: pinned (page-locked) memory needs the CUDA backend, and dltool "
                             "was built without CUDA");
  return std::shared_ptr<StorageImpl>(
      new StorageImpl(nbytes, Device::cpu(), cuda->pinned_allocator(), true));
}

StorageImpl::~StorageImpl() {
  if (data_) allocator_->deallocate(data_, nbytes_);
}

}  // namespace dl
