#include "datasets/dataset.h"

#include <future>
#include <stdexcept>

#include "datasets/idx.h"

namespace dl::data {
namespace {

// Index of the first label outside [0, num_classes), or -1.
int64_t first_bad_label(const Tensor& labels, int64_t num_classes) {
  const int64_t* p = labels.data<int64_t>();
  for (int64_t i = 0, n = labels.numel(); i < n; ++i)
    if (p[i] < 0 || p[i] >= num_classes) return i;
  return -1;
}

void check_labels(const Tensor& labels, int64_t num_classes, const std::string& who) {
  int64_t i = first_bad_label(labels, num_classes);
  if (i >= 0)
    throw DataError(who + ": label " + std::to_string(labels.data<int64_t>()[i]) + " at index " + std::to_string(i) +
                    " is out of range for " + std::to_string(num_classes) + " classes (expected 0.." +
                    std::to_string(num_classes - 1) + ")");
}

// A loaded but not yet validated-against-num_classes image/label pair.
struct RawPair {
  Tensor images;  // u8 [N, 1, H, W]
  Tensor labels;  // i64 [N]
  int64_t max_label = -1;
};

RawPair load_pair(const IdxFiles& files) {
  Tensor img = read_idx_u8(files.images, 3, "images");   // u8 [N, H, W]
  Tensor lab = read_idx_u8(files.labels, 1, "labels");   // u8 [N]
  const int64_t n = img.size(0);
  if (lab.size(0) != n)
    throw DataError("'" + files.images + "' has " + std::to_string(n) + " images but '" + files.labels + "' has " +
                    std::to_string(lab.size(0)) + " labels (the counts must match)");
  if (n == 0) throw DataError("'" + files.images + "' (images): contains no samples");
  if (img.size(1) == 0 || img.size(2) == 0)
    throw DataError("'" + files.images + "' (images): empty image size " + shape_str(img.shape()));
  RawPair r;
  r.images = img.view({n, 1, img.size(1), img.size(2)});
  r.labels = empty({n}, DType::I64);
  const uint8_t* src = lab.data<uint8_t>();
  int64_t* dst = r.labels.data<int64_t>();
  int64_t mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = src[i];
    if (src[i] > mx) mx = src[i];
  }
  r.max_label = mx;
  return r;
}

}  // namespace

std::optional<int64_t> Dataset::class_of(int64_t i) const {
  if (info().target_kind != TargetKind::class_index) return std::nullopt;
  const Sample s = get(i);
  const Tensor& t = s.at(kTarget);
  if (t.numel() != 1) return std::nullopt;
  return t.dtype() == DType::I64 ? t.data<int64_t>()[0] : static_cast<int64_t>(t.to(DType::I64).data<int64_t>()[0]);
}

std::string Dataset::describe(int64_t i) const { return name_ + "[" + std::to_string(i) + "]"; }

void Dataset::check_index(int64_t i) const {
  if (i < 0 || i >= size())
    throw std::out_of_range("dataset '" + name_ + "': index " + std::to_string(i) + " is out of range for " +
                            std::to_string(size()) + " samples");
}

namespace {

class SubsetDataset final : public Dataset {
 public:
  SubsetDataset(DatasetPtr base, std::vector<int64_t> indices, std::string name)
      : Dataset(std::move(name)), base_(std::move(base)), indices_(std::move(indices)) {}
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Sample get(int64_t i) const override { return base_->get(row(i)); }
  const DatasetInfo& info() const override { return base_->info(); }
  std::optional<int64_t> class_of(int64_t i) const override { return base_->class_of(row(i)); }
  std::string describe(int64_t i) const override { return base_->describe(row(i)); }

 private:
  int64_t row(int64_t i) const {
    check_index(i);
    return indices_[static_cast<size_t>(i)];
  }
  DatasetPtr base_;
  std::vector<int64_t> indices_;
};

}  // namespace

DatasetPtr subset(DatasetPtr base, std::vector<int64_t> indices, std::string name) {
  if (!base) throw std::invalid_argument("subset: dataset is null");
  for (int64_t i : indices)
    if (i < 0 || i >= base->size())
      throw std::out_of_range("subset '" + name + "': index " + std::to_string(i) + " is out of range for dataset '" +
                              base->name() + "' of " + std::to_string(base->size()) + " samples");
  return std::make_shared<const SubsetDataset>(std::move(base), std::move(indices), std::move(name));
}

DatasetPtr Splits::get(const std::string& split) const {
  if (split == "train") return train;
  if (split == "val") return val;
  if (split == "test") return test;
  throw std::invalid_argument("unknown split '" + split + "' (train, val, test)");
}

