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

Dataset::Dataset(Tensor images, Tensor labels, int64_t num_classes, std::string name)
    : images_(std::move(images)), labels_(std::move(labels)), num_classes_(num_classes), name_(std::move(name)) {
  if (!images_.defined() || images_.dtype() != DType::U8 || images_.dim() != 4 || !images_.is_contiguous() ||
      !images_.device().is_cpu())
    throw std::invalid_argument("Dataset '" + name_ + "': images must be a contiguous u8 [N, C, H, W] cpu tensor, got " +
                                (images_.defined() ? images_.str() : std::string("undefined")));
  if (!labels_.defined() || labels_.dtype() != DType::I64 || labels_.dim() != 1 || !labels_.is_contiguous() ||
      !labels_.device().is_cpu())
    throw std::invalid_argument("Dataset '" + name_ + "': labels must be a contiguous i64 [N] cpu tensor, got " +
                                (labels_.defined() ? labels_.str() : std::string("undefined")));
  if (labels_.size(0) != images_.size(0))
    throw std::invalid_argument("Dataset '" + name_ + "': " + std::to_string(images_.size(0)) + " images but " +
                                std::to_string(labels_.size(0)) + " labels");
  if (num_classes_ <= 0)
    throw std::invalid_argument("Dataset '" + name_ + "': num_classes must be positive, got " +
                                std::to_string(num_classes_));
  check_labels(labels_, num_classes_, "dataset '" + name_ + "'");
}

std::shared_ptr<const Dataset> Dataset::range(int64_t begin, int64_t end, std::string name) const {
  if (begin < 0 || end > size() || begin > end)
    throw std::invalid_argument("Dataset '" + name_ + "'.range(" + std::to_string(begin) + ", " + std::to_string(end) +
                                "): out of bounds for " + std::to_string(size()) + " samples");
  return std::make_shared<const Dataset>(images_.narrow(0, begin, end - begin), labels_.narrow(0, begin, end - begin),
                                         num_classes_, std::move(name));
}

std::shared_ptr<const Dataset> load_idx_dataset(const IdxFiles& files, int64_t num_classes, const std::string& name) {
  RawPair r = load_pair(files);
  if (num_classes <= 0) num_classes = r.max_label + 1;
  check_labels(r.labels, num_classes, "'" + files.labels + "' (labels)");
  return std::make_shared<const Dataset>(r.images, r.labels, num_classes, name);
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
  s.num_classes = spec.num_classes > 0 ? spec.num_classes : std::max(train.max_label, test.max_label) + 1;
  check_labels(train.labels, s.num_classes, "'" + spec.train.labels + "' (labels)");
  if (has_test) {
    check_labels(test.labels, s.num_classes, "'" + spec.test.labels + "' (labels)");
    Shape a(train.images.shape().begin() + 1, train.images.shape().end());
    Shape b(test.images.shape().begin() + 1, test.images.shape().end());
    if (a != b)
      throw DataError("'" + spec.test.images + "' (images): sample shape " + shape_str(b) +
                      " differs from the training images' " + shape_str(a) + " ('" + spec.train.images + "')");
  }

  auto full = std::make_shared<const Dataset>(train.images, train.labels, s.num_classes, "train");
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
  if (has_test) s.test = std::make_shared<const Dataset>(test.images, test.labels, s.num_classes, "test");
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
