#include "datasets/dataloader.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "engine/ops/random.h"

namespace dl::data {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

// A key of its own (not `seed` itself), so the shuffle stream does not overlap the stream a
// model initialised from Generator(seed) draws from.
uint64_t shuffle_key(uint64_t seed, int64_t epoch) {
  return splitmix64(splitmix64(seed ^ 0x5348554646'4c4500ULL /* "SHUFFLE" */) + static_cast<uint64_t>(epoch));
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), opt_(std::move(options)), seed_(opt_.seed) {
  if (!dataset_) throw std::invalid_argument("DataLoader: dataset is null");
  if (opt_.batch_size < 1)
    throw std::invalid_argument("DataLoader: batch_size must be >= 1, got " + std::to_string(opt_.batch_size));
  if (opt_.prefetch < 0)
    throw std::invalid_argument("DataLoader: prefetch must be >= 0, got " + std::to_string(opt_.prefetch));
  transform_ = opt_.transform.compile(dataset_->channels());
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  ready_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = dataset_->size(), bs = opt_.batch_size;
  return opt_.drop_last ? n / bs : (n + bs - 1) / bs;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  const int64_t n = dataset_->size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  if (!opt_.shuffle) {
    std::iota(order.begin(), order.end(), int64_t(0));
    return order;
  }
  Generator gen(shuffle_key(seed_, epoch));
  Tensor perm = randperm(n, gen);  // i64 [n]
  const int64_t* p = perm.data<int64_t>();
  std::copy(p, p + n, order.begin());
  return order;
}

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
  std::deque<Batch> stale;  // freed outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
    stale.swap(queue_);
    error_ = nullptr;
    epoch_ = epoch;
    produce_pos_ = consume_pos_ = skip_batches;
    end_pos_ = nb;
    order_ = std::move(order);
    started_ = true;
  }
  if (opt_.prefetch > 0 && !worker_.joinable()) worker_ = std::thread(&DataLoader::worker_loop, this);
  work_cv_.notify_all();
}

std::optional<Batch> DataLoader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!started_) throw std::logic_error("DataLoader::next: call start_epoch (or set_state) first");
  if (consume_pos_ >= end_pos_) return std::nullopt;
  if (opt_.prefetch == 0) {
    const int64_t index = consume_pos_;
    auto order = order_;
    lock.unlock();
    Batch b = make_batch(*order, index);  // exceptions reach the caller directly
    lock.lock();
    consume_pos_ = index + 1;
    return b;
  }
  ready_cv_.wait(lock, [&] { return !queue_.empty() || error_; });
  // Batches prepared before a failure are delivered first; then the error, on every call
  // until the next start_epoch.
  if (queue_.empty()) std::rethrow_exception(error_);
  Batch b = std::move(queue_.front());
  queue_.pop_front();
  ++consume_pos_;
  lock.unlock();
  work_cv_.notify_one();
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

Batch DataLoader::make_batch(const std::vector<int64_t>& order, int64_t index) const {
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t start = index * opt_.batch_size;
  const int64_t count = std::min(opt_.batch_size, n - start);
  const Shape s = dataset_->sample_shape();  // {C, H, W}
  Batch b;
  b.index_in_epoch = index;
  b.indices.assign(order.begin() + start, order.begin() + start + count);
  b.images = empty({count, s[0], s[1], s[2]}, DType::F32);  // f32 [B, C, H, W]
  b.labels = empty({count}, DType::I64);                    // i64 [B]
  transform_.gather(dataset_->images(), b.indices.data(), count, b.images.data<float>());
  const int64_t* src = dataset_->labels().data<int64_t>();
  int64_t* dst = b.labels.data<int64_t>();
  for (int64_t i = 0; i < count; ++i) dst[i] = src[b.indices[static_cast<size_t>(i)]];
  if (opt_.batch_hook) opt_.batch_hook(b);
  return b;
}

void DataLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] {
      return stop_ || (started_ && !error_ && produce_pos_ < end_pos_ &&
                       static_cast<int64_t>(queue_.size()) < opt_.prefetch);
    });
    if (stop_) return;
    const uint64_t generation = generation_;
    const int64_t index = produce_pos_++;
    auto order = order_;
    lock.unlock();

    std::optional<Batch> batch;
    std::exception_ptr error;
    try {
      batch = make_batch(*order, index);
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
        queue_.push_back(std::move(*batch));
      } catch (...) {
        error = std::current_exception();
      }
    }
    if (error) error_ = error;
    ready_cv_.notify_all();
  }
}

}  // namespace dl::data
