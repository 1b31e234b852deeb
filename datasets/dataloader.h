// DataLoader (torch.utils.data.DataLoader): batches of a Dataset in a Sampler's order, samples
// transformed and collated by worker threads.
//
//   DataLoader loader(splits.train, {.batch_size = 128, .shuffle = true, .seed = 42, .workers = 2});
//   for (int64_t epoch = start; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     while (auto batch = loader.next()) {   // batch->input() f32 [B, C, H, W], target() i64 [B]
//       ...
//     }
//   }
//
// Order: epoch e visits sampler.epoch_indices(seed, e) (sampler.h: a pure function of seed and
// epoch), cut into batches. state() = {epoch, batch_in_epoch, seed} is everything a checkpoint
// must store: set_state() resumes exactly, yielding batches batch_in_epoch.. of that epoch.
//
// Workers: `workers` threads each prepare whole batches (get + transforms + collate +
// batch_hook), at most workers * prefetch ready batches queued; next() returns them in order.
// A sample's random transforms draw from sample_generator(seed, epoch, position in the epoch),
// so the batches are the same for any number of workers, and after a resume.
// An exception on a worker (a corrupt file, a failing hook, out of memory) is rethrown by the
// next() call that reaches the failing batch, after the batches before it. Destroying the
// loader at any moment stops and joins the workers. workers = 0 prepares batches inside next(),
// their samples in parallel on the caller's OpenMP team (the compute threads, train.threads):
// no extra threads competing with the model's for the cores, and the same batches.
//
// One consumer thread: next(), start_epoch() and set_state() must not be called concurrently.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <map>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "datasets/transforms.h"

namespace dl::data {

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = false;          // without a sampler: random (true) or sequential (false) order
  bool drop_last = false;        // drop the final batch when it would be smaller than batch_size
  uint64_t seed = 0;
  int64_t workers = 1;           // threads preparing batches; 0 = next() prepares the batch itself
                                 // (on the caller's OpenMP team)
  int64_t prefetch = 2;          // ready batches queued per worker; 0 = no worker threads either
  SamplerPtr sampler;            // null: random_sampler / sequential_sampler per `shuffle`
  // Applied to each sample's "input" (augment + transforms of the split).
  TransformPipeline transform = TransformPipeline().to_float();
  double pad_value = 0;          // collate's padding of variable-length tensors
  // Runs for each batch after collation, on the worker thread (on the caller's with workers
  // 0): e.g. a copy to pinned/device memory. Its exceptions propagate to next().
  std::function<void(Batch&)> batch_hook;
};

struct LoaderState {
  int64_t epoch = 0;
  int64_t batch_in_epoch = 0;    // batches already returned by next() in this epoch
  uint64_t seed = 0;
  bool operator==(const LoaderState&) const = default;
};

// The generator of the sample at `position` (0-based) of epoch `epoch`'s order.
Generator sample_generator(uint64_t seed, int64_t epoch, int64_t position);

class DataLoader {
 public:
  // Throws std::invalid_argument for batch_size < 1, workers < 0, prefetch < 0, a null
  // dataset, or a transform that does not fit the dataset's sample shape.
  DataLoader(DatasetPtr dataset, LoaderOptions options);
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
  int64_t size() const { return sampler_->length(); }  // samples per epoch
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return opt_; }

  LoaderState state() const;
  // Adopts state.seed and starts state.epoch at state.batch_in_epoch.
  void set_state(const LoaderState& state);
  // The sample order of an epoch (what the batches of that epoch concatenate to, before
  // drop_last): the sampler's list. Pure: does not touch the loader's position.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  // One sample: get + transforms under sample_generator(seed, epoch, position).
  Sample make_sample(int64_t row, uint64_t seed, int64_t epoch, int64_t position) const;
  // Batch `index` of `order`; in_team: its samples in parallel on the caller's OpenMP team.
  Batch make_batch(const std::vector<int64_t>& order, uint64_t seed, int64_t epoch, int64_t index, bool in_team) const;
  void worker_loop();

  DatasetPtr dataset_;
  LoaderOptions opt_;
  SamplerPtr sampler_;
  uint64_t seed_;  // options.seed until set_state; read and written by the consumer thread only

  // Everything below is guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // the worker waits for work / queue space
  std::condition_variable ready_cv_;  // the consumer waits for a batch or an error
  bool started_ = false;              // an epoch has been started
  bool stop_ = false;
  uint64_t generation_ = 0;           // bumped by start_epoch: stale worker output is dropped
  int64_t epoch_ = 0;
  uint64_t order_seed_ = 0;           // the seed epoch_'s order and augmentations come from
  int64_t produce_pos_ = 0;           // next batch index a worker takes
  int64_t consume_pos_ = 0;           // next batch index next() returns
  int64_t end_pos_ = 0;               // batches_per_epoch()
  std::shared_ptr<const std::vector<int64_t>> order_;
  std::map<int64_t, Batch> ready_;    // prepared batches by index (workers finish out of order)
  int64_t error_pos_ = -1;            // the batch index whose preparation failed
  std::exception_ptr error_;
  std::vector<std::thread> workers_;
};

}  // namespace dl::data
