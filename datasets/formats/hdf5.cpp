// data.format: hdf5 — inputs and targets as two datasets of one HDF5 file (h5py's
// f.create_dataset("x", data=X); f.create_dataset("y", data=y)), the first dimension counting
// samples, any rank after it.
//
//   data:
//     format: hdf5
//     train: {file: fashion_mnist.h5, input: train/x, target: train/y}
//     test:  {file: fashion_mnist.h5, input: test/x, target: test/y}
//
// Input dtypes: uint8 stays u8 (images: data.transforms' to_float / normalize convert), every
// other integer and float type becomes f32. Targets: integers -> class index i64 []
// (target_kind class); numbers -> f32 [K] (regression, per sample [1] for a 1-d dataset);
// 0/1 -> f32 [K] (multi_hot). Targets are read whole when the split opens (checked there);
// inputs are read in blocks of samples (a chunked dataset's chunk rows, else about 64 KB) kept in
// an LRU cache of 64 MB per split, or all at once with data.in_memory.
//
// Every HDF5 call here holds one process-wide mutex: a serial HDF5 build is not thread-safe,
// and the DataLoader's workers call get() concurrently. (Debian's libhdf5 is built thread-safe,
// which also covers checkpoint writes running beside the workers; other builds may not be.)
#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "datasets/format.h"
#include "datasets/formats/tabular.h"
#include "exporters/hdf5_util.h"

namespace dl::data {
namespace {

using AS = AttrSchema;
using h5::Handle;

// Recursive: a Source closes its handles under the lock, also when destroyed inside a locked scope.
std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex m;
  return m;
}
using Lock = std::lock_guard<std::recursive_mutex>;

// An open file shared by the splits' datasets; closed under the lock.
struct File {
  Handle handle;
  explicit File(Handle h) : handle(std::move(h)) {}
  ~File() {
    Lock lock(hdf5_mutex());
    handle.close();
  }
};

constexpr size_t kBlockBytes = size_t(64) << 10;   // block size of a contiguous dataset
constexpr size_t kCacheBytes = size_t(64) << 20;   // decoded blocks kept per split

std::string key_of(const std::string& path, const std::string& key) { return path + "[" + key + "]"; }

herr_t collect_dataset(hid_t group, const char* name, const H5L_info_t* info, void* out) {
  if (info->type != H5L_TYPE_HARD) return 0;
  hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
  if (obj < 0) return 0;
  if (H5Iget_type(obj) == H5I_DATASET) static_cast<std::vector<std::string>*>(out)->push_back(name);
  H5Oclose(obj);
  return 0;
}

// "x, y, train/x" (at most 20), or "none".
std::string dataset_list(hid_t file) {
  std::vector<std::string> names;
  H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &names);
  H5Eclear2(H5E_DEFAULT);
  std::string s;
  for (size_t i = 0; i < names.size() && i < 20; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 20) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s.empty() ? "none" : s;
}

// An open HDF5 file. Caller holds hdf5_mutex().
Handle open_file(const std::string& path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st)) throw DataError(path + ": file not found");
  if (std::filesystem::is_directory(st)) throw DataError(path + ": is a directory, not an HDF5 file");
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw DataError(path + ": not an HDF5 file (no HDF5 signature; write it with h5py, e.g. "
                           "h5py.File(path, 'w').create_dataset('x', data=X))");
  }
  Handle fapl(h5::file_access_plist(false), H5Pclose);
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.id()), H5Fclose);
  if (!file) throw DataError(path + ": cannot open as HDF5 (" + h5::last_error().plain() + ")");
  return file;
}

// One dataset of a file: its shape and file type, opened. Caller holds hdf5_mutex().
struct Source {
  std::string path, key;  // for messages
  Handle dset, space, type;
  Shape shape;            // [N, ...]
  H5T_class_t cls = H5T_NO_CLASS;
  bool is_u8 = false;

