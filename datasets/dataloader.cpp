#include "datasets/dataloader.h"

#include <omp.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace dl::data {

Generator sample_generator(uint64_t seed, int64_t epoch, int64_t position) {
  // Its own stream per sample: the epoch's key mixed with the position (not the dataset
  // index, so a sample drawn twice with replacement gets two augmentations).
  return Generator(epoch_key(epoch_key(seed ^ 0x41554721ULL /* "AUG!" */, epoch), position));
}

DataLoader::DataLoader(DatasetPtr dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), opt_(std::move(options)), seed_(opt_.seed) {
  if (!dataset_) throw std::invalid_argument("DataLoader: dataset is null");
  if (opt_.batch_size < 1)
    throw std::invalid_argument("DataLoader: batch_size must be >= 1, got " + std::to_string(opt_.batch_size));
  if (opt_.workers < 0)
    throw std::invalid_argument("DataLoader: workers must be >= 0, got " + std::to_string(opt_.workers));
  if (opt_.prefetch < 0)
    throw std::invalid_argument("DataLoader: prefetch must be >= 0, got " + std::to_string(opt_.prefetch));
  if (opt_.prefetch == 0) opt_.workers = 0;
  sampler_ = opt_.sampler ? opt_.sampler
                          : (opt_.shuffle ? random_sampler(dataset_->size()) : sequential_sampler(dataset_->size()));
  const DatasetInfo& info = dataset_->info();
  // A sample shape known up front is checked against the transforms now, not at the first batch.
  const bool known = !info.input_shape.empty() &&
                     std::none_of(info.input_shape.begin(), info.input_shape.end(), [](int64_t d) { return d < 0; });
  if (known && info.input_shape.size() == 3 && !opt_.transform.empty()) opt_.transform.out_shape(info.input_shape);
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  ready_cv_.notify_all();
  for (std::thread& t : workers_)
    if (t.joinable()) t.join();
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = sampler_->length(), bs = opt_.batch_size;
  return opt_.drop_last ? n / bs : (n + bs - 1) / bs;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const { return sampler_->epoch_indices(seed_, epoch); }

void DataLoader::start_epoch(int64_t epoch, int64_t skip_batches) {
  if (epoch < 0) throw std::invalid_argument("DataLoader::start_epoch: epoch must be >= 0, got " + std::to_string(epoch));
  const int64_t nb = batches_per_epoch();
  if (skip_batches < 0 || skip_batches > nb)
    throw std::invalid_argument("DataLoader: cannot start epoch " + std::to_string(epoch) + " at batch " +
                                std::to_string(skip_batches) + ": an epoch of dataset '" + dataset_->name() +
                                "' has " + std::to_string(nb) + " batches (" + std::to_string(size()) +
                                " samples, batch_size " + std::to_string(opt_.batch_size) +
                                (opt_.drop_last ? ", drop_last" : "") + ")");
  auto order = std::make_shared<const std::vector<int64_t>>(epoch_order(epoch));
  std::map<int64_t, Batch> stale;  // freed outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
    stale.swap(ready_);
    error_ = nullptr;
    error_pos_ = -1;
    epoch_ = epoch;
    order_seed_ = seed_;
    produce_pos_ = consume_pos_ = skip_batches;
    end_pos_ = nb;
    order_ = std::move(order);
    started_ = true;
  }
  while (static_cast<int64_t>(workers_.size()) < opt_.workers) workers_.emplace_back(&DataLoader::worker_loop, this);
  work_cv_.notify_all();
}

std::optional<Batch> DataLoader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!started_) throw std::logic_error("DataLoader::next: call start_epoch (or set_state) first");
  if (consume_pos_ >= end_pos_) return std::nullopt;
  if (opt_.workers == 0) {
    const int64_t index = consume_pos_, epoch = epoch_;
    const uint64_t seed = order_seed_;
    auto order = order_;
    lock.unlock();
    Batch b = make_batch(*order, seed, epoch, index, /*in_team=*/true);  // exceptions reach the caller directly
    lock.lock();
    consume_pos_ = index + 1;
    return b;
  }
  // Batches before a failed one are delivered first; then the error, on every call until the
  // next start_epoch.
  ready_cv_.wait(lock, [&] { return ready_.count(consume_pos_) || (error_ && error_pos_ == consume_pos_); });
  auto it = ready_.find(consume_pos_);
  if (it == ready_.end()) std::rethrow_exception(error_);
  Batch b = std::move(it->second);
  ready_.erase(it);
  ++consume_pos_;
  lock.unlock();
  work_cv_.notify_all();
  return b;
}

