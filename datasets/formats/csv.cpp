// data.format: csv — one sample per row of a delimited text file (RFC 4180 quoting), raw or
// gzip-compressed (sniffed by the 1f 8b magic, not by the name).
//
//   data:
//     format: csv
//     header: false                 # the sklearn files: line 1 is "178,13,class_0,..." (counts
//     skip_rows: 1                  # and names), not column names: skip it
//     target: -1                    # a column name, an index (negative from the end) or a range
//     classes: [class_0, class_1, class_2]
//     train: {file: /usr/lib/python3/dist-packages/sklearn/datasets/data/wine_data.csv}
//
// Samples: {"input": f32 [F], "target": i64 [] (class) or f32 [K] (regression, multi_hot)}.
// The whole table is parsed when the split opens (numbers only are kept; the text is dropped),
// so every data error surfaces before training, as "file:line:column: what; the fix".
// The class mapping is built over every split's file at once, so "train" and "test" agree.
#include <charconv>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <zlib.h>

#include "datasets/format.h"
#include "datasets/formats/tabular.h"

namespace dl::data {
namespace {

using AS = AttrSchema;

// ---- reading the file ------------------------------------------------------------------------

// The file's bytes, inflated when it is gzip; a UTF-8 byte-order mark is dropped.
std::string read_text(const std::string& path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st)) throw DataError(path + ": file not found");
  if (std::filesystem::is_directory(st)) throw DataError(path + ": is a directory, not a CSV file");
  // gzopen reads plain files unchanged too ("transparent" mode), so one path serves both.
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw DataError(path + ": cannot open: " + std::strerror(errno));
  gzbuffer(f, 1 << 17);
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int err = 0;
      std::string why = gzerror(f, &err);
      gzclose(f);
      throw DataError(path + ": cannot read" + (err == Z_ERRNO ? ": " + std::string(std::strerror(errno)) : " (corrupt gzip data: " + why + ")"));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  // gzread stops quietly at a truncated gzip stream; gzclose_r reports it (Z_BUF_ERROR).
  if (gzclose_r(f) == Z_BUF_ERROR) throw DataError(path + ": truncated gzip file (the compressed stream ends early)");
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  return text;
}

// "line:column" (1-based) of byte `offset` of `text`. Only on error paths: counts from the start.
std::string position(std::string_view text, size_t offset) {
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < offset && i < text.size(); ++i)
    if (text[i] == '\n') ++line, line_start = i + 1;
  return std::to_string(line) + ":" + std::to_string(offset - line_start + 1);
}

// ---- the record scanner -----------------------------------------------------------------------

struct Field {
  std::string_view text;  // the value: unquoted, "" inside quotes already one "
  size_t offset;          // where the field starts in the file (its opening quote when quoted)
};

// Splits the text into records of fields without copying them: a field is a view into the text,
// except a quoted field holding "" escapes, which is unescaped into storage that lives until the
// next record. Only '\n' ends a line ("\r\n" too: the '\r' is dropped); blank lines are skipped.
// delim 0: fields are separated by runs of spaces and tabs, and blanks around a line are ignored
// (pandas' sep=r"\s+").
class Scanner {
 public:
  Scanner(std::string_view text, char delim, std::string path)
      : t_(text), delim_(delim), path_(std::move(path)) {}

  void skip_lines(int64_t n) {
    for (; n > 0 && pos_ < t_.size(); --n) {
      const size_t nl = t_.find('\n', pos_);
      pos_ = nl == std::string_view::npos ? t_.size() : nl + 1;
      ++line_;
    }
  }

