// data.format: image_folder — torchvision.datasets.ImageFolder: root/<dir>/<class>/<image>,
// PNG/JPEG/BMP/... decoded with OpenCV into u8 [C, H, W] (datasets/formats/image_folder.h).
//
// Same samples in the same order as ImageFolder: classes = the sorted names of the split
// folder's subdirectories (symlinks followed, hidden ones included), class index = position;
// per class every file below its folder (recursively) whose name ends in one of the extensions
// (case-insensitive), in the order of sorted(os.walk(class_dir)) then sorted(file names), i.e.
// by (directory path, file name) compared bytewise. Indexing lists directories only; images
// are decoded in get() (lazily, on the loader's threads) and kept, up to 512 MB of pixels, so
// later epochs do not decode again; or all at open with data.in_memory.
#include "datasets/formats/image_folder.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <thread>
#include <utility>

#include "datasets/dataset.h"
#include "datasets/format.h"

namespace dl::data {
namespace fs = std::filesystem;

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> exts = {".jpg", ".jpeg", ".png",  ".ppm", ".bmp",
                                                ".pgm", ".tif",  ".tiff", ".webp"};
  return exts;
}

namespace {

// Whether a JPEG stream holds an end-of-image marker (FF D9) after its first scan header.
// libjpeg decodes a truncated file "successfully", padding it with gray (with only a warning),
// where PIL raises "image file is truncated". Inside entropy-coded data FF is always followed
// by 00 or a restart marker, so an FF D9 after the scan starts is the real end marker.
bool jpeg_complete(std::string_view b) {
  auto byte = [&](size_t i) { return static_cast<uint8_t>(b[i]); };
  size_t i = 2;  // after SOI (FF D8)
  while (i + 4 <= b.size() && byte(i) == 0xFF) {
    const uint8_t marker = byte(i + 1);
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {  // markers without a length
      i += 2;
      continue;
    }
    if (marker == 0xD9) return true;  // an end before any scan: the decoder reports it
    const size_t segment = 2 + (static_cast<size_t>(byte(i + 2)) << 8 | byte(i + 3));
    if (marker == 0xDA) return b.find("\xFF\xD9", i + segment) != std::string_view::npos;
    i += segment;
  }
  // Not at a marker: a damaged header, which libjpeg may skip; ask for the end marker anywhere.
  return b.find("\xFF\xD9", std::min(i, b.size())) != std::string_view::npos;
}

// Whether the bytes start like one of the formats of image_extensions(). OpenCV's imdecode also
// tries JPEG 2000, OpenEXR, Radiance HDR, Sun raster and PFM by content, decoders ImageFolder's
// PIL lacks (or never sees behind these extensions): those bytes are refused before reaching them.
bool known_signature(std::string_view b) {
  auto starts = [&](std::string_view sig) { return b.substr(0, sig.size()) == sig; };
  using namespace std::string_view_literals;
  return starts("\x89PNG\r\n\x1a\n"sv) || starts("\xFF\xD8\xFF"sv) || starts("BM"sv) ||
         (b.size() >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6') || starts("II*\0"sv) || starts("MM\0*"sv) ||
         starts("II+\0"sv) || starts("MM\0+"sv) || (starts("RIFF"sv) && b.size() >= 12 && b.substr(8, 4) == "WEBP"sv);
}

std::string hex_head(std::string_view b) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < std::min<size_t>(b.size(), 8); ++i) {
    if (i) s += ' ';
    s += digits[static_cast<uint8_t>(b[i]) >> 4];
    s += digits[static_cast<uint8_t>(b[i]) & 15];
  }
  return s;
}

}  // namespace

