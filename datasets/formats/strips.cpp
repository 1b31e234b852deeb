// data.format: fashion_strips — 1 to max_len IDX images side by side, target = their classes
// (datasets/formats/strips.h says how the strips are drawn).
#include "datasets/formats/strips.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <stdexcept>
#include <string>

#include "datasets/dataset.h"
#include "datasets/format.h"
#include "datasets/idx.h"

namespace dl::data {
namespace {

using A = AttrSchema;

// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast and easy to reproduce in any language.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t operator()() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace

StripPlan plan_strips(int64_t num_images, int64_t num_strips, int64_t max_len, uint64_t seed, uint64_t stream) {
  if (num_images < 1 || num_strips < 0 || max_len < 1)
    throw std::invalid_argument("plan_strips: need num_images >= 1, num_strips >= 0 and max_len >= 1, got " +
                                std::to_string(num_images) + ", " + std::to_string(num_strips) + ", " +
                                std::to_string(max_len));
  SplitMix64 rng(seed ^ (stream << 32));
  std::vector<int64_t> perm(static_cast<size_t>(num_images));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  size_t next = perm.size();  // used up: shuffled before the first draw
  StripPlan plan;
  plan.offsets.reserve(static_cast<size_t>(num_strips) + 1);
  plan.offsets.push_back(0);
  for (int64_t i = 0; i < num_strips; ++i) {
    const int64_t len = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(max_len));
    for (int64_t k = 0; k < len; ++k) {
      if (next == perm.size()) {
        for (size_t j = perm.size() - 1; j > 0; --j) std::swap(perm[j], perm[rng() % (j + 1)]);
        next = 0;
      }
      plan.images.push_back(perm[next++]);
    }
    plan.offsets.push_back(static_cast<int64_t>(plan.images.size()));
  }
  return plan;
}

namespace {

// Strips over an in-memory IDX dataset: get(i) composes the strip (a few KB) on the fly.
class StripsDataset final : public Dataset {
 public:
  // `source` holds the images [first_image, first_image + source->size()) of `file`; the plan's
  // indices count from its first.
  StripsDataset(std::shared_ptr<const ImageDataset> source, StripPlan plan, int64_t max_len, std::string file,
                int64_t first_image, std::vector<std::string> class_names, std::string name)
      : Dataset(std::move(name)), source_(std::move(source)), plan_(std::move(plan)), max_len_(max_len),
        file_(std::move(file)), first_image_(first_image) {
    const Shape img = source_->sample_shape();  // {C, H, W}
    info_.input_shape = {img[0], img[1], img[2] * max_len_};
    info_.input_dtype = DType::U8;
    info_.target_kind = TargetKind::sequence;
    info_.target_shape = {-1};
    info_.num_classes = source_->num_classes();
    info_.class_names = std::move(class_names);
  }

  int64_t size() const override { return static_cast<int64_t>(plan_.offsets.size()) - 1; }
  const DatasetInfo& info() const override { return info_; }

  Sample get(int64_t i) const override {
    check_index(i);
    const Shape img = source_->sample_shape();
    const int64_t C = img[0], H = img[1], W = img[2], SW = W * max_len_;
    const int64_t b = plan_.offsets[static_cast<size_t>(i)], e = plan_.offsets[static_cast<size_t>(i) + 1];
    Tensor input = zeros({C, H, SW}, DType::U8);
    Tensor target = empty({e - b}, DType::I64);
    uint8_t* out = input.data<uint8_t>();
    const uint8_t* images = source_->images().data<uint8_t>();  // [N, C, H, W], contiguous
    const int64_t* labels = source_->labels().data<int64_t>();
    for (int64_t k = 0; k < e - b; ++k) {
      const int64_t src = plan_.images[static_cast<size_t>(b + k)];
      target.data<int64_t>()[k] = labels[src];
      for (int64_t row = 0; row < C * H; ++row)
        std::memcpy(out + row * SW + k * W, images + (src * C * H + row) * W, static_cast<size_t>(W));
    }
    Sample s;
    s.set(kInput, input);
    s.set(kTarget, target);
    return s;
  }

  std::string describe(int64_t i) const override {
    check_index(i);
    std::string s = file_ + " strip " + std::to_string(i) + ": images [";
    const int64_t b = plan_.offsets[static_cast<size_t>(i)], e = plan_.offsets[static_cast<size_t>(i) + 1];
    for (int64_t k = b; k < e; ++k)
      s += (k == b ? "" : ", ") + std::to_string(first_image_ + plan_.images[static_cast<size_t>(k)]);
    return s + "]";
  }