  // The next non-blank record's fields into `out`; false at the end of the text.
  bool next(std::vector<Field>& out) {
    out.clear();
    unescaped_.clear();
    if (!skip_blank_lines()) return false;
    record_line_ = line_;
    for (;;) {
      if (ws()) skip_blanks();
      out.push_back(pos_ < t_.size() && t_[pos_] == '"' ? quoted() : plain());
      if (ws()) skip_blanks();
      if (pos_ >= t_.size()) break;
      if (t_[pos_] == '\r' && pos_ + 1 < t_.size() && t_[pos_ + 1] == '\n') ++pos_;
      if (t_[pos_] == '\n') {
        ++pos_;
        ++line_;
        break;
      }
      if (ws()) continue;
      if (t_[pos_] != delim_)
        throw DataError(path_ + ":" + position(t_, pos_) + ": unexpected '" + std::string(1, t_[pos_]) +
                        "' after a quoted field's closing quote; a quote inside a quoted field is written twice (\"\")");
      ++pos_;
    }
    return true;
  }

  int64_t record_line() const { return record_line_; }  // the line the last record started on

 private:
  bool ws() const { return delim_ == 0; }
  static bool blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }
  void skip_blanks() {
    while (pos_ < t_.size() && blank(t_[pos_])) ++pos_;
  }

  bool skip_blank_lines() {
    while (pos_ < t_.size()) {
      size_t p = pos_;
      while (p < t_.size() && blank(t_[p])) ++p;
      if (p < t_.size() && t_[p] != '\n') return true;
      pos_ = p < t_.size() ? p + 1 : p;
      if (p < t_.size()) ++line_;
    }
    return false;
  }

  Field plain() {
    const size_t start = pos_;
    size_t p = pos_;
    if (ws()) {
      while (p < t_.size() && !blank(t_[p]) && t_[p] != '\n') ++p;
    } else {
      const char* s = t_.data();
      while (p < t_.size() && s[p] != delim_ && s[p] != '\n') ++p;
    }
    pos_ = p;
    size_t end = p;
    if (!ws() && end > start && t_[end - 1] == '\r' && (end == t_.size() || t_[end] == '\n')) --end;
    return {t_.substr(start, end - start), start};
  }

  Field quoted() {
    const size_t open = pos_;
    size_t p = open + 1;
    bool escaped = false;
    for (;;) {
      const size_t q = t_.find('"', p);
      if (q == std::string_view::npos)
        throw DataError(path_ + ":" + position(t_, open) +
                        ": unterminated quoted field (the '\"' here is never closed); close it or remove it");
      if (q + 1 < t_.size() && t_[q + 1] == '"') {
        escaped = true;
        p = q + 2;
        continue;
      }
      pos_ = q + 1;
      std::string_view raw = t_.substr(open + 1, q - open - 1);
      for (char c : raw) line_ += c == '\n';
      if (!escaped) return {raw, open};
      std::string& s = unescaped_.emplace_back();
      s.reserve(raw.size());
      for (size_t i = 0; i < raw.size(); ++i) {
        s += raw[i];
        if (raw[i] == '"') ++i;  // "" -> "
      }
      return {s, open};
    }
  }

  std::string_view t_;
  char delim_;
  std::string path_;
  size_t pos_ = 0;
  int64_t line_ = 1;
  int64_t record_line_ = 0;
  std::deque<std::string> unescaped_;  // stable addresses for the views handed out
};

// ---- values -----------------------------------------------------------------------------------

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// pandas' default missing-value spellings (plus '?', the UCI repository's).
bool is_missing_token(std::string_view s) {
  static constexpr std::string_view kTokens[] = {"", "NA", "N/A", "n/a", "NaN", "nan", "NAN", "-NaN", "-nan",
                                                 "null", "NULL", "None", "<NA>", "#N/A", "?"};
  for (std::string_view t : kTokens)
    if (s == t) return true;
  return false;
}

enum class Num { ok, missing, bad, non_finite };

// The number a field holds (blanks around it allowed), as pandas would read it into float64.
Num parse_number(std::string_view s, double& v) {
  s = trim(s);
  if (is_missing_token(s)) return Num::missing;
  if (s.size() > 1 && s[0] == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1);
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return Num::bad;
  return std::isfinite(v) ? Num::ok : Num::non_finite;
}

// ---- options ----------------------------------------------------------------------------------

