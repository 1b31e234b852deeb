#include "engine/tensor/storage.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace dl {
namespace {

// Caching host allocator: freed blocks are kept by (rounded) size and reused, so a training
// step does not malloc/free its large activations every iteration. 64-byte aligned.
class CpuAllocator final : public Allocator {
 public:
  ~CpuAllocator() override { empty_cache(); }

  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    size_t size = round(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= size;
        return p;
      }
    }
    void* p = std::aligned_alloc(64, size);
    if (!p) {
      empty_cache();
      p = std::aligned_alloc(64, size);
      if (!p) throw std::bad_alloc();
    }
    return p;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    size_t size = round(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_bytes_ + size > kMaxCached) {
      std::free(ptr);
      return;
    }
    free_[size].push_back(ptr);
    cached_bytes_ += size;
  }

  void copy_from_host(void* dst, const void* src, size_t n) override { std::memcpy(dst, src, n); }
  void copy_to_host(void* dst, const void* src, size_t n) override { std::memcpy(dst, src, n); }
  void copy_within(void* dst, const void* src, size_t n) override { std::memmove(dst, src, n); }
  void memset_zero(void* dst, size_t n) override { std::memset(dst, 0, n); }

  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, ptrs] : free_)
      for (void* p : ptrs) std::free(p);
    free_.clear();
    cached_bytes_ = 0;
  }

 private:
  static size_t round(size_t n) { return (n + 255) & ~size_t(255); }
  static constexpr size_t kMaxCached = size_t(2) << 30;
  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
};

Allocator*& allocator_slot(DeviceType t) {
  static Allocator* slots[kNumDeviceTypes] = {};
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

StorageImpl::StorageImpl(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = allocator_for(device.type).allocate(nbytes);
}

StorageImpl::~StorageImpl() {
  if (data_) allocator_for(device_.type).deallocate(data_, nbytes_);
}

}  // namespace dl
