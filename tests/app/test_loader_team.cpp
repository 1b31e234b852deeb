// DataLoader with workers 0: next() prepares the batch's samples in parallel on the caller's
// OpenMP team (the compute threads), not on extra threads. Checked here: the team really shares
// the work, the batches are bit-identical for any team size and equal to the worker threads'
// batches, and a failing sample is reported as the sequential loop would (the first in batch
// order, after the batches before it).
#include <omp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "datasets/dataloader.h"
#include "datasets/dataset.h"
#include "datasets/transforms.h"

using namespace dl;
using namespace dl::data;
using Catch::Matchers::Contains;

namespace {

// Sets the OpenMP team size for a test and restores the previous one.
struct TeamSize {
  explicit TeamSize(int n) : saved(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~TeamSize() { omp_set_num_threads(saved); }
  int saved;
};

// n samples [1, 8, 8] whose pixels identify the sample; label i % 10.
std::shared_ptr<const ImageDataset> pixels_dataset(int64_t n) {
  Tensor images = empty({n, 1, 8, 8}, DType::U8);
  uint8_t* px = images.data<uint8_t>();
  for (int64_t i = 0; i < n * 64; ++i) px[i] = static_cast<uint8_t>((i * 37 + i / 64 * 11) % 256);
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = i % 10;
  return std::make_shared<const ImageDataset>(images, from_vector(labels, {n}), 10, "pixels");
}

// Wraps a dataset: records the threads get() runs on, fails for the rows in `bad`, and (with
// wait_for_second) holds the first get() until a second thread has entered one (at most 20 s),
// so a team that shares the batch is seen sharing it however the machine schedules threads.
class ProbeDataset final : public Dataset {
 public:
  ProbeDataset(DatasetPtr base, std::set<int64_t> bad, bool wait_for_second)
      : Dataset("probe"), base_(std::move(base)), bad_(std::move(bad)), wait_(wait_for_second) {}
  int64_t size() const override { return base_->size(); }
  const DatasetInfo& info() const override { return base_->info(); }
  Sample get(int64_t i) const override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      threads_.insert(std::this_thread::get_id());
      cv_.notify_all();
      if (wait_) cv_.wait_for(lock, std::chrono::seconds(20), [&] { return threads_.size() >= 2; });
    }
    if (bad_.count(i)) throw DataError("probe: sample " + std::to_string(i) + " is corrupt");
    return base_->get(i);
  }
  size_t thread_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_.size();
  }

 private:
  DatasetPtr base_;
  std::set<int64_t> bad_;
  bool wait_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable std::set<std::thread::id> threads_;
};

LoaderOptions augmenting(int64_t workers) {
  LoaderOptions o;
  o.batch_size = 16;
  o.shuffle = true;
  o.seed = 5;
  o.workers = workers;
  o.transform = TransformPipeline()
                    .add("random_crop", {{"size", int64_t{6}}, {"padding", std::vector<int64_t>{1}}})
                    .add("random_horizontal_flip", {})
                    .to_float()
                    .normalize({0.5}, {0.25});
  return o;
}

// Every batch of epoch `epoch` as (indices, input bytes, target bytes).
struct Batches {
  std::vector<std::vector<int64_t>> indices;
  std::vector<std::string> inputs, targets;
  bool operator==(const Batches&) const = default;
};
Batches epoch_batches(const DatasetPtr& ds, const LoaderOptions& o, int64_t epoch) {
  DataLoader loader(ds, o);
  loader.start_epoch(epoch);
  Batches r;
  while (auto b = loader.next()) {
    r.indices.push_back(b->indices);
    const Tensor x = b->input().contiguous(), y = b->target().contiguous();
    r.inputs.emplace_back(static_cast<const char*>(x.raw_data()), x.numel() * dtype_size(x.dtype()));
    r.targets.emplace_back(static_cast<const char*>(y.raw_data()), y.numel() * dtype_size(y.dtype()));
  }
  return r;
}

}  // namespace

TEST_CASE("DataLoader workers 0: the caller's OpenMP team prepares the batch", "[datasets][loader][omp]") {
  const DatasetPtr base = pixels_dataset(40);
  LoaderOptions o;
  o.batch_size = 16;
  o.workers = 0;
  SECTION("a team of 2 shares the samples") {
    TeamSize team(2);
    auto probe = std::make_shared<const ProbeDataset>(base, std::set<int64_t>{}, /*wait_for_second=*/true);
    DataLoader loader(probe, o);
    loader.start_epoch(0);
    REQUIRE(loader.next());
    CHECK(probe->thread_count() == 2);
  }
  SECTION("a team of 1: the calling thread only") {
    TeamSize team(1);
    auto probe = std::make_shared<const ProbeDataset>(base, std::set<int64_t>{}, /*wait_for_second=*/false);
    DataLoader loader(probe, o);
    loader.start_epoch(0);
    while (loader.next()) {
    }
    CHECK(probe->thread_count() == 1);
  }
}

TEST_CASE("DataLoader workers 0: the same batches for any team size and as worker threads",
          "[datasets][loader][omp]") {
  const DatasetPtr ds = pixels_dataset(100);
  Batches want;
  {
    TeamSize team(1);
    want = epoch_batches(ds, augmenting(0), 1);
  }
  REQUIRE(want.inputs.size() == 7);
  for (const int threads : {2, 3}) {
    INFO("team of " << threads);
    TeamSize team(threads);
    CHECK(epoch_batches(ds, augmenting(0), 1) == want);
  }
  TeamSize team(2);
  CHECK(epoch_batches(ds, augmenting(2), 1) == want);
  // The augmentation is on: another epoch's draws differ.
  CHECK(epoch_batches(ds, augmenting(0), 2).inputs != want.inputs);
}

TEST_CASE("DataLoader workers 0: a failing sample is reported in batch order, after the good batches",
          "[datasets][loader][omp][errors]") {
  TeamSize team(2);
  LoaderOptions o;
  o.batch_size = 16;
  o.workers = 0;
  // Rows 21 and 29 fail, both in batch 1: the first in batch order (21) is the error, however the
  // team's threads met them.
  auto probe = std::make_shared<const ProbeDataset>(pixels_dataset(40), std::set<int64_t>{29, 21}, false);
  DataLoader loader(probe, o);
  loader.start_epoch(0);
  REQUIRE(loader.next());
  for (int attempt = 0; attempt < 3; ++attempt) CHECK_THROWS_WITH(loader.next(), Contains("sample 21 is corrupt"));
  CHECK(loader.state() == LoaderState{0, 1, 0});
  loader.start_epoch(0, 2);  // the batch after the bad one loads
  auto last = loader.next();
  REQUIRE(last);
  CHECK(last->size() == 8);
}
