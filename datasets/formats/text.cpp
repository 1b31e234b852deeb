// data.format: text — a character- (UTF-8 code point) or byte-level corpus cut into windows of
// seq_len tokens for next-token prediction (a character language model):
//
//   data:
//     format: text
//     level: char              # char (UTF-8 code points) | byte
//     seq_len: 64              # tokens per sample
//     stride: 64               # tokens between window starts (default seq_len: no overlap)
//     holdout: 0.05            # the last 5% of the training text becomes val (when no data.val)
//     train: {files: [/usr/share/games/fortunes/*], exclude: ['*.dat']}
//
// The training corpus is its files' text back to back, in the listed order (a glob's matches
// sorted; a file reached twice, e.g. through a symlink, is read once). Sample i is the window
// at token i * stride: "input" = tokens [s, s + seq_len), "target" = tokens [s + 1, s +
// seq_len + 1), both i64 [seq_len]. The vocabulary is the sorted set of tokens of the training
// text, after an `<unk>` entry 0 that val/test tokens missing from it map to; it is the
// dataset's class_names (so checkpoints keep it), its size num_classes. A token's name is its
// character, except control characters (newline, tab, NUL, ...) and byte-level tokens >= 0x80,
// named "<0xNN>" (every other name is one character, so these cannot be confused).
//
// Why `holdout` and not the generic data.val_fraction: overlapping windows picked at random
// would put the same text in train and val; a contiguous tail does not.
#include <fnmatch.h>
#include <glob.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "datasets/dataset.h"
#include "datasets/format.h"
#include "datasets/formats/text.h"

