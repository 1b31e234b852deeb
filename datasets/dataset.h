// In-memory classification datasets and their train / val / test splits.
//
//   auto splits = dl::data::load_idx_splits(dl::data::fashion_mnist_files(), /*val_size=*/5000);
//   splits.train->size();          // 55000
//   splits.train->sample_shape();  // {1, 28, 28}: what the model graph infers layer sizes from
//
// Images stay u8 in memory (47 MB for Fashion-MNIST train instead of 188 MB as f32); the
// DataLoader converts each batch with a fused to_float/normalize (datasets/transforms.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "datasets/data_error.h"
#include "engine/tensor/tensor.h"

namespace dl::data {

class Dataset {
 public:
  // images: u8 [N, C, H, W], contiguous; labels: i64 [N], contiguous, each in [0, num_classes).
  // Throws std::invalid_argument for wrong shapes/dtypes, DataError for an out-of-range label
  // (naming `name`).
  Dataset(Tensor images, Tensor labels, int64_t num_classes, std::string name = "dataset");

  int64_t size() const { return images_.size(0); }
  Shape sample_shape() const { return {images_.size(1), images_.size(2), images_.size(3)}; }  // {C, H, W}
  int64_t channels() const { return images_.size(1); }
  int64_t sample_numel() const { return images_.size(1) * images_.size(2) * images_.size(3); }
  int64_t num_classes() const { return num_classes_; }
  const Tensor& images() const { return images_; }  // u8 [N, C, H, W]
  const Tensor& labels() const { return labels_; }  // i64 [N]
  const std::string& name() const { return name_; }

  // Samples [begin, end) as a dataset sharing this one's memory (no copy).
  std::shared_ptr<const Dataset> range(int64_t begin, int64_t end, std::string name) const;

 private:
  Tensor images_;
  Tensor labels_;
  int64_t num_classes_;
  std::string name_;
};

// An images file (IDX u8 [N, H, W]) and its labels file (IDX u8 [N]).
struct IdxFiles {
  std::string images;
  std::string labels;
};

// Loads one IDX image/label pair. Checks rank, equal counts, at least one sample, and every
// label < num_classes; num_classes <= 0 means "max label + 1". Throws DataError naming the file.
std::shared_ptr<const Dataset> load_idx_dataset(const IdxFiles& files, int64_t num_classes,
                                                const std::string& name);

struct IdxSplitSpec {
  IdxFiles train;          // required
  IdxFiles test;           // both paths empty => no test split
  int64_t val_size = 0;    // validation = the LAST val_size samples of the training file
  int64_t num_classes = 10;  // <= 0: inferred from the training labels
};

struct Splits {
  std::shared_ptr<const Dataset> train;  // the training file minus the validation tail
  std::shared_ptr<const Dataset> val;    // null when val_size == 0
  std::shared_ptr<const Dataset> test;   // null when no test files
  int64_t num_classes = 0;
};

// Loads the files (train and test concurrently) and splits off the validation tail.
// val_size < 0 is std::invalid_argument; val_size >= the training file's size is a DataError
// (no training samples would be left).
Splits load_idx_splits(const IdxSplitSpec& spec);

// Where Debian's dataset-fashion-mnist package installs the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// The standard file names {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz under `dir`.
IdxSplitSpec fashion_mnist_files(const std::string& dir = kFashionMnistDir, int64_t val_size = 0);

}  // namespace dl::data
