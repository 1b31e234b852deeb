// data.format: idx — MNIST-style IDX files (raw or gzip): u8 images [N, H, W] and u8 labels [N].
#include "datasets/dataset.h"
#include "datasets/format.h"
#include "datasets/idx.h"

namespace dl::data {
namespace {

using A = AttrSchema;

IdxFiles files_of(const FormatArgs& args, const AttrMap& split) {
  return {args.resolve(attr_string(split, "images")), args.resolve(attr_string(split, "labels"))};
}

Splits open_idx(const FormatArgs& args) {
  IdxSplitSpec spec;
  spec.train = files_of(args, *args.split("train"));
  if (const AttrMap* t = args.split("test")) spec.test = files_of(args, *t);
  spec.num_classes = attr_int(args.options, "num_classes");
  Splits s = load_idx_splits(spec);
  const std::vector<std::string>& names = attr_strings(args.options, "classes");
  if (const AttrMap* v = args.split("val")) {
    // An explicit validation file pair (instead of data.val_size).
    auto val = load_idx_dataset(files_of(args, *v), s.train->info().num_classes, "val");
    s.val = val;
  }
  if (!names.empty()) {
    const int64_t k = s.train->info().num_classes;
    if (static_cast<int64_t>(names.size()) != k)
      throw std::invalid_argument("data.classes names " + std::to_string(names.size()) + " classes but the labels have " +
                                  std::to_string(k) + " (data.num_classes or the largest label + 1)");
    auto named = [&](const DatasetPtr& d) -> DatasetPtr {
      if (!d) return d;
      const auto& img = static_cast<const ImageDataset&>(*d);
      return std::make_shared<const ImageDataset>(img.images(), img.labels(), k, d->name(), names);
    };
    s.train = named(s.train), s.val = named(s.val), s.test = named(s.test);
  }
  return s;
}

DatasetInfo peek_idx(const FormatArgs& args) {
  const IdxFiles f = files_of(args, *args.split("train"));
  IdxHeader h = read_idx_header(f.images, "training images");
  if (h.dims.size() != 3)
    throw DataError(f.images + ": expected images of rank 3 [N, H, W], got rank " + std::to_string(h.dims.size()));
  DatasetInfo info;
  info.input_shape = {1, h.dims[1], h.dims[2]};
  info.input_dtype = DType::U8;
  info.target_kind = TargetKind::class_index;
  info.num_classes = attr_int(args.options, "num_classes");
  info.class_names = attr_strings(args.options, "classes");
  if (info.num_classes == 0) info.num_classes = static_cast<int64_t>(info.class_names.size());
  return info;
}

const RegisterFormat reg({
    "idx", "torchvision.datasets.MNIST",
    "MNIST-style IDX files (raw or .gz): u8 images [N, H, W] and u8 labels [N]",
    {A::integer("num_classes", 0).at_least(0).describe("classes (0 = the largest label + 1)"),
     A::string_list("classes").def(std::vector<std::string>{}).describe("class names, index order")},
    {A::string("images").optional().describe("IDX image file under root; default: preset's"),
     A::string("labels").optional().describe("IDX label file under root; default: preset's")},
    {"train"},
    open_idx,
    peek_idx,
    /*images=*/true,
    "data:\n  format: idx\n  root: /usr/share/datasets/fashion-mnist\n"
    "  train: {images: train-images-idx3-ubyte.gz, labels: train-labels-idx1-ubyte.gz}\n"
    "  test: {images: t10k-images-idx3-ubyte.gz, labels: t10k-labels-idx1-ubyte.gz}\n  val_size: 5000",
});

}  // namespace
}  // namespace dl::data