namespace dl::data {
namespace {

using A = AttrSchema;
namespace fs = std::filesystem;

constexpr int32_t kUnk = 0;

// One split's text: the tokens (code points or bytes) of its files, back to back.
struct RawText {
  std::vector<uint32_t> symbols;
  std::vector<std::string> files;    // in corpus order
  std::vector<int64_t> file_starts;  // index of each file's first symbol in `symbols`
};

// The token ids of a corpus plus where each file starts (for describe()).
struct Corpus {
  std::vector<int32_t> ids;
  std::vector<std::string> files;
  std::vector<int64_t> file_starts;
  bool bytes = false;
};

// ---- Reading --------------------------------------------------------------------------------

std::string hex_byte(unsigned char b) {  // "0x9F"
  const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[b >> 4] + digits[b & 0xF];
}

bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

// The files of one split (`file` or `files`, minus `exclude`), resolved under data.root.
std::vector<std::string> list_files(const FormatArgs& args, const AttrMap& split, const std::string& key) {
  const bool one = split.count("file") != 0, many = split.count("files") != 0;
  if (one == many)
    throw std::invalid_argument(key + ": give either 'file' (one path) or 'files' (paths or globs)" +
                                (one ? std::string(", not both") : std::string()));
  const std::vector<std::string> patterns =
      one ? std::vector<std::string>{attr_string(split, "file")} : attr_strings(split, "files");
  if (patterns.empty()) throw std::invalid_argument(key + ".files is empty: list at least one path or glob");
  const std::vector<std::string>& exclude = attr_strings(split, "exclude");
  const auto excluded = [&](const std::string& path) {
    const std::string name = fs::path(path).filename().string();
    return std::any_of(exclude.begin(), exclude.end(),
                       [&](const std::string& p) { return fnmatch(p.c_str(), name.c_str(), 0) == 0; });
  };
  std::vector<std::string> out;
  std::set<std::string> seen;  // canonical paths: a symlinked duplicate is read once
  const auto add = [&](const std::string& path) {
    std::error_code ec;
    const fs::path canon = fs::canonical(path, ec);
    if (excluded(path) || !seen.insert(ec ? path : canon.string()).second) return;
    out.push_back(path);
  };
  for (const std::string& pattern : patterns) {
    const std::string full = args.resolve(pattern);
    if (!has_glob_chars(pattern)) {
      add(full);  // a missing file is reported when it is read
      continue;
    }
    glob_t g{};
    const int rc = glob(full.c_str(), 0, nullptr, &g);
    std::vector<std::string> matches(g.gl_pathv, g.gl_pathv + (rc == 0 ? g.gl_pathc : 0));
    globfree(&g);
    size_t kept = 0;
    std::error_code ec;
    for (const std::string& m : matches)
      if (!fs::is_directory(m, ec)) add(m), ++kept;
    if (kept == 0) throw DataError(key + ".files: '" + full + "' matches no file");
  }
  if (out.empty()) throw DataError(key + ": every listed file is excluded by " + key + ".exclude");
  return out;
}

std::string read_whole(const std::string& path, const std::string& key) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw DataError(key + ": '" + path + "' is a directory, not a text file (use files: ['dir/*'])");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw DataError(key + ": cannot open '" + path + "': " + std::strerror(errno));
  std::ostringstream s;
  s << f.rdbuf();
  if (f.bad()) throw DataError(key + ": error reading '" + path + "'");
  return s.str();
}

// Appends the code points of `bytes` (strict UTF-8: no overlong forms, surrogates or values
// past U+10FFFF). DataError at the first bad sequence, naming the file and its byte offset.
void decode_utf8(const std::string& bytes, const std::string& path, std::vector<uint32_t>& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  for (size_t i = 0; i < n;) {
    const unsigned char b = p[i];
    size_t len = 0;
    uint32_t cp = 0, lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    if (b >= 0xC2 && b <= 0xDF)
      len = 2, cp = b & 0x1F;
    else if (b >= 0xE0 && b <= 0xEF)
      len = 3, cp = b & 0x0F, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    else if (b >= 0xF0 && b <= 0xF4)
      len = 4, cp = b & 0x07, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    bool ok = len != 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      const unsigned char c = p[i + k];
      ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
      cp = cp << 6 | (c & 0x3F);
    }
    if (!ok) {
      throw DataError(path + ": invalid UTF-8 at byte offset " + std::to_string(i) + " (byte " + hex_byte(b) +
                      (len != 0 && i + len > n ? ", a sequence cut off by the end of the file" : "") +
                      "); for text in another encoding or binary data use data.level: byte");
    }
    out.push_back(cp);
    i += len;
  }
}

RawText read_split(const FormatArgs& args, const std::string& split, bool bytes) {
  const std::string key = "data." + split;
  RawText t;
  t.files = list_files(args, *args.split(split), key);
  for (const std::string& path : t.files) {
    const std::string data = read_whole(path, key);
    t.file_starts.push_back(static_cast<int64_t>(t.symbols.size()));
    if (bytes)
      for (unsigned char b : data) t.symbols.push_back(b);
    else
      decode_utf8(data, path, t.symbols);
  }
  if (t.symbols.empty())
    throw DataError(key + ": the corpus is empty (" + std::to_string(t.files.size()) + " file(s), no text)");
  return t;
}

// ---- Vocabulary -----------------------------------------------------------------------------

std::string symbol_name(uint32_t s, bool bytes) {
  // Names that do not print as themselves: control characters (a NUL would also end the
  // string in an HDF5 attribute, a newline break a listing) and bytes that are not UTF-8 alone.
  if (s < 0x20 || s == 0x7F || (bytes && s >= 0x80)) return "<" + hex_byte(static_cast<unsigned char>(s)) + ">";
  if (s < 0x80) return std::string(1, static_cast<char>(s));
  // UTF-8: a lead byte with the top bits, then 6 bits per continuation byte.
  static constexpr unsigned char kLead[] = {0, 0xC0, 0xE0, 0xF0};
  const int extra = s < 0x800 ? 1 : s < 0x10000 ? 2 : 3;
  std::string r(1, static_cast<char>(kLead[extra] | s >> (6 * extra)));
  for (int k = extra - 1; k >= 0; --k) r += static_cast<char>(0x80 | (s >> (6 * k) & 0x3F));
  return r;
}