struct Layout {
  char delim = ',';  // 0: runs of blanks
  bool header = true;
  int64_t skip_rows = 0;
};

Layout layout_of(const AttrMap& o) {
  Layout l;
  const std::string& d = attr_string(o, "delimiter");
  l.delim = d == " " ? 0 : d[0];
  l.header = attr_bool(o, "header");
  l.skip_rows = attr_int(o, "skip_rows");
  return l;
}

std::vector<std::string> strings_or_empty(const AttrMap& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? std::vector<std::string>{} : std::get<std::vector<std::string>>(it->second);
}

std::string split_string(const AttrMap& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? "" : std::get<std::string>(it->second);
}

std::string shown(std::string_view v) {
  v = trim(v);
  return v.size() > 40 ? std::string(v.substr(0, 37)) + "..." : std::string(v);
}

// One CSV file being read: its text, its header (names) and a scanner at the data records.
// Not movable: the scanner and the fields it hands out point into text_.
class CsvFile {
 public:
  CsvFile(std::string path, const Layout& l) : path_(std::move(path)), text_(read_text(path_)), scanner_(text_, l.delim, path_) {
    scanner_.skip_lines(l.skip_rows);
    const std::string after_skip = l.skip_rows ? " after the " + std::to_string(l.skip_rows) + " skipped line(s)" : "";
    if (!scanner_.next(first_)) throw DataError(path_ + ": no " + (l.header ? "header" : "rows") + after_skip + " (the file is empty)");
    columns_ = static_cast<int64_t>(first_.size());
    first_line_ = scanner_.record_line();
    if (l.header) {
      for (const Field& x : first_) names_.emplace_back(trim(x.text));
      first_.clear();
    } else {
      pending_ = true;
    }
  }
  CsvFile(const CsvFile&) = delete;
  CsvFile& operator=(const CsvFile&) = delete;

  // The next data record, whose field count is checked; false at the end.
  bool next(std::vector<Field>& row) {
    if (pending_) {
      pending_ = false;
      row.swap(first_);
    } else if (!scanner_.next(row)) {
      return false;
    }
    ++rows_;
    const auto n = static_cast<int64_t>(row.size());
    if (n != columns_) {
      const Field& at = n > columns_ ? row[static_cast<size_t>(columns_)] : row.back();
      throw DataError(where(n > columns_ ? at.offset : at.offset + at.text.size()) + ": " + std::to_string(n) +
                      " fields, expected " + std::to_string(columns_) + " as in the " +
                      (names_.empty() ? "first row" : "header") + " on line " + std::to_string(first_line_) +
                      "; check data.delimiter and the quoting (a field holding the delimiter needs quotes)");
    }
    return true;
  }

  std::string where(size_t offset) const { return path_ + ":" + position(text_, offset); }
  std::string where(const Field& f) const { return where(f.offset); }
  // "column 'alcohol' (index 0)" or "column index 0".
  std::string column(int64_t c) const {
    if (!names_.empty() && !names_[static_cast<size_t>(c)].empty())
      return "column '" + names_[static_cast<size_t>(c)] + "' (index " + std::to_string(c) + ")";
    return "column index " + std::to_string(c);
  }
  const std::string& path() const { return path_; }
  const std::vector<std::string>& names() const { return names_; }
  int64_t columns() const { return columns_; }
  int64_t rows() const { return rows_; }  // data records read so far
  int64_t record_line() const { return scanner_.record_line(); }

 private:
  std::string path_;
  std::string text_;
  Scanner scanner_;
  std::vector<std::string> names_;
  std::vector<Field> first_;  // the first data record when there is no header
  bool pending_ = false;
  int64_t columns_ = 0, first_line_ = 0, rows_ = 0;
};