Tensor decode_image(std::string_view bytes, ImageColor color, const std::string& source) {
  const std::string fix = "; replace or delete the file";
  if (bytes.empty()) throw DataError(source + ": empty file (0 bytes), not an image" + fix);
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    throw DataError(source + ": " + std::to_string(bytes.size()) + " bytes is too large for an image file");
  const bool jpeg = bytes.size() >= 3 && bytes.substr(0, 3) == std::string_view("\xFF\xD8\xFF", 3);
  if (jpeg && !jpeg_complete(bytes))
    throw DataError(source + ": truncated JPEG (" + std::to_string(bytes.size()) +
                    " bytes, no end-of-image marker after the image data)" + fix);
  if (!known_signature(bytes))
    throw DataError(source + ": not a PNG/JPEG/BMP/PPM/PGM/TIFF/WebP image (" + std::to_string(bytes.size()) +
                    " bytes, starting " + hex_head(bytes) + ")" + fix);
  cv::Mat m;  // 8-bit, 1 (gray), 3 (BGR) or 4 (BGRA) channels, as the file stores them
  try {
    const cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
    m = cv::imdecode(buf, cv::IMREAD_ANYCOLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw DataError(source + ": cannot decode the image (OpenCV: " + e.err + ")" + fix);
  }
  if (m.empty())
    throw DataError(source + ": cannot decode the image: corrupt or truncated (" + std::to_string(bytes.size()) +
                    " bytes, starting " + hex_head(bytes) + ")" + fix);
  const int cn = m.channels();
  if (m.depth() != CV_8U || (cn != 1 && cn != 3 && cn != 4))
    throw DataError(source + ": unsupported image layout (" + std::to_string(cn) + " channels of OpenCV depth " +
                    std::to_string(m.depth()) + "); convert it to 8-bit gray or RGB");

  const int64_t h = m.rows, w = m.cols;
  const int64_t c = color == ImageColor::gray ? 1 : 3;
  Tensor out = empty({c, h, w}, DType::U8);
  uint8_t* dst = out.data<uint8_t>();
  const int64_t plane = h * w;
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* p = m.ptr<uint8_t>(static_cast<int>(y));
    uint8_t* row = dst + y * w;
    if (cn == 1) {
      for (int64_t k = 0; k < c; ++k) std::memcpy(row + k * plane, p, static_cast<size_t>(w));
    } else if (c == 1) {  // PIL's RGB -> L: ITU-R 601-2 luma in 16-bit fixed point, rounded
      for (int64_t x = 0; x < w; ++x, p += cn)
        row[x] = static_cast<uint8_t>((p[2] * 19595u + p[1] * 38470u + p[0] * 7471u + 0x8000u) >> 16);
    } else {  // BGR(A) interleaved -> R, G, B planes
      for (int64_t x = 0; x < w; ++x, p += cn) {
        row[x] = p[2];
        row[plane + x] = p[1];
        row[2 * plane + x] = p[0];
      }
    }
  }
  return out;
}

namespace {

// The files of one split folder in ImageFolder's order.
struct FolderIndex {
  std::string root;                  // the split's folder
  std::vector<std::string> classes;  // sorted subdirectory names
  std::vector<std::string> files;    // image paths
  std::vector<int64_t> labels;       // class index per file
  int64_t skipped = 0;               // files without one of the extensions
};

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

bool has_extension(const std::string& name, const std::vector<std::string>& exts) {
  const std::string n = lower(name);
  return std::any_of(exts.begin(), exts.end(), [&](const std::string& e) { return n.ends_with(e); });
}

std::string joined(const std::vector<std::string>& v, size_t limit = 20) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < limit; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > limit) s += ", ... (" + std::to_string(v.size()) + " in all)";
  return s;
}

// `key` (data.train.dir) names the setting in messages.
FolderIndex index_folder(const std::string& root, const std::vector<std::string>& exts, const std::string& key) {
  FolderIndex ix;
  ix.root = root;
  std::error_code ec;
  if (!fs::exists(root, ec))
    throw DataError(key + ": image folder '" + root + "' does not exist (expected " + root + "/<class>/<image>)");
  if (!fs::is_directory(root, ec))
    throw DataError(key + ": '" + root + "' is not a directory (expected " + root + "/<class>/<image>)");
  try {
    for (const fs::directory_entry& e : fs::directory_iterator(root))
      if (e.is_directory()) ix.classes.push_back(e.path().filename().string());
    std::sort(ix.classes.begin(), ix.classes.end());
    if (ix.classes.empty())
      throw DataError(key + ": couldn't find any class folder in '" + root + "' (expected " + root +
                      "/<class>/<image>, one folder per class)");
    std::vector<std::string> empty_classes;
    for (size_t c = 0; c < ix.classes.size(); ++c) {
      // (directory, file name) pairs: sorted(os.walk(...)) orders by directory path first.
      std::vector<std::pair<std::string, std::string>> found;
      const fs::path dir = fs::path(root) / ix.classes[c];
      for (const fs::directory_entry& e :
           fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink)) {
        if (e.is_directory()) continue;
        const std::string name = e.path().filename().string();
        if (has_extension(name, exts))
          found.emplace_back(e.path().parent_path().string(), name);
        else
          ++ix.skipped;
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) empty_classes.push_back(ix.classes[c]);
      for (const auto& [d, name] : found) {
        ix.files.push_back((fs::path(d) / name).string());
        ix.labels.push_back(static_cast<int64_t>(c));
      }
    }
    if (!empty_classes.empty())
      throw DataError(key + ": found no valid file for the classes " + joined(empty_classes) + " in '" + root +
                      "' (supported extensions: " + joined(exts) + "; " + std::to_string(ix.skipped) +
                      " other files skipped): add images or remove the empty folders");
  } catch (const fs::filesystem_error& e) {
    throw DataError(key + ": cannot list '" + e.path1().string() + "': " + e.code().message());
  }
  return ix;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw DataError(path + ": cannot open the image file (" + std::strerror(errno) + ")");
  const std::streamoff n = f.tellg();
  std::string bytes(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  f.seekg(0);
  if (n < 0 || !f.read(bytes.data(), n)) throw DataError(path + ": cannot read the image file");
  return bytes;
}