// The sorted distinct symbols of symbols[0, end).
std::vector<uint32_t> build_vocabulary(const std::vector<uint32_t>& symbols, int64_t end) {
  std::vector<uint32_t> v(symbols.begin(), symbols.begin() + end);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::shared_ptr<const Corpus> encode(const RawText& t, const std::vector<uint32_t>& vocab, bool bytes) {
  auto c = std::make_shared<Corpus>();
  c->ids.resize(t.symbols.size());
  for (size_t i = 0; i < t.symbols.size(); ++i) {
    auto it = std::lower_bound(vocab.begin(), vocab.end(), t.symbols[i]);
    c->ids[i] = it != vocab.end() && *it == t.symbols[i] ? static_cast<int32_t>(it - vocab.begin()) + 1 : kUnk;
  }
  c->files = t.files;
  c->file_starts = t.file_starts;
  c->bytes = bytes;
  return c;
}

// ---- The dataset ----------------------------------------------------------------------------

class TextDataset final : public Dataset {
 public:
  // Windows over corpus tokens [begin, end); DataError when not even one fits.
  TextDataset(std::shared_ptr<const Corpus> corpus, int64_t begin, int64_t end, int64_t seq_len, int64_t stride,
              DatasetInfo info, const std::string& name)
      : Dataset(name),
        corpus_(std::move(corpus)),
        begin_(begin),
        seq_len_(seq_len),
        stride_(stride),
        info_(std::move(info)) {
    const int64_t tokens = end - begin;
    if (tokens < seq_len + 1)
      throw DataError("data." + name + ": the corpus has " + std::to_string(tokens) +
                      " tokens but one sample needs seq_len + 1 = " + std::to_string(seq_len + 1) +
                      " (its input and the next tokens): lower data.seq_len or add text");
    size_ = (tokens - seq_len - 1) / stride + 1;
  }

  int64_t size() const override { return size_; }
  const DatasetInfo& info() const override { return info_; }

  Sample get(int64_t i) const override {
    check_index(i);
    const int32_t* src = corpus_->ids.data() + start(i);
    Tensor input = empty({seq_len_}, DType::I64), target = empty({seq_len_}, DType::I64);
    int64_t* in = input.data<int64_t>();
    int64_t* tg = target.data<int64_t>();
    for (int64_t k = 0; k < seq_len_; ++k) in[k] = src[k], tg[k] = src[k + 1];
    Sample s;
    s.set(kInput, std::move(input));
    s.set(kTarget, std::move(target));
    return s;
  }

  // "path (char 1234)": the file the window starts in and the position there.
  std::string describe(int64_t i) const override {
    const int64_t pos = start(i);
    const auto& starts = corpus_->file_starts;
    const size_t f = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), pos) - starts.begin()) - 1;
    return corpus_->files[f] + " (" + (corpus_->bytes ? "byte " : "char ") + std::to_string(pos - starts[f]) + ")";
  }

 private:
  int64_t start(int64_t i) const { return begin_ + i * stride_; }

  std::shared_ptr<const Corpus> corpus_;
  int64_t begin_;
  int64_t seq_len_;
  int64_t stride_;
  int64_t size_ = 0;
  DatasetInfo info_;
};