bool parse_index(std::string_view s, int64_t& v) {
  s = trim(s);
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

// Column specs -> column indices of `f`: a header name, an index (negative counts from the end)
// or a Python-style range "a:b" (either end may be left out; b excluded). `key` names the option.
std::vector<int64_t> resolve_columns(const std::vector<std::string>& specs, const CsvFile& f, const std::string& key) {
  std::vector<int64_t> cols;
  const int64_t n = f.columns();
  const auto& names = f.names();
  auto fail = [&](const std::string& spec, const std::string& why) {
    throw std::invalid_argument(key + ": '" + spec + "' " + why);
  };
  for (const std::string& spec : specs) {
    const auto named = std::find(names.begin(), names.end(), spec);
    const size_t colon = spec.find(':');
    int64_t i = 0;
    if (named != names.end()) {
      cols.push_back(named - names.begin());
    } else if (parse_index(spec, i)) {
      if (i < -n || i >= n)
        fail(spec, "is out of range: '" + f.path() + "' has " + std::to_string(n) + " columns (0.." + std::to_string(n - 1) +
                       ", or negative from the end)");
      cols.push_back(i < 0 ? i + n : i);
    } else if (colon != std::string::npos) {
      const std::string_view a = trim(std::string_view(spec).substr(0, colon)), b = trim(std::string_view(spec).substr(colon + 1));
      int64_t lo = 0, hi = n;
      if ((!a.empty() && !parse_index(a, lo)) || (!b.empty() && !parse_index(b, hi)))
        fail(spec, "is not a column range: write 'first:end' with integers (end excluded), like '0:13'");
      lo = std::clamp<int64_t>(lo < 0 ? lo + n : lo, 0, n);
      hi = std::clamp<int64_t>(hi < 0 ? hi + n : hi, 0, n);
      if (lo >= hi) fail(spec, "selects no column of '" + f.path() + "' (" + std::to_string(n) + " columns)");
      for (int64_t c = lo; c < hi; ++c) cols.push_back(c);
    } else if (names.empty()) {
      fail(spec, "is not a column index or a range like '0:13' (data.header is false, so the columns have no names)");
    } else {
      std::string have;
      for (size_t c = 0; c < names.size() && c < 30; ++c) have += (c ? ", " : "") + names[c];
      fail(spec, "is not a column of '" + f.path() + "' (columns: " + have + (names.size() > 30 ? ", ..." : "") + ")");
    }
  }
  for (size_t a = 0; a < cols.size(); ++a)
    for (size_t b = a + 1; b < cols.size(); ++b)
      if (cols[a] == cols[b]) throw std::invalid_argument(key + ": " + f.column(cols[a]) + " is selected twice");
  return cols;
}

// The distinct values of a class target column over every split, in first-seen order; mapped
// to class indices once all splits are read, so that every split uses the same mapping.
class ClassValues {
 public:
  // The value's id; `where` is called for a value not seen before (its first place, for errors).
  template <class Where>
  int64_t id(std::string_view value, Where&& where) {
    value = trim(value);
    if (auto it = index_.find(value); it != index_.end()) return it->second;
    const auto id = static_cast<int64_t>(values_.size());
    index_.emplace(std::string(value), id);
    values_.push_back({std::string(value), where()});
    return id;
  }

  // Class index per id. With data.classes: a listed name -> its position, an integer in range
  // stays; without: integers stay when every value is one, else the sorted distinct values.
  std::vector<int64_t> map(const std::vector<std::string>& classes, DatasetInfo& info) const {
    std::vector<int64_t> index(values_.size());
    std::vector<int64_t> as_int(values_.size(), -1);
    bool all_int = true, all_num = true;
    const Value* fraction = nullptr;
    for (size_t i = 0; i < values_.size(); ++i) {
      double v = 0;
      const bool num = parse_number(values_[i].text, v) == Num::ok;
      all_num = all_num && num;
      if (num && v == std::floor(v) && std::fabs(v) < 9e15) as_int[i] = static_cast<int64_t>(v);
      else all_int = false;
      if (num && v != std::floor(v) && !fraction) fraction = &values_[i];
      if (num && v < 0 && v == std::floor(v))
        throw DataError(values_[i].where + ": class " + values_[i].text + " is negative; class indices start at 0");
    }
    if (all_num && fraction)
      throw DataError(fraction->where + ": the target column holds numbers such as " + fraction->text +
                      ", not classes; set data.target_kind: regression for numeric targets");
    if (!classes.empty()) {
      info.num_classes = static_cast<int64_t>(classes.size());
      info.class_names = classes;
      for (size_t i = 0; i < values_.size(); ++i) {
        const auto named = std::find(classes.begin(), classes.end(), values_[i].text);
        if (named != classes.end()) {
          index[i] = named - classes.begin();
        } else if (as_int[i] >= 0 && as_int[i] < info.num_classes) {
          index[i] = as_int[i];
        } else {
          throw DataError(values_[i].where + ": class '" + values_[i].text + "' is neither one of data.classes (" +
                          format_attr(AttrValue(classes)) + ") nor an index 0.." + std::to_string(info.num_classes - 1));
        }
      }
    } else if (all_int) {
      int64_t mx = -1;
      for (size_t i = 0; i < values_.size(); ++i) mx = std::max(mx, index[i] = as_int[i]);
      info.num_classes = mx + 1;
    } else {
      std::vector<size_t> order(values_.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values_[a].text < values_[b].text; });
      for (size_t r = 0; r < order.size(); ++r) {
        index[order[r]] = static_cast<int64_t>(r);
        info.class_names.push_back(values_[order[r]].text);
      }
      info.num_classes = static_cast<int64_t>(order.size());
    }
    return index;
  }

 private:
  struct Value {
    std::string text;
    std::string where;  // "file:line:col" of its first occurrence
  };
  std::map<std::string, int64_t, std::less<>> index_;
  std::vector<Value> values_;
};

