// Caching allocator of pinned (page-locked) host memory, like PyTorch's CachingHostAllocator.
//
// cudaHostAlloc is slow (it maps the pages for the GPUs and may synchronise), so freed blocks
// are kept by size class (the device allocator's classes) and reused. A copy to a GPU from a
// pinned block is asynchronous: the copy records an event (record_pinned_use), and a block
// freed while such events are pending waits in `pending_` until they have all completed
// (polled by the next allocation), so a batch pinned by a loader worker is never overwritten
// while the GPU still reads it. deallocate makes no CUDA call (storages may be destroyed after
// the runtime has shut down).
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/tensor/storage.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/stream.h"

namespace dl::cuda {
namespace {

class PinnedHostAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes, Device /*cpu*/) override {
    if (nbytes == 0) return nullptr;
    const size_t size = allocator_round_size(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      collect_pending();
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        note_live(p, size);
        return p;
      }
    }
    try {
      check_device(0);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("pin_memory: ") + e.what());
    }
    void* p = nullptr;
    // Portable: pinned for every GPU of the process, not only the current one.
    cudaError_t err = cudaHostAlloc(&p, size, cudaHostAllocPortable);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      empty_cache();
      err = cudaHostAlloc(&p, size, cudaHostAllocPortable);
      if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        throw OutOfMemoryError("pin_memory: out of page-locked host memory: cannot allocate " +
                               format_bytes(double(size)) + " (" + format_bytes(double(in_use())) +
                               " pinned by live tensors; the limit is the locked-memory ulimit and RAM)");
      }
    }
    if (err != cudaSuccess) throw_cuda_error(err, "cudaHostAlloc(&p, size, cudaHostAllocPortable)", __FILE__, __LINE__);
    std::lock_guard<std::mutex> lock(mu_);
    note_live(p, size);
    return p;
  }

  void deallocate(void* ptr, size_t /*nbytes*/) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return;
    Block b = std::move(it->second);
    live_.erase(it);
    in_use_ -= b.size;
    if (b.events.empty())
      free_[b.size].push_back(ptr);
    else
      pending_.push_back({ptr, std::move(b)});
  }

  void record_use(const void* block, cudaStream_t s, int device) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(const_cast<void*>(block));
    if (it == live_.end())
      throw std::logic_error("record_pinned_use: not a block of the pinned host allocator");
    std::vector<Event>& events = it->second.events;
    for (size_t i = 0; i < events.size();)  // drop finished copies: a tensor copied every step
      if (events[i].query()) {
        if (i + 1 < events.size()) events[i] = std::move(events.back());
        events.pop_back();
      } else {
        ++i;
      }
    events.emplace_back().record(s, device);
  }

  // Frees the cached blocks (pending ones once their copies have finished).
  void empty_cache() override {
    std::vector<void*> blocks;
    std::vector<std::pair<void*, Block>> pending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [size, ptrs] : free_) blocks.insert(blocks.end(), ptrs.begin(), ptrs.end());
      free_.clear();
      pending.swap(pending_);
    }
    for (auto& [p, b] : pending) {
      for (const Event& e : b.events) e.synchronize();
      blocks.push_back(p);
    }
    for (void* p : blocks) DL_CUDA_CHECK(cudaFreeHost(p));
  }

  MemoryStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return {in_use_, peak_};
  }
  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = in_use_;
  }

 private:
  struct Block {
    size_t size = 0;            // size class
    std::vector<Event> events;  // copies queued from this block, maybe still running
  };

  size_t in_use() {
    std::lock_guard<std::mutex> lock(mu_);
    return in_use_;
  }

  // Requires mu_.
  void note_live(void* p, size_t size) {
    live_[p] = Block{size, {}};
    in_use_ += size;
    if (in_use_ > peak_) peak_ = in_use_;
  }

  // Requires mu_. Moves the freed blocks whose copies have finished to the pool.
  void collect_pending() {
    for (size_t i = 0; i < pending_.size();) {
      bool done = true;
      for (const Event& e : pending_[i].second.events) done = done && e.query();
      if (!done) {
        ++i;
        continue;
      }
      free_[pending_[i].second.size].push_back(pending_[i].first);
      if (i + 1 < pending_.size()) pending_[i] = std::move(pending_.back());
      pending_.pop_back();
    }
  }

  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;        // size class -> reusable blocks
  std::vector<std::pair<void*, Block>> pending_;     // freed, copies still running
  std::unordered_map<void*, Block> live_;
  size_t in_use_ = 0, peak_ = 0;
};

PinnedHostAllocator& instance() {
  static PinnedHostAllocator* a = new PinnedHostAllocator();  // leaked: outlives static tensors
  return *a;
}

}  // namespace

Allocator& pinned_host_allocator() { return instance(); }

void record_pinned_use(const void* block, cudaStream_t s, int device) { instance().record_use(block, s, device); }

}  // namespace dl::cuda