Splits open_text(const FormatArgs& args) {
  const bool bytes = attr_string(args.options, "level") == "byte";
  const int64_t seq_len = attr_int(args.options, "seq_len");
  const int64_t stride = attr_int(args.options, "stride");
  const double holdout = attr_float(args.options, "holdout");
  if (holdout > 0 && args.split("val"))
    throw std::invalid_argument("data.holdout " + format_double(holdout) +
                                " and data.val both give a validation split: keep one");

  const RawText train = read_split(args, "train", bytes);
  const int64_t total = static_cast<int64_t>(train.symbols.size());
  const int64_t val_tokens = static_cast<int64_t>(std::llround(holdout * static_cast<double>(total)));
  const int64_t cut = total - val_tokens;  // train = [0, cut), holdout val = [cut, total)
  if (holdout > 0 && (val_tokens == 0 || cut == 0))
    throw DataError("data.holdout " + format_double(holdout) + " of the " + std::to_string(total) +
                    "-token training corpus leaves " + (cut == 0 ? "no training text" : "no validation text"));

  const std::vector<uint32_t> vocab = build_vocabulary(train.symbols, cut);
  DatasetInfo info;
  info.input_shape = {seq_len};
  info.input_dtype = DType::I64;
  info.target_kind = TargetKind::sequence;
  info.target_shape = {seq_len};
  info.num_classes = static_cast<int64_t>(vocab.size()) + 1;
  info.class_names.push_back("<unk>");
  for (uint32_t s : vocab) info.class_names.push_back(symbol_name(s, bytes));

  Splits out;
  std::shared_ptr<const Corpus> corpus = encode(train, vocab, bytes);
  out.train = std::make_shared<const TextDataset>(corpus, 0, cut, seq_len, stride, info, "train");
  if (val_tokens > 0) out.val = std::make_shared<const TextDataset>(corpus, cut, total, seq_len, stride, info, "val");
  for (const char* name : {"val", "test"}) {
    if (!args.split(name)) continue;
    const RawText t = read_split(args, name, bytes);
    auto ds = std::make_shared<const TextDataset>(encode(t, vocab, bytes), 0, static_cast<int64_t>(t.symbols.size()),
                                                  seq_len, stride, info, name);
    (std::string(name) == "val" ? out.val : out.test) = ds;
  }
  return out;
}

const RegisterFormat reg({
    "text",
    "",
    "a character- (UTF-8) or byte-level text corpus cut into seq_len-token windows: input tokens and the "
    "next tokens as target (a character language model)",
    {A::choice("level", {"char", "byte"}, "char").describe("tokens: char = UTF-8 code points, byte = raw bytes"),
     A::integer("seq_len", 64).at_least(1).describe("tokens per sample (input and target)"),
     A::integer("stride").at_least(1).defaults_to("seq_len").describe("tokens between window starts (default seq_len)"),
     A::floating("holdout", 0.0)
         .range(0, 1, true)
         .describe("the last fraction of the training text becomes val (contiguous; 0 = none; not with data.val)")},
    {A::string("file").optional().describe("one text file under root"),
     A::string_list("files").optional().describe("text files or globs under root, read in this order"),
     A::string_list("exclude").def(std::vector<std::string>{}).describe("file-name globs to skip, e.g. ['*.dat']")},
    {"train"},
    open_text,
    nullptr,
    /*images=*/false,  // token ids: no default to_float
    "{dataset: fortunes, format: text, root: /usr/share/games/fortunes, seq_len: 128, holdout: 0.05, "
    "train: {files: ['*'], exclude: ['*.dat']}}",
    [](const AttrMap& options) {  // a config with errors may lack the key
      auto h = options.find("holdout");
      return h != options.end() && std::holds_alternative<double>(h->second) && std::get<double>(h->second) > 0;
    },
});

}  // namespace

std::string text_token_name(uint32_t symbol, bool bytes) { return symbol_name(symbol, bytes); }
void decode_text_utf8(const std::string& bytes, const std::string& what, std::vector<uint32_t>& out) {
  decode_utf8(bytes, what, out);
}
std::vector<std::string> list_text_files(const FormatArgs& args, const AttrMap& split, const std::string& key) {
  return list_files(args, split, key);
}
std::string read_text_file(const std::string& path, const std::string& key) { return read_whole(path, key); }

}  // namespace dl::data