LoaderState DataLoader::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {epoch_, consume_pos_, seed_};
}

void DataLoader::set_state(const LoaderState& state) {
  // The seed changes only the order of epochs started from now on; start_epoch rebuilds it.
  const uint64_t old_seed = seed_;
  seed_ = state.seed;
  try {
    start_epoch(state.epoch, state.batch_in_epoch);
  } catch (...) {
    seed_ = old_seed;
    throw;
  }
}

Sample DataLoader::make_sample(int64_t row, uint64_t seed, int64_t epoch, int64_t position) const {
  Sample s = dataset_->get(row);
  if (Tensor* x = s.find(kInput); x && !opt_.transform.empty()) {
    Generator rng = sample_generator(seed, epoch, position);
    try {
      *x = opt_.transform(*x, rng);
    } catch (const std::invalid_argument& e) {
      throw DataError("transforms of " + dataset_->describe(row) + ": " + e.what());
    }
  }
  return s;
}

Batch DataLoader::make_batch(const std::vector<int64_t>& order, uint64_t seed, int64_t epoch, int64_t index,
                             bool in_team) const {
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t start = index * opt_.batch_size;
  const int64_t count = std::min(opt_.batch_size, n - start);
  Batch b;
  b.index_in_epoch = index;
  b.indices.assign(order.begin() + start, order.begin() + start + count);
  std::vector<Sample> samples(static_cast<size_t>(count));
  if (in_team && count > 1 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
    // The samples are independent (each has its own generator): the compute threads' team
    // prepares them, and the first failure in batch order is the error, as in the loop below.
    std::vector<std::exception_ptr> errors(static_cast<size_t>(count));
#pragma omp parallel for schedule(dynamic)
    for (int64_t k = 0; k < count; ++k) {
      try {
        samples[static_cast<size_t>(k)] = make_sample(b.indices[static_cast<size_t>(k)], seed, epoch, start + k);
      } catch (...) {
        errors[static_cast<size_t>(k)] = std::current_exception();
      }
    }
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
  } else {
    for (int64_t k = 0; k < count; ++k)
      samples[static_cast<size_t>(k)] = make_sample(b.indices[static_cast<size_t>(k)], seed, epoch, start + k);
  }
  try {
    b.tensors = collate(samples, opt_.pad_value);
  } catch (const std::invalid_argument& e) {
    // Name the files: the first sample whose input shape differs from the batch's first.
    std::string where = dataset_->describe(b.indices.front());
    const Tensor* first = samples.front().find(kInput);
    for (size_t k = 1; first && k < samples.size(); ++k)
      if (const Tensor* t = samples[k].find(kInput); t && t->shape() != first->shape()) {
        where += " is " + shape_str(first->shape()) + " but " + dataset_->describe(b.indices[k]) + " is " +
                 shape_str(t->shape());
        break;
      }
    throw DataError("batch " + std::to_string(index) + " of dataset '" + dataset_->name() + "' (" + where +
                    "): " + e.what());
  }
  if (opt_.batch_hook) opt_.batch_hook(b);
  return b;
}

void DataLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // A worker takes the next batch while fewer than workers * prefetch are prepared or in
    // preparation ahead of the consumer.
    work_cv_.wait(lock, [&] {
      return stop_ || (started_ && !error_ && produce_pos_ < end_pos_ &&
                       produce_pos_ - consume_pos_ < opt_.workers * opt_.prefetch);
    });
    if (stop_) return;
    const uint64_t generation = generation_;
    const int64_t index = produce_pos_++, epoch = epoch_;
    const uint64_t seed = order_seed_;
    auto order = order_;
    lock.unlock();

    std::optional<Batch> batch;
    std::exception_ptr error;
    try {
      batch = make_batch(*order, seed, epoch, index, /*in_team=*/false);
    } catch (...) {
      error = std::current_exception();
    }

    lock.lock();
    if (generation != generation_) {  // start_epoch moved on while this batch was prepared
      lock.unlock();
      batch.reset();
      lock.lock();
      continue;
    }
    if (!error) {
      try {
        ready_.emplace(index, std::move(*batch));
      } catch (...) {
        error = std::current_exception();
      }
    }
    // The earliest failure wins: batches before it are still delivered.
    if (error && (!error_ || index < error_pos_)) error_ = error, error_pos_ = index;
    ready_cv_.notify_all();
  }
}

}  // namespace dl::data
