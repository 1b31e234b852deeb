// Caching device allocator (like PyTorch's CUDACachingAllocator, without block splitting).
//
// cudaMalloc/cudaFree are slow and cudaFree synchronises the device, so freed blocks are kept
// per device in size classes and handed to the next allocation of the same class. A block is
// allocated on its storage's device and belongs to that device's backend stream (runtime.h):
// work there is ordered, so a block freed on the host can be reused at once — any kernel still
// reading it was queued before the new owner's kernels. A block also used on another stream
// (record_stream: NCCL's, a copy stream) is different: when freed, an event is recorded on
// each of those streams and the block waits in `pending` until they have all completed
// (polled by the next allocation on that device; waited for by empty_cache and on OOM).
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
#include "kernels/cuda/stream.h"

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
  void* allocate(size_t nbytes, Device device) override {
    if (nbytes == 0) return nullptr;
    const int dev = device.index;
    check_device(dev);  // "cuda:N does not exist (K CUDA device(s) visible)"
    const size_t size = allocator_round_size(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      DeviceCache& c = cache(dev);
      collect_pending(c);
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
    DeviceGuard guard(dev);
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

  // No CUDA call for a block used only on its device's stream: storages may be destroyed after
  // the CUDA runtime has shut down. A block used on other streams records events there; if
  // that fails (the runtime is gone, the device is broken) the block is dropped, never reused.
  void deallocate(void* ptr, size_t /*nbytes*/) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return;  // not ours (cannot happen through StorageImpl)
    LiveBlock b = std::move(it->second);
    live_.erase(it);
    DeviceCache& c = cache(b.device);
    c.stats.allocated_bytes -= b.size;
    if (b.streams.empty()) {
      c.free[b.size].push_back(ptr);
      c.cached += b.size;
      return;
    }
    Pending p{ptr, b.size, {}};
    try {
      for (cudaStream_t s : b.streams) {
        int sdev = 0;
        DL_CUDA_CHECK(cudaStreamGetDevice(s, &sdev));
        p.events.emplace_back().record(s, sdev);
      }
    } catch (...) {
      return;  // leaked on purpose: it may still be in use
    }
    c.pending.push_back(std::move(p));
    c.cached += b.size;
  }

  void record_stream(void* ptr, cudaStream_t s) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(ptr);
    if (it == live_.end())
      throw std::invalid_argument("record_stream: the tensor's storage is not a block of the CUDA caching allocator");
    LiveBlock& b = it->second;
    if (s == stream(b.device)) return;  // the block's own stream: ordered already
    for (cudaStream_t known : b.streams)
      if (known == s) return;
    b.streams.push_back(s);
  }

  void synchronize() override {
    if (cuda_device_count() == 0) return;
    synchronize_all();
  }

  void empty_cache() override {
    for (int dev = 0; dev < cuda_device_count(); ++dev) release_cached(dev);
  }

  // The Allocator interface's statistics (bench_engine, dltool bench): every device of the
  // backend together, as bytes held by live tensors (size classes). Per device: stats(dev).
  MemoryStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    MemoryStats m;
    for (const DeviceCache& c : caches_) {
      m.in_use += c.stats.allocated_bytes;
      m.peak += c.stats.peak_allocated_bytes;
    }
    return m;
  }

  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (DeviceCache& c : caches_) c.stats.peak_allocated_bytes = c.stats.allocated_bytes;
  }

  AllocatorStats stats(int dev) {
    std::lock_guard<std::mutex> lock(mu_);
    DeviceCache& c = cache(dev);
    AllocatorStats s = c.stats;
    s.cached_bytes = c.cached;
    return s;
  }

 private:
  struct LiveBlock {
    int device = 0;
    size_t size = 0;                     // size class
    std::vector<cudaStream_t> streams;   // other streams that used it (record_stream)
  };
  // A freed block waiting for the work of the other streams that used it.
  struct Pending {
    void* ptr = nullptr;
    size_t size = 0;
    std::vector<Event> events;  // one per stream, recorded when the block was freed
  };
  struct DeviceCache {
    std::map<size_t, std::vector<void*>> free;  // size class -> freed blocks
    std::vector<Pending> pending;
    size_t cached = 0;                          // bytes in `free` and `pending`
    AllocatorStats stats;
  };

  // Requires mu_.
  DeviceCache& cache(int dev) {
    if (dev >= static_cast<int>(caches_.size())) caches_.resize(static_cast<size_t>(dev) + 1);
    return caches_[static_cast<size_t>(dev)];
  }

  // Requires mu_. Moves the pending blocks whose streams have finished to the pool.
  static void collect_pending(DeviceCache& c) {
    for (size_t i = 0; i < c.pending.size();) {
      Pending& p = c.pending[i];
      bool done = true;
      for (const Event& e : p.events) done = done && e.query();
      if (!done) {
        ++i;
        continue;
      }
      c.free[p.size].push_back(p.ptr);
      if (i + 1 < c.pending.size()) c.pending[i] = std::move(c.pending.back());
      c.pending.pop_back();
    }
  }

  // Requires mu_.
  void note_live(DeviceCache& c, void* p, int dev, size_t size) {
    live_[p] = LiveBlock{dev, size, {}};
    c.stats.allocated_bytes += size;
    if (c.stats.allocated_bytes > c.stats.peak_allocated_bytes)
      c.stats.peak_allocated_bytes = c.stats.allocated_bytes;
  }

  // Frees every cached block of `dev` (pending ones after their streams' work) once the
  // device's queued work has finished.
  void release_cached(int dev) {
    std::vector<void*> blocks;
    std::vector<Pending> pending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      DeviceCache& c = cache(dev);
      for (auto& [size, ptrs] : c.free) blocks.insert(blocks.end(), ptrs.begin(), ptrs.end());
      c.free.clear();
      pending.swap(c.pending);
      c.cached = 0;
    }
    if (blocks.empty() && pending.empty()) return;
    for (Pending& p : pending) {
      for (const Event& e : p.events) e.synchronize();
      blocks.push_back(p.ptr);
    }
    DeviceGuard guard(dev);
    DL_CUDA_CHECK(cudaStreamSynchronize(stream(dev)));
    for (void* p : blocks) DL_CUDA_CHECK(cudaFree(p));
  }

  mutable std::mutex mu_;
  std::vector<DeviceCache> caches_;
  std::unordered_map<void*, LiveBlock> live_;
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

void record_stream(const Tensor& t, cudaStream_t s) {
  if (!t.defined() || !t.device().is_cuda())
    throw std::invalid_argument("record_stream: expected a tensor on a CUDA device, got " + t.str());
  if (t.storage()->data()) instance().record_stream(t.storage()->data(), s);
}

}  // namespace dl::cuda