ImageDataset::ImageDataset(Tensor images, Tensor labels, int64_t num_classes, std::string name,
                           std::vector<std::string> class_names)
    : Dataset(std::move(name)), images_(std::move(images)), labels_(std::move(labels)) {
  const std::string& nm = this->name();
  if (!images_.defined() || images_.dtype() != DType::U8 || images_.dim() != 4 || !images_.is_contiguous() ||
      !images_.device().is_cpu())
    throw std::invalid_argument("Dataset '" + nm + "': images must be a contiguous u8 [N, C, H, W] cpu tensor, got " +
                                (images_.defined() ? images_.str() : std::string("undefined")));
  if (!labels_.defined() || labels_.dtype() != DType::I64 || labels_.dim() != 1 || !labels_.is_contiguous() ||
      !labels_.device().is_cpu())
    throw std::invalid_argument("Dataset '" + nm + "': labels must be a contiguous i64 [N] cpu tensor, got " +
                                (labels_.defined() ? labels_.str() : std::string("undefined")));
  if (labels_.size(0) != images_.size(0))
    throw std::invalid_argument("Dataset '" + nm + "': " + std::to_string(images_.size(0)) + " images but " +
                                std::to_string(labels_.size(0)) + " labels");
  if (num_classes <= 0)
    throw std::invalid_argument("Dataset '" + nm + "': num_classes must be positive, got " + std::to_string(num_classes));
  if (!class_names.empty() && static_cast<int64_t>(class_names.size()) != num_classes)
    throw std::invalid_argument("Dataset '" + nm + "': " + std::to_string(class_names.size()) + " class names for " +
                                std::to_string(num_classes) + " classes");
  check_labels(labels_, num_classes, "dataset '" + nm + "'");
  info_.input_shape = {images_.size(1), images_.size(2), images_.size(3)};
  info_.input_dtype = DType::U8;
  info_.target_kind = TargetKind::class_index;
  info_.target_shape = {};
  info_.num_classes = num_classes;
  info_.class_names = std::move(class_names);
}

Sample ImageDataset::get(int64_t i) const {
  check_index(i);
  Sample s;
  s.set(kInput, images_.select(0, i));
  s.set(kTarget, labels_.select(0, i));
  return s;
}

std::optional<int64_t> ImageDataset::class_of(int64_t i) const {
  check_index(i);
  return labels_.data<int64_t>()[i];
}

std::shared_ptr<const ImageDataset> ImageDataset::range(int64_t begin, int64_t end, std::string name) const {
  if (begin < 0 || end > size() || begin > end)
    throw std::invalid_argument("Dataset '" + this->name() + "'.range(" + std::to_string(begin) + ", " +
                                std::to_string(end) + "): out of bounds for " + std::to_string(size()) + " samples");
  return std::make_shared<const ImageDataset>(images_.narrow(0, begin, end - begin), labels_.narrow(0, begin, end - begin),
                                              info_.num_classes, std::move(name), info_.class_names);
}

std::shared_ptr<const ImageDataset> load_idx_dataset(const IdxFiles& files, int64_t num_classes, const std::string& name) {
  RawPair r = load_pair(files);
  if (num_classes <= 0) num_classes = r.max_label + 1;
  check_labels(r.labels, num_classes, "'" + files.labels + "' (labels)");
  return std::make_shared<const ImageDataset>(r.images, r.labels, num_classes, name);
}

Splits load_idx_splits(const IdxSplitSpec& spec) {
  if (spec.val_size < 0)
    throw std::invalid_argument("val_size must be >= 0, got " + std::to_string(spec.val_size));
  if (spec.train.images.empty() || spec.train.labels.empty())
    throw std::invalid_argument("load_idx_splits: the training images and labels paths are required");
  const bool has_test = !spec.test.images.empty() || !spec.test.labels.empty();
  if (has_test && (spec.test.images.empty() || spec.test.labels.empty()))
    throw std::invalid_argument("load_idx_splits: give both test images and test labels, or neither");

  // The test files decompress on a second thread while the training files load here.
  std::future<RawPair> test_future;
  if (has_test) test_future = std::async(std::launch::async, load_pair, spec.test);
  RawPair train;
  try {
    train = load_pair(spec.train);
  } catch (...) {
    if (test_future.valid()) test_future.wait();
    throw;
  }
  RawPair test;
  if (has_test) test = test_future.get();

  Splits s;
  const int64_t num_classes = spec.num_classes > 0 ? spec.num_classes : std::max(train.max_label, test.max_label) + 1;
  check_labels(train.labels, num_classes, "'" + spec.train.labels + "' (labels)");
  if (has_test) {
    check_labels(test.labels, num_classes, "'" + spec.test.labels + "' (labels)");
    Shape a(train.images.shape().begin() + 1, train.images.shape().end());
    Shape b(test.images.shape().begin() + 1, test.images.shape().end());
    if (a != b)
      throw DataError("'" + spec.test.images + "' (images): sample shape " + shape_str(b) +
                      " differs from the training images' " + shape_str(a) + " ('" + spec.train.images + "')");
  }

  auto full = std::make_shared<const ImageDataset>(train.images, train.labels, num_classes, "train");
  const int64_t n = full->size();
  if (spec.val_size >= n)
    throw DataError("'" + spec.train.images + "': val_size " + std::to_string(spec.val_size) +
                    " leaves no training samples (the file has " + std::to_string(n) + ")");
  if (spec.val_size > 0) {
    s.train = full->range(0, n - spec.val_size, "train");
    s.val = full->range(n - spec.val_size, n, "val");
  } else {
    s.train = full;
  }
  if (has_test) s.test = std::make_shared<const ImageDataset>(test.images, test.labels, num_classes, "test");
  return s;
}

IdxSplitSpec fashion_mnist_files(const std::string& dir, int64_t val_size) {
  IdxSplitSpec s;
  s.train = {dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz"};
  s.test = {dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz"};
  s.val_size = val_size;
  s.num_classes = 10;
  return s;
}

}  // namespace dl::data