struct Options {
  Layout layout;
  std::vector<std::string> features, target;
  TargetKind kind = TargetKind::class_index;
  std::vector<std::string> classes;
};

// One split's file(s), converted: numbers only.
struct Table {
  std::string path;
  int64_t features = 0, targets = 0;  // F and K
  std::vector<float> inputs;          // [N, F]
  std::vector<float> values;          // [N, K] regression / multi_hot targets
  std::vector<int64_t> class_ids;     // [N] class targets (ClassValues ids)
  std::vector<int64_t> lines;         // [N] each row's line in the data file
  std::vector<std::string> target_names;
};

float number(const CsvFile& f, const Field& x, int64_t col, const char* role) {
  double v = 0;
  switch (parse_number(x.text, v)) {
    case Num::ok: return static_cast<float>(v);
    case Num::missing:
      throw DataError(f.where(x) + ": missing value in " + f.column(col) + "; fill it in or remove the row");
    case Num::bad:
      throw DataError(f.where(x) + ": '" + shown(x.text) + "' in " + f.column(col) + " is not a number; fix it, or leave the column out of data." + role);
    case Num::non_finite:
      throw DataError(f.where(x) + ": '" + shown(x.text) + "' in " + f.column(col) + " is not a finite number");
  }
  return 0;
}

