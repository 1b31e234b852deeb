// Caching device allocator (like PyTorch's CUDACachingAllocator, without block splitting).
//
// cudaMalloc/cudaFree are slow and cudaFree synchronises the device, so freed blocks are kept
// per device in size classes and handed to the next allocation of the same class. All work
// runs on the backend's one stream per device (runtime.h), so a block freed on the host can be
// reused at once: any kernel still reading it was queued before the new owner's kernels.
//
// Size classes: up to 1 MiB, multiples of 512 bytes; above, 8 classes per power of two
// (waste < 12.5%). On cudaErrorMemoryAllocation the cache of that device is released and the
// allocation retried once; a second failure throws with the requested and cached sizes.
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "engine/tensor/storage.h"
#include "kernels/cuda/runtime.h"

namespace dl::cuda {
namespace {

constexpr size_t kSmallLimit = size_t(1) << 20;
constexpr size_t kSmallRound = 512;

std::string mib(size_t bytes) {
  std::ostringstream os;
  os.precision(2);
  os << std::fixed << static_cast<double>(bytes) / (1024.0 * 1024.0) << " MiB";
  return os.str();
}

class CudaCachingAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    const int dev = current_device();
    const size_t size = allocator_round_size(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      DeviceCache& c = cache(dev);
      auto it = c.free.find(size);
      if (it != c.free.end() && !it->second.empty()) {
        void* p = it->second.back();  // most recently freed: likely still in L2
        it->second.pop_back();
        c.cached -= size;
        c.stats.cache_hits++;
        note_live(c, p, dev, size);
        return p;
      }
    }
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t cached_before = 0, live = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        cached_before = cache(dev).cached;
        live = cache(dev).stats.allocated_bytes;
      }
      release_cached(dev);
      err = cudaMalloc(&p, size);
      if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) cudaGetLastError();
        std::ostringstream os;
        os << "CUDA out of memory on cuda:" << dev << ": tried to allocate " << mib(size) << " ("
           << nbytes << " bytes requested); dltool holds " << mib(live) << " in live tensors and had "
           << mib(cached_before) << " cached (released and retried); the device has " << mib(free_b)
           << " free of " << mib(total_b);
        throw OutOfMemoryError(os.str());  // empty() adds the tensor's shape and dtype
      }
    }
    if (err != cudaSuccess) throw_cuda_error(err, "cudaMalloc(&p, size)", __FILE__, __LINE__);
    std::lock_guard<std::mutex> lock(mu_);
    DeviceCache& c = cache(dev);
    c.stats.device_mallocs++;
    note_live(c, p, dev, size);
    return p;
  }

  // No CUDA call here: storages may be destroyed after the CUDA runtime has shut down.
  void deallocate(void* ptr, size_t /*nbytes*/) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return;  // not ours (cannot happen through StorageImpl)
    const auto [dev, size] = it->second;
    live_.erase(it);
    DeviceCache& c = cache(dev);
    c.stats.allocated_bytes -= size;
    c.free[size].push_back(ptr);
    c.cached += size;
  }

  void copy_from_host(void* dst, const void* src, size_t n) override {
    if (n == 0) return;
    cudaStream_t s = current_stream();
    DL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s));
    // The source is pageable host memory the caller may free or reuse right after we return.
    DL_CUDA_CHECK(cudaStreamSynchronize(s));
  }

  void copy_to_host(void* dst, const void* src, size_t n) override {
    if (n == 0) return;
    cudaStream_t s = current_stream();
    DL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s));
    DL_CUDA_CHECK(cudaStreamSynchronize(s));  // the host reads dst next
  }

  void copy_within(void* dst, const void* src, size_t n) override {
    if (n == 0) return;
    DL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, current_stream()));
  }

  void memset_zero(void* dst, size_t n) override {
    if (n == 0) return;
    DL_CUDA_CHECK(cudaMemsetAsync(dst, 0, n, current_stream()));
  }

  void synchronize() override {
    if (cuda_device_count() == 0) return;
    DL_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
  }

  void empty_cache() override {
    for (int dev = 0; dev < cuda_device_count(); ++dev) release_cached(dev);
  }

  AllocatorStats stats(int dev) {
    std::lock_guard<std::mutex> lock(mu_);
    DeviceCache& c = cache(dev);
    AllocatorStats s = c.stats;
    s.cached_bytes = c.cached;
    return s;
  }

 private:
  struct DeviceCache {
    std::map<size_t, std::vector<void*>> free;  // size class -> freed blocks
    size_t cached = 0;
    AllocatorStats stats;
  };

  // Requires mu_.
  DeviceCache& cache(int dev) {
    if (dev >= static_cast<int>(caches_.size())) caches_.resize(static_cast<size_t>(dev) + 1);
    return caches_[static_cast<size_t>(dev)];
  }

  // Requires mu_.
  void note_live(DeviceCache& c, void* p, int dev, size_t size) {
    live_[p] = {dev, size};
    c.stats.allocated_bytes += size;
    if (c.stats.allocated_bytes > c.stats.peak_allocated_bytes)
      c.stats.peak_allocated_bytes = c.stats.allocated_bytes;
  }

  // Frees every cached block of `dev` after the device's queued work has finished.
  void release_cached(int dev) {
    std::vector<void*> blocks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      DeviceCache& c = cache(dev);
      for (auto& [size, ptrs] : c.free) blocks.insert(blocks.end(), ptrs.begin(), ptrs.end());
      c.free.clear();
      c.cached = 0;
    }
    if (blocks.empty()) return;
    DeviceGuard guard(dev);
    DL_CUDA_CHECK(cudaStreamSynchronize(stream(dev)));
    for (void* p : blocks) DL_CUDA_CHECK(cudaFree(p));
  }

  std::mutex mu_;
  std::vector<DeviceCache> caches_;
  std::unordered_map<void*, std::pair<int, size_t>> live_;  // block -> (device, size class)
};

CudaCachingAllocator& instance() {
  static CudaCachingAllocator* a = new CudaCachingAllocator();  // leaked: outlives static tensors
  return *a;
}

// Registration touches no CUDA API, so a CPU-only machine never loads the driver here.
const bool registered = [] {
  register_allocator(DeviceType::CUDA, &instance());
  return true;
}();

}  // namespace

size_t allocator_round_size(size_t nbytes) {
  if (nbytes <= kSmallLimit) return (nbytes + kSmallRound - 1) / kSmallRound * kSmallRound;
  size_t p = kSmallLimit;
  while (p <= nbytes / 2) p *= 2;  // largest power of two <= nbytes
  const size_t step = p / 8;
  return (nbytes + step - 1) / step * step;
}

AllocatorStats allocator_stats(int device) { return instance().stats(device); }

}  // namespace dl::cuda