  Source(hid_t file, std::string file_path, std::string dataset, const char* role, const char* split_key)
      : path(std::move(file_path)), key(std::move(dataset)) {
    const std::string who = path + ": " + role + " '" + key + "'";
    const std::string fix = " (set data.<split>." + std::string(split_key) + ")";
    // Walk the path one link at a time: H5Lexists fails on a missing intermediate group.
    std::string partial;
    for (size_t start = 0; start <= key.size();) {
      const size_t slash = std::min(key.find('/', start), key.size());
      partial += (partial.empty() ? "" : "/") + key.substr(start, slash - start);
      start = slash + 1;
      if (partial.empty() || partial == "/") continue;
      if (H5Lexists(file, partial.c_str(), H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        throw DataError(who + " is not in the file (datasets there: " + dataset_list(file) + ")" + fix);
      }
    }
    Handle obj(H5Oopen(file, key.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj || H5Iget_type(obj.id()) != H5I_DATASET)
      throw DataError(who + " is a group, not a dataset (datasets in the file: " + dataset_list(file) + ")" + fix);
    obj.close();
    dset = Handle(H5Dopen2(file, key.c_str(), H5P_DEFAULT), H5Dclose);
    if (!dset) throw DataError(who + ": cannot open (" + h5::last_error().plain() + ")");
    space = Handle(H5Dget_space(dset.id()), H5Sclose);
    type = Handle(H5Dget_type(dset.id()), H5Tclose);
    const int rank = space ? H5Sget_simple_extent_ndims(space.id()) : -1;
    if (!type || rank < 0) throw DataError(who + ": cannot read its shape (" + h5::last_error().plain() + ")");
    if (rank == 0) throw DataError(who + " is a scalar; expected an array whose first dimension counts the samples");
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
    for (hsize_t d : dims) shape.push_back(static_cast<int64_t>(d));
    if (shape[0] == 0) throw DataError(who + " has no samples (shape " + shape_str(shape) + ")");
    if (shape_numel(shape) == 0) throw DataError(who + " has empty samples (shape " + shape_str(shape) + ")");
    cls = H5Tget_class(type.id());
    if (cls != H5T_INTEGER && cls != H5T_FLOAT)
      throw DataError(who + " holds " + h5::describe_type(type.id()) + " values; expected integers or floats");
    is_u8 = cls == H5T_INTEGER && H5Tget_size(type.id()) == 1 && H5Tget_sign(type.id()) == H5T_SGN_NONE;
  }

  Shape sample_shape() const { return Shape(shape.begin() + 1, shape.end()); }
  int64_t sample_numel() const { return shape_numel(sample_shape()); }

  // Rows [begin, begin + rows) converted to the memory type into `out`. Caller holds the mutex.
  void read(int64_t begin, int64_t rows, hid_t mem_type, void* out) const {
    std::vector<hsize_t> start(shape.size(), 0), count(shape.begin(), shape.end());
    start[0] = static_cast<hsize_t>(begin);
    count[0] = static_cast<hsize_t>(rows);
    Handle file_space(H5Scopy(space.id()), H5Sclose);
    Handle mem_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
    if (!file_space || !mem_space ||
        H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0 ||
        H5Dread(dset.id(), mem_type, mem_space.id(), file_space.id(), H5P_DEFAULT, out) < 0)
      throw DataError(key_of(path, key) + ": cannot read samples " + std::to_string(begin) + ".." +
                      std::to_string(begin + rows - 1) + " (" + h5::last_error().plain() + ")");
  }

  // Rows per read block: the chunk's first dimension for a chunked dataset, else ~kBlockBytes.
  int64_t block_rows(size_t row_bytes) const {
    Handle plist(H5Dget_create_plist(dset.id()), H5Pclose);
    if (plist && H5Pget_layout(plist.id()) == H5D_CHUNKED) {
      std::vector<hsize_t> chunk(shape.size());
      if (H5Pget_chunk(plist.id(), static_cast<int>(chunk.size()), chunk.data()) > 0 && chunk[0] > 0)
        return static_cast<int64_t>(chunk[0]);
    }
    H5Eclear2(H5E_DEFAULT);
    return std::max<int64_t>(1, static_cast<int64_t>(kBlockBytes / std::max<size_t>(row_bytes, 1)));
  }

  // Closing handles is an HDF5 call too.
  ~Source() {
    Lock lock(hdf5_mutex());
    type.close();
    space.close();
    dset.close();
  }
};

// A split whose inputs are read on demand, block by block, through an LRU cache; its targets
// are in memory.
class Hdf5Dataset final : public Dataset {
 public:
  Hdf5Dataset(std::string name, std::shared_ptr<File> file, std::unique_ptr<Source> input, Tensor targets, DatasetInfo info)
      : Dataset(std::move(name)), file_(std::move(file)), input_(std::move(input)), targets_(std::move(targets)),
        info_(std::move(info)) {
    row_bytes_ = static_cast<size_t>(input_->sample_numel()) * dtype_size(info_.input_dtype);
    Lock lock(hdf5_mutex());
    rows_per_block_ = input_->block_rows(row_bytes_);
    capacity_ = std::max<size_t>(2, kCacheBytes / (row_bytes_ * static_cast<size_t>(rows_per_block_)));
  }

  int64_t size() const override { return input_->shape[0]; }
  const DatasetInfo& info() const override { return info_; }
  std::string describe(int64_t i) const override { return key_of(input_->path, input_->key) + "[" + std::to_string(i) + "]"; }
  std::optional<int64_t> class_of(int64_t i) const override {
    if (info_.target_kind != TargetKind::class_index) return std::nullopt;
    check_index(i);
    return targets_.data<int64_t>()[i];
  }

  Sample get(int64_t i) const override {
    check_index(i);
    const int64_t b = i / rows_per_block_;
    const std::shared_ptr<const std::vector<uint8_t>> block = fetch(b);
    Tensor x = empty(input_->sample_shape(), info_.input_dtype);
    std::memcpy(x.raw_data(), block->data() + static_cast<size_t>(i - b * rows_per_block_) * row_bytes_, row_bytes_);
    Sample s;
    s.set(kInput, std::move(x));
    if (info_.target_kind != TargetKind::none) s.set(kTarget, targets_.select(0, i));
    return s;
  }

 private:
  using Block = std::shared_ptr<const std::vector<uint8_t>>;

  // Block b (rows b*R .. b*R+R-1), from the cache or read now. The read runs outside the cache
  // lock (other workers keep hitting the cache); two threads missing the same block both read it.
  Block fetch(int64_t b) const {
    {
      std::lock_guard<std::mutex> lock(cache_mu_);
      if (auto it = cache_.find(b); it != cache_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second.second);
        return it->second.first;
      }
    }
    const int64_t begin = b * rows_per_block_, rows = std::min(rows_per_block_, size() - begin);
    auto data = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(rows) * row_bytes_);
    {
      Lock lock(hdf5_mutex());
      h5::QuietErrors quiet;
      input_->read(begin, rows, mem_type(info_.input_dtype), data->data());
    }
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = cache_.find(b); it != cache_.end()) return it->second.first;
    lru_.push_front(b);
    cache_.emplace(b, std::make_pair(Block(data), lru_.begin()));
    while (cache_.size() > capacity_) {
      cache_.erase(lru_.back());
      lru_.pop_back();
    }
    return data;
  }

  static hid_t mem_type(DType t) { return t == DType::U8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT; }

  std::shared_ptr<File> file_;
  std::unique_ptr<Source> input_;
  Tensor targets_;
  DatasetInfo info_;
  size_t row_bytes_ = 0, capacity_ = 0;
  int64_t rows_per_block_ = 1;
  mutable std::mutex cache_mu_;
  mutable std::list<int64_t> lru_;  // most recent first
  mutable std::unordered_map<int64_t, std::pair<Block, std::list<int64_t>::iterator>> cache_;
};