 private:
  std::shared_ptr<const ImageDataset> source_;
  StripPlan plan_;
  int64_t max_len_;
  std::string file_;
  int64_t first_image_ = 0;
  DatasetInfo info_;
};

constexpr uint64_t kStream[] = {0, 1, 2};  // train, val, test
const char* const kSplits[] = {"train", "val", "test"};

// data.root, or Fashion-MNIST's directory when the config gives none.
std::string resolve(const FormatArgs& args, const std::string& path) {
  if (!args.root.empty()) return args.resolve(path);
  return (std::filesystem::path(kFashionMnistDir) / path).string();
}

// The split's IDX pair; Fashion-MNIST's file names by default (train-* for train, t10k-* for test).
IdxFiles files_of(const FormatArgs& args, const std::string& split) {
  const AttrMap& keys = *args.split(split);
  auto pick = [&](const char* key, const char* kind) {
    if (auto it = keys.find(key); it != keys.end() && std::holds_alternative<std::string>(it->second))
      return resolve(args, std::get<std::string>(it->second));
    if (split == "val")
      throw std::invalid_argument(std::string("data.val.") + key + " is required for format fashion_strips "
                                  "(Fashion-MNIST has no validation file; or use data.val_size)");
    return resolve(args, (split == "train" ? "train-" : "t10k-") + std::string(kind));
  };
  return {pick("images", "images-idx3-ubyte.gz"), pick("labels", "labels-idx1-ubyte.gz")};
}

Splits open_strips(const FormatArgs& args) {
  const int64_t max_len = attr_int(args.options, "max_len");
  const uint64_t seed = static_cast<uint64_t>(attr_int(args.options, "seed"));
  const int64_t holdout = attr_int(args.options, "holdout");
  const std::vector<std::string>& names = attr_strings(args.options, "classes");
  if (holdout > 0 && args.split("val"))
    throw std::invalid_argument("data.holdout " + std::to_string(holdout) +
                                " and data.val both give a validation split: keep one");
  Splits s;
  auto make = [&](std::shared_ptr<const ImageDataset> source, int64_t strips, size_t k, const std::string& file,
                  int64_t first_image) {
    if (strips == 0) strips = source->size();
    StripPlan plan = plan_strips(source->size(), strips, max_len, seed, kStream[k]);
    return std::make_shared<const StripsDataset>(std::move(source), std::move(plan), max_len, file, first_image,
                                                 names, kSplits[k]);
  };
  for (size_t k = 0; k < 3; ++k) {
    const std::string split = kSplits[k];
    if (!args.split(split)) continue;
    const IdxFiles files = files_of(args, split);
    auto source = load_idx_dataset(files, attr_int(args.options, "num_classes"), split);
    if (!names.empty() && static_cast<int64_t>(names.size()) != source->num_classes())
      throw std::invalid_argument("data.classes names " + std::to_string(names.size()) +
                                  " classes but the labels have " + std::to_string(source->num_classes()) +
                                  " (data.num_classes or the largest label + 1)");
    const std::string file = std::filesystem::path(files.images).filename().string();
    const int64_t strips = attr_int(*args.split(split), "num_strips");
    if (split == "train" && holdout > 0) {
      // The last `holdout` images build the val strips; the training strips never use them.
      const int64_t m = source->size(), keep = m - holdout;
      if (keep < 1)
        throw DataError(files.images + ": data.holdout " + std::to_string(holdout) + " of its " + std::to_string(m) +
                        " images leaves none to train on; lower data.holdout");
      s.val = make(source->range(keep, m, "val"), attr_int(args.options, "holdout_strips"), 1, file, keep);
      s.train = make(source->range(0, keep, "train"), strips, 0, file, 0);
      continue;
    }
    (split == "train" ? s.train : split == "val" ? s.val : s.test) = make(source, strips, k, file, 0);
  }
  return s;
}

DatasetInfo peek_strips(const FormatArgs& args) {
  const IdxFiles f = files_of(args, "train");
  const IdxHeader h = read_idx_header(f.images, "training images");
  if (h.dims.size() != 3)
    throw DataError(f.images + ": expected images of rank 3 [N, H, W], got rank " + std::to_string(h.dims.size()));
  DatasetInfo info;
  info.input_shape = {1, h.dims[1], h.dims[2] * attr_int(args.options, "max_len")};
  info.input_dtype = DType::U8;
  info.target_kind = TargetKind::sequence;
  info.target_shape = {-1};
  info.class_names = attr_strings(args.options, "classes");
  info.num_classes = attr_int(args.options, "num_classes");
  if (info.num_classes == 0) info.num_classes = static_cast<int64_t>(info.class_names.size());
  return info;
}

const RegisterFormat reg({
    "fashion_strips", "",
    "strips of 1 to max_len IDX images side by side (u8 [1, H, W * max_len], zero-padded on the right), "
    "target = their classes (i64 [L]; batches add target_lengths): a CTC sequence task built "
    "deterministically from Fashion-MNIST (or any IDX pair)",
    {A::integer("max_len", 5).range(1, 64).describe("images per strip: 1 to max_len, drawn per strip"),
     A::integer("seed", 0).at_least(0).describe("seed of the strips' lengths and image order (SplitMix64)"),
     A::integer("num_classes", 0).at_least(0).describe("classes (0 = the largest label + 1)"),
     A::integer("holdout", 0).at_least(0).describe(
         "the last N images of the training file build the val split's strips and no training strip "
         "uses them (0 = none; not with data.val). data.val_size would instead carve val strips whose "
         "images also appear in training strips"),
     A::integer("holdout_strips", 0).at_least(0).describe("strips in the held-out val split (0 = one per held-out image)"),
     A::string_list("classes").def(std::vector<std::string>{}).describe("class names, index order")},
    {A::string("images").optional().describe(
         "IDX image file under root (default: Fashion-MNIST's train-/t10k-images-idx3-ubyte.gz; "
         "root defaults to " + std::string(kFashionMnistDir) + ")"),
     A::string("labels").optional().describe("IDX label file under root (default: Fashion-MNIST's)"),
     A::integer("num_strips", 0).at_least(0).describe("strips in this split (0 = one per image of the file)")},
    {"train"},
    open_strips,
    peek_strips,
    /*images=*/true,
    "data:\n  format: fashion_strips\n  max_len: 5\n  seed: 0\n"
    "  train: {num_strips: 55000}\n  test: {num_strips: 10000}\n  holdout: 5000",
    [](const AttrMap& options) {  // a config with errors may lack the key
      auto h = options.find("holdout");
      return h != options.end() && std::holds_alternative<int64_t>(h->second) && std::get<int64_t>(h->second) > 0;
    },
});

}  // namespace
}  // namespace dl::data