Tensor load_image(const std::string& path, ImageColor color) { return decode_image(read_bytes(path), color, path); }

// The decoded images an image-folder dataset keeps (see ImageFolderDataset::cached_image):
// Fashion-MNIST's 70000 take 55 MB; a larger folder keeps its first-decoded images up to this.
constexpr int64_t kDecodeCacheBytes = int64_t{512} << 20;

class ImageFolderDataset final : public Dataset {
 public:
  ImageFolderDataset(FolderIndex ix, ImageColor color, bool in_memory, std::string name)
      : Dataset(std::move(name)), ix_(std::move(ix)), color_(color) {
    if (in_memory) {
      decode_all();
    } else {
      cache_.resize(ix_.files.size());
      cache_state_ = std::make_unique<std::atomic<uint8_t>[]>(ix_.files.size());  // all 0 (C++20)
    }
    const Tensor first = in_memory ? decoded_[0] : load_image(ix_.files[0], color_);
    info_.input_shape = first.shape();  // the first image's: others may differ (see the README)
    info_.input_dtype = DType::U8;
    info_.target_kind = TargetKind::class_index;
    info_.num_classes = static_cast<int64_t>(ix_.classes.size());
    info_.class_names = ix_.classes;
  }

  int64_t size() const override { return static_cast<int64_t>(ix_.files.size()); }
  Sample get(int64_t i) const override {
    check_index(i);
    const size_t k = static_cast<size_t>(i);
    Sample s;
    s.set(kInput, decoded_.empty() ? cached_image(k) : decoded_[k]);
    s.set(kTarget, scalar_tensor(static_cast<double>(ix_.labels[k]), DType::I64));
    return s;
  }
  const DatasetInfo& info() const override { return info_; }
  std::optional<int64_t> class_of(int64_t i) const override {
    check_index(i);
    return ix_.labels[static_cast<size_t>(i)];
  }
  std::string describe(int64_t i) const override {
    check_index(i);
    return ix_.files[static_cast<size_t>(i)];
  }