// One split, opened: the file, its input source, the targets read whole.
struct OpenSplit {
  std::string name;
  std::shared_ptr<File> file;
  std::unique_ptr<Source> input;
  Tensor targets;      // i64 [N] class, f32 [N, ...] otherwise; undefined for none
  Shape target_shape;  // per sample
};

// The targets as the kind wants them. Caller holds the lock.
Tensor read_targets(const Source& t, TargetKind kind, Shape& per_sample) {
  const std::string who = key_of(t.path, t.key);
  const int64_t n = t.shape[0];
  if (kind == TargetKind::class_index) {
    if (t.cls != H5T_INTEGER)
      throw DataError(who + " holds " + h5::describe_type(t.type.id()) + " values: class targets are integers "
                      "(set data.target_kind: regression for numeric targets)");
    if (t.sample_numel() != 1)
      throw DataError(who + " has shape " + shape_str(t.shape) + ": class targets are one integer per sample ([N]); "
                      "several 0/1 columns are data.target_kind: multi_hot");
    Tensor y = empty({n}, DType::I64);
    t.read(0, n, H5T_NATIVE_INT64, y.raw_data());
    per_sample = {};
    return y;
  }
  if (kind == TargetKind::multi_hot && t.shape.size() != 2)
    throw DataError(who + " has shape " + shape_str(t.shape) + ": multi_hot targets are [N, classes] of 0/1");
  per_sample = t.shape.size() == 1 ? Shape{1} : t.sample_shape();
  Shape full = per_sample;
  full.insert(full.begin(), n);
  Tensor y = empty(full, DType::F32);
  t.read(0, n, H5T_NATIVE_FLOAT, y.raw_data());
  if (kind == TargetKind::multi_hot) {
    const float* p = y.data<float>();
    for (int64_t i = 0; i < y.numel(); ++i)
      if (p[i] != 0.f && p[i] != 1.f)
        throw DataError(who + "[" + std::to_string(i / per_sample[0]) + "]: value " + std::to_string(p[i]) +
                        " is not 0 or 1 (multi_hot targets)");
  }
  return y;
}