Table read_split(const std::string& split, const AttrMap& keys, const FormatArgs& args, const Options& o, ClassValues& classes) {
  CsvFile data(args.resolve(attr_string(keys, "file")), o.layout);
  const std::string target_path = split_string(keys, "target_file");
  std::unique_ptr<CsvFile> target_file;
  if (!target_path.empty()) target_file = std::make_unique<CsvFile>(args.resolve(target_path), o.layout);
  const CsvFile& tf = target_file ? *target_file : data;

  std::vector<int64_t> tcols;
  if (!o.target.empty()) {
    tcols = resolve_columns(o.target, tf, "data.target");
  } else if (target_file) {
    for (int64_t c = 0; c < tf.columns(); ++c) tcols.push_back(c);
  } else {
    throw std::invalid_argument("data.target: the csv format needs the target column (a name, an index like \"-1\", or "
                                "a range), or data." + split + ".target_file");
  }
  std::vector<int64_t> fcols;
  if (!o.features.empty()) {
    fcols = resolve_columns(o.features, data, "data.features");
  } else {
    for (int64_t c = 0; c < data.columns(); ++c)
      if (target_file || std::find(tcols.begin(), tcols.end(), c) == tcols.end()) fcols.push_back(c);
  }
  if (!target_file)
    for (int64_t c : fcols)
      if (std::find(tcols.begin(), tcols.end(), c) != tcols.end())
        throw std::invalid_argument("data.features: " + data.column(c) + " is also data.target");
  if (fcols.empty()) throw std::invalid_argument("data.features: no feature column is left in '" + data.path() + "'");
  if (o.kind == TargetKind::class_index && tcols.size() != 1)
    throw std::invalid_argument("data.target: class targets need exactly one column, got " + std::to_string(tcols.size()) +
                                " (several columns are data.target_kind: multi_hot or regression)");

  Table t;
  t.path = data.path();
  t.features = static_cast<int64_t>(fcols.size());
  t.targets = static_cast<int64_t>(tcols.size());
  for (int64_t c : tcols) t.target_names.push_back(tf.names().empty() ? "" : tf.names()[static_cast<size_t>(c)]);
  std::vector<Field> row, trow;
  while (data.next(row)) {
    if (target_file && !target_file->next(trow))
      throw DataError(data.where(row[0]) + ": data row " + std::to_string(data.rows()) + " has no row in target_file '" +
                      tf.path() + "' (it has " + std::to_string(tf.rows()) + "); the two files need one row per sample each");
    const std::vector<Field>& tr = target_file ? trow : row;
    for (int64_t c : fcols) t.inputs.push_back(number(data, row[static_cast<size_t>(c)], c, "features"));
    t.lines.push_back(data.record_line());
    if (o.kind == TargetKind::class_index) {
      const Field& x = tr[static_cast<size_t>(tcols[0])];
      if (is_missing_token(trim(x.text)))
        throw DataError(tf.where(x) + ": missing class in " + tf.column(tcols[0]) + "; fill it in or remove the row");
      t.class_ids.push_back(classes.id(x.text, [&] { return tf.where(x); }));
      continue;
    }
    for (int64_t c : tcols) {
      const Field& x = tr[static_cast<size_t>(c)];
      const float v = number(tf, x, c, "target");
      if (o.kind == TargetKind::multi_hot && v != 0.f && v != 1.f)
        throw DataError(tf.where(x) + ": '" + shown(x.text) + "' in " + tf.column(c) + " is not 0 or 1 (multi_hot targets are 0/1 columns)");
      t.values.push_back(v);
    }
  }
  if (target_file && target_file->next(trow))
    throw DataError(tf.where(trow[0]) + ": target_file has more rows than '" + data.path() + "' (" + std::to_string(data.rows()) +
                    "); the two files need one row per sample each");
  if (t.lines.empty()) throw DataError(data.path() + ": no data rows" + (o.layout.header ? " after the header" : ""));
  return t;
}

Options options_of(const AttrMap& o) {
  Options opt;
  opt.layout = layout_of(o);
  opt.features = strings_or_empty(o, "features");
  opt.target = strings_or_empty(o, "target");
  opt.kind = tabular::parse_target_kind(attr_string(o, "target_kind"));
  opt.classes = tabular::class_names_option(o);
  if (!opt.classes.empty() && opt.kind != TargetKind::class_index)
    throw std::invalid_argument("data.classes: only class targets have class names (data.target_kind is " +
                                attr_string(o, "target_kind") + ")");
  return opt;
}

