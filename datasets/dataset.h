// Datasets: the map-style interface every data format implements, subsets, the in-memory image
// dataset IDX files load into, and train / val / test splits.
//
//   auto splits = dl::data::load_idx_splits(dl::data::fashion_mnist_files(), /*val_size=*/5000);
//   splits.train->size();                  // 55000
//   splits.train->info().input_shape;      // {1, 28, 28}: what the model graph infers layer sizes from
//   Sample s = splits.train->get(0);       // {"input": u8 [1, 28, 28], "target": i64 []}
//
// Images stay u8 in memory (47 MB for Fashion-MNIST train instead of 188 MB as f32); the
// DataLoader's transforms convert each sample (to_float/normalize fold into one lookup table).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datasets/data_error.h"
#include "datasets/sample.h"
#include "engine/tensor/tensor.h"

namespace dl::data {

// A map-style dataset (torch.utils.data.Dataset): size() samples, get(i) one of them.
// Formats (datasets/format.h) return these; the DataLoader batches them. get() is called from
// several worker threads at once, so implementations must be thread-safe for reads.
class Dataset {
 public:
  explicit Dataset(std::string name) : name_(std::move(name)) {}
  virtual ~Dataset() = default;
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;

  virtual int64_t size() const = 0;
  // Sample i, 0 <= i < size(): "input" and, unless info().target_kind is none, "target".
  // Throws DataError naming the file and what is wrong (a corrupt image, a bad row).
  virtual Sample get(int64_t i) const = 0;
  virtual const DatasetInfo& info() const = 0;
  // The class of sample i without decoding its input (balanced sampling, class counts):
  // nullopt when the target is not a class index. The default calls get(i).
  virtual std::optional<int64_t> class_of(int64_t i) const;
  // Where sample i comes from, for messages: "train-images-idx3-ubyte.gz[17]",
  // "root/coat/0001.png", "wine.csv:18". The default: "<name>[i]".
  virtual std::string describe(int64_t i) const;

  const std::string& name() const { return name_; }  // "train", "val", "test"
  // std::out_of_range naming the dataset when i is outside [0, size()).
  void check_index(int64_t i) const;

 private:
  std::string name_;
};

using DatasetPtr = std::shared_ptr<const Dataset>;

// The samples `indices` of `base`, in that order (torch.utils.data.Subset). Shares base.
DatasetPtr subset(DatasetPtr base, std::vector<int64_t> indices, std::string name);

// In-memory image classification: u8 images [N, C, H, W] and i64 labels [N] (IDX files, small
// image folders loaded with in_memory). get(i) returns views, not copies.
class ImageDataset final : public Dataset {
 public:
  // Throws std::invalid_argument for wrong shapes/dtypes, DataError for an out-of-range label
  // (naming `name`). class_names: empty or num_classes names.
  ImageDataset(Tensor images, Tensor labels, int64_t num_classes, std::string name = "dataset",
               std::vector<std::string> class_names = {});

  int64_t size() const override { return images_.size(0); }
  Sample get(int64_t i) const override;
  const DatasetInfo& info() const override { return info_; }
  std::optional<int64_t> class_of(int64_t i) const override;

  Shape sample_shape() const { return info_.input_shape; }  // {C, H, W}
  int64_t channels() const { return images_.size(1); }
  int64_t num_classes() const { return info_.num_classes; }
  const Tensor& images() const { return images_; }  // u8 [N, C, H, W]
  const Tensor& labels() const { return labels_; }  // i64 [N]

  // Samples [begin, end) as a dataset sharing this one's memory (no copy).
  std::shared_ptr<const ImageDataset> range(int64_t begin, int64_t end, std::string name) const;

 private:
  Tensor images_;
  Tensor labels_;
  DatasetInfo info_;
};

// An images file (IDX u8 [N, H, W]) and its labels file (IDX u8 [N]).
struct IdxFiles {
  std::string images;
  std::string labels;
};

// Loads one IDX image/label pair. Checks rank, equal counts, at least one sample, and every
// label < num_classes; num_classes <= 0 means "max label + 1". Throws DataError naming the file.
std::shared_ptr<const ImageDataset> load_idx_dataset(const IdxFiles& files, int64_t num_classes,
                                                const std::string& name);

struct IdxSplitSpec {
  IdxFiles train;          // required
  IdxFiles test;           // both paths empty => no test split
  int64_t val_size = 0;    // validation = the LAST val_size samples of the training file
  int64_t num_classes = 10;  // <= 0: inferred from the training labels
};

struct Splits {
  DatasetPtr train;  // the training file minus the validation tail
  DatasetPtr val;    // null when there is no validation split
  DatasetPtr test;   // null when there is no test split
  // The split named "train", "val" or "test" (null when absent); std::invalid_argument otherwise.
  DatasetPtr get(const std::string& split) const;
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