OpenSplit open_split(const std::string& name, const AttrMap& keys, const FormatArgs& args, TargetKind kind) {
  const std::string path = args.resolve(attr_string(keys, "file"));
  Lock lock(hdf5_mutex());
  h5::QuietErrors quiet;
  OpenSplit s;
  s.name = name;
  s.file = std::make_shared<File>(open_file(path));
  s.input = std::make_unique<Source>(s.file->handle.id(), path, attr_string(keys, "input"), "input", "input");
  if (kind == TargetKind::none) return s;
  Source target(s.file->handle.id(), path, attr_string(keys, "target"), "target", "target");
  if (target.shape[0] != s.input->shape[0])
    throw DataError(path + ": input '" + s.input->key + "' has " + std::to_string(s.input->shape[0]) + " samples but target '" +
                    target.key + "' has " + std::to_string(target.shape[0]) + "; they need one target per sample");
  s.targets = read_targets(target, kind, s.target_shape);
  return s;
}

// Every split's class labels in [0, info.num_classes); num_classes = max + 1 without data.classes.
void check_classes(const std::vector<OpenSplit>& splits, DatasetInfo& info) {
  const bool named = !info.class_names.empty();
  int64_t mx = -1;
  for (const OpenSplit& s : splits) {
    const int64_t* y = s.targets.data<int64_t>();
    for (int64_t i = 0; i < s.targets.numel(); ++i) {
      const std::string who = s.input->path + "[" + s.input->key + "] sample " + std::to_string(i) + ": ";
      if (y[i] < 0) throw DataError(who + "class " + std::to_string(y[i]) + " is negative; class indices start at 0");
      if (named && y[i] >= info.num_classes)
        throw DataError(who + "class " + std::to_string(y[i]) + " has no name: data.classes names " +
                        std::to_string(info.num_classes) + " class(es) (indices 0.." + std::to_string(info.num_classes - 1) + ")");
      mx = std::max(mx, y[i]);
    }
  }
  if (!named) info.num_classes = mx + 1;
}