Splits open_csv(const FormatArgs& args) {
  const Options o = options_of(args.options);
  ClassValues classes;
  std::map<std::string, Table> tables;
  for (const char* name : {"train", "val", "test"})
    if (const AttrMap* keys = args.split(name)) tables.emplace(name, read_split(name, *keys, args, o, classes));
  const Table& train = tables.at("train");
  DatasetInfo info;
  info.input_shape = {train.features};
  info.input_dtype = DType::F32;
  info.target_kind = o.kind;
  std::vector<int64_t> class_index;
  if (o.kind == TargetKind::class_index) {
    class_index = classes.map(o.classes, info);
  } else {
    info.target_shape = {train.targets};
    if (o.kind == TargetKind::multi_hot) {
      info.num_classes = train.targets;
      if (std::none_of(train.target_names.begin(), train.target_names.end(), [](const std::string& s) { return s.empty(); }))
        info.class_names = train.target_names;
    }
  }
  Splits splits;
  for (auto& [name, t] : tables) {
    if (t.features != train.features || t.targets != train.targets)
      throw DataError(t.path + ": " + std::to_string(t.features) + " feature and " + std::to_string(t.targets) +
                      " target column(s), but the training file '" + train.path + "' has " + std::to_string(train.features) +
                      " and " + std::to_string(train.targets) + "; the splits need the same columns");
    const auto n = static_cast<int64_t>(t.lines.size());
    Tensor inputs = from_vector(t.inputs, {n, t.features});
    Tensor targets;
    if (o.kind == TargetKind::class_index) {
      std::vector<int64_t> labels(t.class_ids.size());
      for (size_t i = 0; i < labels.size(); ++i) labels[i] = class_index[static_cast<size_t>(t.class_ids[i])];
      targets = from_vector(labels, {n});
    } else {
      targets = from_vector(t.values, {n, t.targets});
    }
    auto where = [path = t.path, lines = std::move(t.lines)](int64_t i) {
      return path + ":" + std::to_string(lines[static_cast<size_t>(i)]);
    };
    auto ds = std::make_shared<tabular::TensorDataset>(name, std::move(inputs), std::move(targets), info, std::move(where));
    (name == "train" ? splits.train : name == "val" ? splits.val : splits.test) = std::move(ds);
  }
  return splits;
}

std::string one_character(const AttrValue& v) {
  const auto* s = std::get_if<std::string>(&v);
  if (!s || s->size() != 1 || *s == "\"" || *s == "\n" || *s == "\r") return "not a single character";
  return "";
}

const RegisterFormat kCsv(FormatDef{
    .name = "csv",
    .torch_name = "",
    .doc = "A delimited text table (pandas.read_csv-like), raw or .gz: one sample per row, data.target names the "
           "target column(s), the other columns (or data.features) become the f32 [F] input",
    .attrs =
        {
            AS::boolean("header", true).describe("the first line (after skip_rows) names the columns"),
            AS::string("delimiter", ",")
                .check(one_character, "one character; \" \" splits at runs of spaces and tabs")
                .describe("the field separator; \" \" = any run of blanks (pandas sep=r\"\\s+\")"),
            AS::integer("skip_rows", 0).at_least(0).describe("lines skipped at the start of each file, before the header"),
            AS::string_list("features").optional().describe(
                "input columns: names, indices (negative from the end) or ranges like \"0:13\" (end excluded); "
                "default: every column but the target"),
            AS::string_list("target").optional().describe(
                "target column(s), as in features; required unless the split gives a target_file (default there: all its columns)"),
            tabular::target_kind_attr(false),
            tabular::classes_attr(),
        },
    .split_attrs =
        {
            AS::string("file").describe("the CSV file (under data.root unless absolute), raw or gzip"),
            AS::string("target_file").optional().describe(
                "the targets in a file of their own, row for row (sklearn's diabetes_target.csv.gz); data.target "
                "then picks its columns"),
        },
    .open = open_csv,
    .peek = nullptr,  // open() parses the table: cheap next to training on it
    .images = false,  // f32 features: no default transform
    .example = "{format: csv, root: /usr/lib/python3/dist-packages/sklearn/datasets/data, header: false, skip_rows: 1, "
               "target: -1, classes: [class_0, class_1, class_2], train: {file: wine_data.csv}, test_fraction: 0.2}",
});

}  // namespace
}  // namespace dl::data