 private:
  // data.in_memory: every image decoded up front on all cores; the first failing file (in
  // index order) is the error.
  void decode_all() {
    const size_t n = ix_.files.size();
    decoded_.resize(n);
    std::vector<std::exception_ptr> errors(n);
    std::atomic<size_t> next{0};
    auto work = [&] {
      while (true) {
        const size_t i = next.fetch_add(1);
        if (i >= n) return;
        try {
          decoded_[i] = load_image(ix_.files[i], color_);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      }
    };
    const size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16);
    std::vector<std::thread> pool;
    for (size_t t = 1; t < std::min(threads, n); ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
  }

  // Without data.in_memory: image k, decoded at its first get() and kept while the cache holds
  // less than kDecodeCacheBytes, so later epochs skip the file read and the PNG/JPEG decode.
  // Slot states: 0 empty, 1 being stored (by the thread that claimed it), 2 ready; readers on
  // other threads decode the file themselves until it is ready.
  Tensor cached_image(size_t k) const {
    std::atomic<uint8_t>& state = cache_state_[k];
    if (state.load(std::memory_order_acquire) == 2) return cache_[k];
    Tensor t = load_image(ix_.files[k], color_);
    const int64_t bytes = t.numel();
    uint8_t empty_slot = 0;
    if (cache_bytes_.load(std::memory_order_relaxed) + bytes <= kDecodeCacheBytes &&
        state.compare_exchange_strong(empty_slot, 1, std::memory_order_acquire)) {
      cache_bytes_.fetch_add(bytes, std::memory_order_relaxed);
      cache_[k] = t;
      state.store(2, std::memory_order_release);
    }
    return t;
  }

  FolderIndex ix_;
  ImageColor color_;
  std::vector<Tensor> decoded_;  // in_memory: u8 [C, H, W] per sample
  mutable std::vector<Tensor> cache_;  // see cached_image()
  std::unique_ptr<std::atomic<uint8_t>[]> cache_state_;
  mutable std::atomic<int64_t> cache_bytes_{0};
  DatasetInfo info_;
};

struct FolderOptions {
  ImageColor color = ImageColor::rgb;
  std::vector<std::string> extensions;  // lower case
};

FolderOptions options_of(const FormatArgs& args) {
  AttrMap o = args.options;
  fill_attr_defaults(format_def("image_folder").attrs, o);
  FolderOptions r;
  r.color = attr_string(o, "color") == "gray" ? ImageColor::gray : ImageColor::rgb;
  for (const std::string& e : attr_strings(o, "extensions")) r.extensions.push_back(lower(e));
  return r;
}

// The split's folder (data.<split>.dir under data.root), indexed.
FolderIndex index_split(const FormatArgs& args, const std::string& split, const FolderOptions& o) {
  const AttrMap* s = args.split(split);
  auto dir = s ? s->find("dir") : AttrMap::const_iterator();
  if (!s || dir == s->end() || !std::holds_alternative<std::string>(dir->second))
    throw std::invalid_argument("data." + split +
                                ".dir is required by data.format image_folder: the split's folder "
                                "of class folders (relative to data.root)");
  return index_folder(args.resolve(std::get<std::string>(dir->second)), o.extensions, "data." + split + ".dir");
}

// Every split must list the training split's classes, in the same order (class indices agree).
void check_same_classes(const FolderIndex& train, const FolderIndex& other, const std::string& split) {
  if (other.classes == train.classes) return;
  std::vector<std::string> missing, extra;
  for (const std::string& c : train.classes)
    if (!std::binary_search(other.classes.begin(), other.classes.end(), c)) missing.push_back(c);
  for (const std::string& c : other.classes)
    if (!std::binary_search(train.classes.begin(), train.classes.end(), c)) extra.push_back(c);
  throw DataError(
      "data." + split + ".dir '" + other.root + "' and data.train.dir '" + train.root +
      "' have different class folders (" + (missing.empty() ? "" : "missing in " + split + ": " + joined(missing)) +
      (missing.empty() || extra.empty() ? "" : "; ") + (extra.empty() ? "" : "not in train: " + joined(extra)) +
      "): every split needs the same classes so that class indices agree");
}

Splits open_folders(const FormatArgs& args) {
  const FolderOptions o = options_of(args);
  FolderIndex train = index_split(args, "train", o);
  Splits s;
  for (const char* name : {"val", "test"}) {
    if (!args.split(name)) continue;
    FolderIndex ix = index_split(args, name, o);
    check_same_classes(train, ix, name);
    (std::string(name) == "val" ? s.val : s.test) =
        std::make_shared<const ImageFolderDataset>(std::move(ix), o.color, args.in_memory, name);
  }
  s.train = std::make_shared<const ImageFolderDataset>(std::move(train), o.color, args.in_memory, "train");
  return s;
}

DatasetInfo peek_folder(const FormatArgs& args) {
  const FolderOptions o = options_of(args);
  FolderIndex ix = index_split(args, "train", o);
  return ImageFolderDataset(std::move(ix), o.color, false, "train").info();
}

std::string check_extensions(const AttrValue& v) {
  for (const std::string& e : std::get<std::vector<std::string>>(v))
    if (e.size() < 2 || e[0] != '.') return "'" + e + "'";
  return "";
}

using A = AttrSchema;

const RegisterFormat reg({
    "image_folder",
    "torchvision.datasets.ImageFolder",
    "a folder per class of PNG/JPEG/BMP/... images (root/<dir>/<class>/<image>), decoded with OpenCV to u8 [C, H, W]",
    {A::choice("color", {"rgb", "gray"}, "rgb")
         .describe("rgb: 3 channels (ImageFolder's convert(\"RGB\")); gray: 1 channel (convert(\"L\"))"),
     A::string_list("extensions")
         .def(image_extensions())
         .check(check_extensions, "extensions starting with '.'")
         .describe(
             "files read, by extension (case-insensitive; default torchvision's IMG_EXTENSIONS); others are skipped")},
    {A::string("dir").req().describe("the split's folder under data.root: <dir>/<class>/<image>")},
    {"train"},
    open_folders,
    peek_folder,
    true,
    "{format: image_folder, root: build/data/fashion-mnist-png, color: gray, train: {dir: train}, test: {dir: test}}",
});

}  // namespace
}  // namespace dl::data