Splits open_hdf5(const FormatArgs& args) {
  const TargetKind kind = tabular::parse_target_kind(attr_string(args.options, "target_kind"));
  std::vector<OpenSplit> opened;
  for (const char* name : {"train", "val", "test"})
    if (const AttrMap* keys = args.split(name)) opened.push_back(open_split(name, *keys, args, kind));
  const OpenSplit& train = opened.front();
  DatasetInfo info;
  info.input_shape = train.input->sample_shape();
  const bool u8 = train.input->is_u8;  // (the loop below moves the inputs out)
  info.input_dtype = u8 ? DType::U8 : DType::F32;
  info.target_kind = kind;
  info.target_shape = train.target_shape;
  info.class_names = tabular::class_names_option(args.options);
  if (!info.class_names.empty() && kind != TargetKind::class_index)
    throw std::invalid_argument("data.classes: only class targets have class names (data.target_kind is " +
                                attr_string(args.options, "target_kind") + ")");
  info.num_classes = static_cast<int64_t>(info.class_names.size());
  if (kind == TargetKind::class_index) check_classes(opened, info);
  if (kind == TargetKind::multi_hot) info.num_classes = train.target_shape[0];
  Splits splits;
  for (OpenSplit& s : opened) {
    const std::string who = key_of(s.input->path, s.input->key);
    if (s.input->sample_shape() != info.input_shape || s.input->is_u8 != u8 || s.target_shape != info.target_shape)
      throw DataError(who + ": samples of shape " + shape_str(s.input->sample_shape()) + (s.input->is_u8 ? " uint8" : "") +
                      " with targets " + shape_str(s.target_shape) + ", but the training split has " +
                      shape_str(info.input_shape) + (u8 ? " uint8" : "") + " with targets " +
                      shape_str(info.target_shape) + "; the splits need the same layout");
    DatasetPtr ds;
    if (args.in_memory) {
      Shape full = s.input->shape;
      Tensor x = empty(full, info.input_dtype);
      {
        Lock lock(hdf5_mutex());
        h5::QuietErrors quiet;
        s.input->read(0, full[0], info.input_dtype == DType::U8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, x.raw_data());
      }
      ds = std::make_shared<tabular::TensorDataset>(s.name, std::move(x), s.targets, info,
                                                    [who](int64_t i) { return who + "[" + std::to_string(i) + "]"; });
    } else {
      ds = std::make_shared<Hdf5Dataset>(s.name, s.file, std::move(s.input), s.targets, info);
    }
    (s.name == "train" ? splits.train : s.name == "val" ? splits.val : splits.test) = std::move(ds);
  }
  return splits;
}

const RegisterFormat kHdf5(FormatDef{
    .name = "hdf5",
    .torch_name = "",
    .doc = "Inputs and targets as two datasets of an HDF5 file (h5py), first dimension = samples, any rank; uint8 "
           "input stays u8 (give data.transforms to_float), other types become f32; read in blocks through a cache "
           "unless data.in_memory",
    .attrs = {tabular::target_kind_attr(true), tabular::classes_attr()},
    .split_attrs =
        {
            AS::string("file").describe("the HDF5 file (under data.root unless absolute)"),
            AS::string("input", "x").describe("the inputs' dataset path in the file, [N, ...]"),
            AS::string("target", "y").describe("the targets' dataset path, [N] or [N, K] (unused for target_kind none)"),
        },
    .open = open_hdf5,
    .peek = nullptr,
    // No default transform: the input may be f32 features. uint8 images need data.transforms'
    // to_float (the default [to_float] would scale f32 features by 1/255).
    .images = false,
    .example = "{format: hdf5, root: build/data, train: {file: fashion_mnist.h5, input: train/x, target: train/y}, "
               "test: {file: fashion_mnist.h5, input: test/x, target: test/y}, transforms: [{type: to_float}]}",
});

}  // namespace
}  // namespace dl::data
