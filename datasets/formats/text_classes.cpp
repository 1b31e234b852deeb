// data.format: text_classification — text records of variable length classified by the file
// they come from (one file per class), as byte sequences: the input of a packed-sequence model.
//
//   data:
//     format: text_classification
//     root: /usr/share/games/fortunes
//     separator: '%'           # a line equal to it ends a record (fortune files); '' = one record per line
//     max_len: 256             # longer records keep their first 256 bytes
//     train: {files: [computers, definitions, politics, songs-poems]}   # class i = file i
//     val_fraction: 0.1        # generic carving (format.h): the format gives the train split only
//
// A record is the lines between two separator lines (or one line when `separator` is empty),
// joined by '\n', without the separator lines; a record shorter than `min_len` bytes (an empty
// one between two separators, a blank line) is skipped. Sample i: "input" = the record's bytes
// as i64 token ids [L] (1 <= L <= max_len; the ids are the byte values 1..255, so no vocabulary
// is needed and 0 is free for padding: embedding num_embeddings 256, padding_idx 0),
// "target" = its file's class, i64 []. Inputs vary in length: info().variable_length, and
// collate pads a batch with 0 to its longest record and adds "input_lengths" (the model's
// second input, e.g. `inputs: [embed, input_lengths]` of an lstm: PyTorch's
// pack_padded_sequence(enforce_sorted=False)).
//
// Every split lists its files in class order: one file per class, the same number in each. The
// class names are data.classes, or the training files' names.
#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/format.h"
#include "datasets/formats/text.h"

namespace dl::data {
namespace {

using A = AttrSchema;

struct Record {
  int64_t begin = 0;  // byte range in the split's text
  int64_t length = 0;
  int32_t file = 0;   // = class
  int64_t line = 0;   // 1-based line of the record's first line in its file
};

// One split: its files' bytes back to back and the records in file order.
struct Records {
  std::string bytes;
  std::vector<std::string> files;
  std::vector<Record> records;
  int64_t skipped_short = 0;
  int64_t truncated = 0;
};

struct Options {
  std::string separator;
  int64_t max_len = 0;
  int64_t min_len = 1;
};

// Appends the records of `text` (file `f` of the split) to `out`.
void split_records(const std::string& path, const std::string& text, int32_t f, const Options& o, Records& out) {
  const int64_t base = static_cast<int64_t>(out.bytes.size());
  out.bytes += text;
  const int64_t n = static_cast<int64_t>(text.size());
  int64_t begin = 0, first_line = 1, line = 1;
  auto close = [&](int64_t end) {  // the record text[begin, end)
    int64_t len = end - begin;
    if (len < o.min_len) {
      if (len > 0) ++out.skipped_short;
      return;
    }
    if (len > o.max_len) len = o.max_len, ++out.truncated;
    out.records.push_back({base + begin, len, f, first_line});
  };
  if (const size_t z = text.find('\0'); z != std::string::npos)
    throw DataError(path + ":" + std::to_string(1 + std::count(text.begin(), text.begin() + static_cast<int64_t>(z), '\n')) +
                    ": a NUL byte (0x00) at byte offset " + std::to_string(z) +
                    ": text_classification reads text (token 0 is the padding); is this a binary file?");
  for (int64_t pos = 0; pos <= n;) {
    const size_t nl = text.find('\n', static_cast<size_t>(pos));
    const int64_t end = nl == std::string::npos ? n : static_cast<int64_t>(nl);
    if (o.separator.empty()) {
      begin = pos, first_line = line;
      close(end);
    } else if (text.compare(static_cast<size_t>(pos), static_cast<size_t>(end - pos), o.separator) == 0) {
      close(pos == begin ? pos : pos - 1);  // without the '\n' before the separator line
      begin = end + 1, first_line = line + 1;
    }
    if (nl == std::string::npos) break;
    pos = end + 1;
    ++line;
  }
  if (!o.separator.empty() && begin < n) {
    int64_t end = n;
    if (text[static_cast<size_t>(n - 1)] == '\n') --end;  // the file's final newline
    if (end > begin) close(end);
  }
}

Records read_split(const FormatArgs& args, const std::string& split, const Options& o, size_t classes) {
  const std::string key = "data." + split;
  Records r;
  r.files = list_text_files(args, *args.split(split), key);
  if (classes != 0 && r.files.size() != classes)
    throw std::invalid_argument(key + ".files gives " + std::to_string(r.files.size()) + " file(s) but there are " +
                                std::to_string(classes) +
                                " classes: every split lists one file per class, in the training split's order");
  for (size_t f = 0; f < r.files.size(); ++f) {
    const size_t before = r.records.size();
    split_records(r.files[f], read_text_file(r.files[f], key), static_cast<int32_t>(f), o, r);
    if (r.records.size() == before)
      throw DataError(key + ": '" + r.files[f] + "' has no record of at least data.min_len = " +
                      std::to_string(o.min_len) + " bytes" +
                      (o.separator.empty() ? std::string(" (one record per line)")
                                           : " between lines '" + o.separator + "' (data.separator)"));
  }
  return r;
}

class TextClassesDataset final : public Dataset {
 public:
  TextClassesDataset(Records records, DatasetInfo info, std::string name)
      : Dataset(std::move(name)), r_(std::move(records)), info_(std::move(info)) {}

