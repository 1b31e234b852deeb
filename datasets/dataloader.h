// DataLoader: batches of a Dataset, shuffled reproducibly, prepared on a background thread.
//
//   DataLoader loader(splits.train, {.batch_size = 128, .shuffle = true, .seed = 42});
//   for (int64_t epoch = start; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     while (auto batch = loader.next()) {   // images f32 [B, C, H, W], labels i64 [B]
//       ...
//     }
//   }
//
// Order: epoch e visits the samples in randperm(N, Generator(shuffle_key(seed, e))) order
// (identity order without shuffle). The permutation depends only on (seed, epoch, N), so
// resuming at epoch e needs no replay of earlier epochs, and state() = {epoch, batch_in_epoch,
// seed} is everything a checkpoint must store: set_state() resumes exactly, yielding batches
// batch_in_epoch.. of that epoch's permutation.
//
// Prefetch: with prefetch > 0 a worker thread fills a queue of at most `prefetch` ready
// batches (gather + to_float/normalize + batch_hook), so next() usually returns at once.
// An exception on the worker (I/O, a failing hook, out of memory) is rethrown by the next()
// call that reaches the failing batch, after the batches before it. Destroying the loader at
// any moment stops and joins the worker. prefetch = 0 prepares batches inside next().
//
// One consumer thread: next(), start_epoch() and set_state() must not be called concurrently.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/transforms.h"

namespace dl::data {

// Each batch owns freshly allocated tensors: the consumer may keep them as long as it likes.
struct Batch {
  Tensor images;                 // f32 [B, C, H, W] on cpu
  Tensor labels;                 // i64 [B] on cpu
  int64_t index_in_epoch = 0;    // 0-based batch index within the epoch
  std::vector<int64_t> indices;  // [B] dataset rows of the samples (for debugging and tests)
};

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = false;
  bool drop_last = false;        // drop the final batch when it would be smaller than batch_size
  uint64_t seed = 0;
  int64_t prefetch = 2;          // ready batches queued ahead (plus one in preparation);
                                 // 0 = no worker thread, next() prepares the batch itself
  TransformPipeline transform = TransformPipeline().to_float();
  // Runs for each batch after collation, on the worker thread (on the caller's with
  // prefetch 0): e.g. augmentation or a copy to pinned/device memory. Its exceptions
  // propagate to next().
  std::function<void(Batch&)> batch_hook;
};

struct LoaderState {
  int64_t epoch = 0;
  int64_t batch_in_epoch = 0;    // batches already returned by next() in this epoch
  uint64_t seed = 0;
  bool operator==(const LoaderState&) const = default;
};

// The Generator seed that epoch `epoch` of a loader seeded with `seed` shuffles with.
uint64_t shuffle_key(uint64_t seed, int64_t epoch);

class DataLoader {
 public:
  // Throws std::invalid_argument for batch_size < 1, prefetch < 0, a null dataset, or a
  // transform that does not fit the dataset's channels.
  DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Begins epoch `epoch` (>= 0) at batch `skip_batches` (0..batches_per_epoch()), discarding
  // anything prepared for an earlier epoch.
  void start_epoch(int64_t epoch, int64_t skip_batches = 0);
  // The next batch of the current epoch, or nullopt at its end. Throws std::logic_error before
  // the first start_epoch/set_state, and rethrows a worker exception.
  std::optional<Batch> next();

  int64_t batches_per_epoch() const;
  int64_t size() const { return dataset_->size(); }
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return opt_; }

  LoaderState state() const;
  // Adopts state.seed and starts state.epoch at state.batch_in_epoch.
  void set_state(const LoaderState& state);
  // The sample order of an epoch (what the batches of that epoch concatenate to, before
  // drop_last). Pure: does not touch the loader's position.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  Batch make_batch(const std::vector<int64_t>& order, int64_t index) const;
  void worker_loop();

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions opt_;
  BatchTransform transform_;
  uint64_t seed_;  // options.seed until set_state; read and written by the consumer thread only

  // Everything below is guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // the worker waits for work / queue space
  std::condition_variable ready_cv_;  // the consumer waits for a batch or an error
  bool started_ = false;              // an epoch has been started
  bool stop_ = false;
  uint64_t generation_ = 0;           // bumped by start_epoch: stale worker output is dropped
  int64_t epoch_ = 0;
  int64_t produce_pos_ = 0;           // next batch index the worker prepares
  int64_t consume_pos_ = 0;           // next batch index next() returns
  int64_t end_pos_ = 0;               // batches_per_epoch()
  std::shared_ptr<const std::vector<int64_t>> order_;
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  std::thread worker_;
};

}  // namespace dl::data