  int64_t size() const override { return static_cast<int64_t>(r_.records.size()); }
  const DatasetInfo& info() const override { return info_; }
  std::optional<int64_t> class_of(int64_t i) const override {
    check_index(i);
    return r_.records[static_cast<size_t>(i)].file;
  }

  Sample get(int64_t i) const override {
    check_index(i);
    const Record& rec = r_.records[static_cast<size_t>(i)];
    Tensor input = empty({rec.length}, DType::I64);
    int64_t* in = input.data<int64_t>();
    const auto* src = reinterpret_cast<const unsigned char*>(r_.bytes.data()) + rec.begin;
    for (int64_t k = 0; k < rec.length; ++k) in[k] = src[k];
    Tensor target = empty({}, DType::I64);
    target.data<int64_t>()[0] = rec.file;
    Sample s;
    s.set(kInput, std::move(input));
    s.set(kTarget, std::move(target));
    return s;
  }

  // "path:line": where the record starts.
  std::string describe(int64_t i) const override {
    check_index(i);
    const Record& rec = r_.records[static_cast<size_t>(i)];
    return r_.files[static_cast<size_t>(rec.file)] + ":" + std::to_string(rec.line);
  }

 private:
  Records r_;
  DatasetInfo info_;
};

Splits open_text_classes(const FormatArgs& args) {
  Options o;
  o.separator = attr_string(args.options, "separator");
  o.max_len = attr_int(args.options, "max_len");
  o.min_len = attr_int(args.options, "min_len");
  if (o.min_len > o.max_len)
    throw std::invalid_argument("data.min_len " + std::to_string(o.min_len) + " is above data.max_len " +
                                std::to_string(o.max_len) + ": no record could be kept");
  if (o.separator.find('\n') != std::string::npos)
    throw std::invalid_argument("data.separator is compared with whole lines: it cannot contain a newline");
  const std::vector<std::string>& names = attr_strings(args.options, "classes");

  Records train = read_split(args, "train", o, names.size());
  DatasetInfo info;
  info.input_shape = {o.max_len};
  info.input_dtype = DType::I64;
  info.variable_length = true;
  info.target_kind = TargetKind::class_index;
  info.target_shape = {};
  info.num_classes = static_cast<int64_t>(train.files.size());
  if (info.num_classes < 2)
    throw std::invalid_argument("data.train.files gives " + std::to_string(info.num_classes) +
                                " file(s): a classification needs at least 2 classes, one file each");
  info.class_names = names;
  if (names.empty())
    for (const std::string& f : train.files) info.class_names.push_back(std::filesystem::path(f).filename().string());
  if (train.truncated > 0)
    info.notes.push_back(std::to_string(train.truncated) + " training record(s) longer than data.max_len = " +
                         std::to_string(o.max_len) + " bytes keep their first " + std::to_string(o.max_len));
  if (train.skipped_short > 0)
    info.notes.push_back(std::to_string(train.skipped_short) + " training record(s) shorter than data.min_len = " +
                         std::to_string(o.min_len) + " bytes skipped");

  Splits out;
  const size_t classes = train.files.size();
  out.train = std::make_shared<const TextClassesDataset>(std::move(train), info, "train");
  for (const char* name : {"val", "test"}) {
    if (!args.split(name)) continue;
    auto ds = std::make_shared<const TextClassesDataset>(read_split(args, name, o, classes), info, name);
    (std::string(name) == "val" ? out.val : out.test) = ds;
  }
  return out;
}

const RegisterFormat reg({
    "text_classification",
    "",
    "text records of any length (lines, or the text between separator lines) classified by their file (one "
    "file per class), as byte token ids i64 [L] (1..255; 0 pads): batches pad to the longest record and add "
    "input_lengths for packed sequences (lstm/gru/rnn `inputs: [x, input_lengths]`)",
    {A::string("separator", "").describe(
         "a line equal to this ends a record ('%' for fortune files); '' = every line is a record"),
     A::integer("max_len", 256).range(1, 1 << 20).describe("records longer than this keep their first max_len bytes"),
     A::integer("min_len", 1).at_least(1).describe("records shorter than this (in bytes) are skipped"),
     A::string_list("classes").def(std::vector<std::string>{}).describe(
         "class names in file order (default: the training files' names)")},
    {A::string_list("files").req().describe("one text file per class, in class order (globs: sorted matches)"),
     A::string_list("exclude").def(std::vector<std::string>{}).describe("file-name globs to skip, e.g. ['*.dat']")},
    {"train"},
    open_text_classes,
    nullptr,
    /*images=*/false,  // token ids: no default to_float
    "{format: text_classification, root: /usr/share/games/fortunes, separator: '%', max_len: 256, "
    "train: {files: [computers, definitions, politics, songs-poems]}, val_fraction: 0.1, test_fraction: 0.1}",
});

}  // namespace
}  // namespace dl::data
