// data.format: text (datasets/formats/text.cpp): the vocabulary, the windows and their stride,
// byte vs char level, file lists / globs / exclude, val/test with unknown characters, the
// holdout tail, the errors (missing file, empty corpus, seq_len beyond the corpus, invalid UTF-8
// naming file and byte offset) and the real fortunes corpus when installed.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cli/run/setup.h"
#include "cli/run/trainer.h"
#include "configs/config.h"
#include "datasets/dataloader.h"
#include "datasets/dataset.h"
#include "datasets/format.h"
#include "datasets/sampler.h"
#include "tests/support/open_format.h"
#include "tests/support/tempdir.h"

using namespace dl;
using namespace dl::data;
using dl::test::TempDir;
using Strings = std::vector<std::string>;
using Ids = std::vector<int64_t>;

namespace {

Splits open_corpus(const std::string& root, AttrMap options, std::map<std::string, AttrMap> splits,
                   SplitOptions split_options = {}) {
  return dl::test::open_format("text", root, std::move(options), std::move(splits), split_options);
}

AttrMap one_file(const std::string& path) { return {{"file", path}}; }

Ids ids(const Tensor& t) {
  REQUIRE(t.dtype() == DType::I64);
  return Ids(t.data<int64_t>(), t.data<int64_t>() + t.numel());
}

// The text a window's ids spell with the vocabulary.
std::string spell(const Dataset& d, const Tensor& t) {
  std::string s;
  for (int64_t id : ids(t)) s += d.info().class_names.at(static_cast<size_t>(id));
  return s;
}

std::string data_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "(no DataError)";
}

}  // namespace

TEST_CASE("text: sorted vocabulary after <unk>, windows of input and next tokens", "[datasets][text]") {
  TempDir dir;
  dir.file("t.txt", "hello world");  // 11 characters
  Splits s = open_corpus(dir.path.string(), {{"seq_len", int64_t{4}}}, {{"train", one_file("t.txt")}});
  const Dataset& d = *s.train;
  const DatasetInfo& info = d.info();
  CHECK(info.class_names == Strings{"<unk>", " ", "d", "e", "h", "l", "o", "r", "w"});
  CHECK(info.num_classes == 9);
  CHECK(info.target_kind == TargetKind::sequence);
  CHECK(info.input_dtype == DType::I64);
  CHECK(info.input_shape == Shape{4});
  REQUIRE(d.size() == 2);  // windows at 0 and 4; one at 8 would need tokens up to 12
  Sample a = d.get(0);
  CHECK(ids(a.at(kInput)) == Ids{4, 3, 5, 5});   // h e l l
  CHECK(ids(a.at(kTarget)) == Ids{3, 5, 5, 6});  // e l l o
  CHECK(spell(d, d.get(1).at(kInput)) == "o wo");
  CHECK(spell(d, d.get(1).at(kTarget)) == " wor");
  CHECK(d.describe(1) == dir.file("t.txt") + " (char 4)");
  CHECK(!s.val);
  CHECK(!s.test);
  CHECK_THROWS_AS(d.get(2), std::out_of_range);
}

TEST_CASE("text: stride sets the distance between windows", "[datasets][text]") {
  TempDir dir;
  dir.file("t.txt", "abcdefghijk");  // 11
  auto windows = [&](int64_t stride) {
    Splits s =
        open_corpus(dir.path.string(), {{"seq_len", int64_t{4}}, {"stride", stride}}, {{"train", one_file("t.txt")}});
    Strings w;
    for (int64_t i = 0; i < s.train->size(); ++i) w.push_back(spell(*s.train, s.train->get(i).at(kInput)));
    return w;
  };
  CHECK(windows(1) == Strings{"abcd", "bcde", "cdef", "defg", "efgh", "fghi", "ghij"});
  CHECK(windows(3) == Strings{"abcd", "defg", "ghij"});
  CHECK(windows(4) == Strings{"abcd", "efgh"});
  CHECK(windows(10) == Strings{"abcd"});
}

TEST_CASE("text: char level reads UTF-8 code points, byte level raw bytes", "[datasets][text]") {
  TempDir dir;
  dir.file("t.txt", "h\xC3\xA9llo w\xC3\xB6rld");  // héllo wörld: 11 code points, 13 bytes
  Splits c = open_corpus(dir.path.string(), {{"seq_len", int64_t{10}}, {"stride", int64_t{1}}},
                         {{"train", one_file("t.txt")}});
  CHECK(c.train->size() == 1);
  CHECK(c.train->info().class_names == Strings{"<unk>", " ", "d", "h", "l", "o", "r", "w", "\xC3\xA9", "\xC3\xB6"});
  CHECK(spell(*c.train, c.train->get(0).at(kTarget)) == "\xC3\xA9llo w\xC3\xB6rld");
  Splits b =
      open_corpus(dir.path.string(), {{"level", std::string("byte")}, {"seq_len", int64_t{10}}, {"stride", int64_t{1}}},
                  {{"train", one_file("t.txt")}});
  CHECK(b.train->size() == 3);
  CHECK(b.train->info().class_names ==
        Strings{"<unk>", " ", "d", "h", "l", "o", "r", "w", "<0xA9>", "<0xB6>", "<0xC3>"});
  CHECK(ids(b.train->get(0).at(kInput))[1] == 10);  // 0xC3
  CHECK(b.train->describe(2) == dir.file("t.txt") + " (byte 2)");
  // NUL is a token like any other, named so that the name survives C strings (so are the other
  // control characters: "<0x0A>" is a newline); 3- and 4-byte
  // characters (U+20AC, U+1F600) are one token each, named by their UTF-8.
  dir.file("nul.txt", std::string("a\0b\n\xE2\x82\xAC\xF0\x9F\x98\x80", 11));
  Splits n = open_corpus(dir.path.string(), {{"seq_len", int64_t{2}}}, {{"train", one_file("nul.txt")}});
  CHECK(n.train->info().class_names ==
        Strings{"<unk>", "<0x00>", "<0x0A>", "a", "b", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"});
  CHECK(n.train->size() == 2);
}

TEST_CASE("text: file lists and globs, excluded names, a symlinked file read once", "[datasets][text]") {
  TempDir dir;
  std::filesystem::create_directory(dir.path / "corpus");
  dir.file("corpus/a", "abc");
  dir.file("corpus/b", "def");
  dir.file("corpus/b.dat", "\xFF\xFE binary index");
  std::filesystem::create_symlink("b", dir.path / "corpus" / "b.u8");
  dir.file("z.txt", "xyz");
  Splits s = open_corpus(dir.path.string(), {{"seq_len", int64_t{8}}},
                         {{"train", {{"files", Strings{"corpus/*", "z.txt"}}, {"exclude", Strings{"*.dat"}}}}});
  REQUIRE(s.train->size() == 1);
  CHECK(spell(*s.train, s.train->get(0).at(kInput)) + spell(*s.train, s.train->get(0).at(kTarget)).substr(7) ==
        "abcdefxyz");
  // The shortest corpus: seq_len + 1 tokens make one window.
  Splits one = open_corpus(dir.path.string(), {{"seq_len", int64_t{2}}}, {{"train", {{"files", Strings{"corpus/a"}}}}});
  CHECK(one.train->size() == 1);
}

TEST_CASE("text: val and test use the training vocabulary, unknown characters map to <unk>", "[datasets][text]") {
  TempDir dir;
  dir.file("train.txt", "abcabcabc");
  dir.file("val.txt", "abzab");
  dir.file("test.txt", "cba!?");
  Splits s =
      open_corpus(dir.path.string(), {{"seq_len", int64_t{3}}},
                  {{"train", one_file("train.txt")}, {"val", one_file("val.txt")}, {"test", one_file("test.txt")}});
  REQUIRE(s.val);
  REQUIRE(s.test);
  CHECK(s.val->info().class_names == Strings{"<unk>", "a", "b", "c"});
  CHECK(ids(s.val->get(0).at(kInput)) == Ids{1, 2, 0});
  CHECK(ids(s.test->get(0).at(kTarget)) == Ids{2, 1, 0});
  CHECK(s.val->name() == "val");
  CHECK(s.test->name() == "test");
}

TEST_CASE("text: holdout makes the corpus's tail the validation split", "[datasets][text]") {
  TempDir dir;
  dir.file("t.txt", std::string(30, 'a') + "bbbbbbbbbZ");  // 40 characters; Z only in the tail
  Splits s =
      open_corpus(dir.path.string(), {{"seq_len", int64_t{4}}, {"holdout", 0.25}}, {{"train", one_file("t.txt")}});
  REQUIRE(s.val);
  CHECK(s.train->info().class_names == Strings{"<unk>", "a"});  // from the first 30 characters only
  CHECK(s.train->size() == (30 - 5) / 4 + 1);
  CHECK(s.val->size() == (10 - 5) / 4 + 1);
  CHECK(ids(s.val->get(0).at(kInput)) == Ids{0, 0, 0, 0});  // bbbb: not in the training vocabulary
  CHECK(s.val->describe(0) == dir.file("t.txt") + " (char 30)");
  CHECK_THROWS_WITH(open_corpus(dir.path.string(), {{"seq_len", int64_t{4}}, {"holdout", 0.25}},
                                {{"train", one_file("t.txt")}, {"val", one_file("t.txt")}}),
                    Catch::Contains("data.holdout 0.25 and data.val both give a validation split"));
}

TEST_CASE("text: data errors name the file and the fix", "[datasets][text]") {
  TempDir dir;
  const std::string root = dir.path.string();
  const AttrMap opts = {{"seq_len", int64_t{4}}};
  dir.file("empty.txt", "");
  dir.file("short.txt", "abcd");
  dir.file("bad.txt", "ok \xE2\x82 cut");
  dir.file("overlong.txt", "ab\xC0\xAF");
  CHECK_THAT(data_error([&] {
               open_corpus(root, opts, {{"train", one_file("missing.txt")}});
             }),
             Catch::Contains("cannot open '" + dir.file("missing.txt") + "'") && Catch::Contains("No such file"));
  CHECK_THAT(data_error([&] {
               open_corpus(root, opts, {{"train", one_file("empty.txt")}});
             }),
             Catch::Contains("data.train: the corpus is empty"));
  CHECK_THAT(data_error([&] {
               open_corpus(root, opts, {{"train", one_file("short.txt")}});
             }),
             Catch::Contains("the corpus has 4 tokens but one sample needs seq_len + 1 = 5") &&
                 Catch::Contains("lower data.seq_len"));
  CHECK_THAT(data_error([&] {
               open_corpus(root, opts, {{"train", one_file("bad.txt")}});
             }),
             Catch::Contains(dir.file("bad.txt") + ": invalid UTF-8 at byte offset 3 (byte 0xE2)") &&
                 Catch::Contains("data.level: byte"));
  CHECK_THAT(data_error([&] {
               open_corpus(root, opts, {{"train", one_file("overlong.txt")}});
             }),
             Catch::Contains("byte offset 2 (byte 0xC0)"));
  dir.file("surrogate.txt", "abc\xED\xA0\x80");  // U+D800 encoded: not a character
  CHECK_THAT(data_error([&] {
               open_corpus(root, opts, {{"train", one_file("surrogate.txt")}});
             }),
             Catch::Contains("byte offset 3 (byte 0xED)"));
  dir.file("cut.txt", "abcdef\xE2\x82");
  CHECK_THAT(data_error([&] {
               open_corpus(root, opts, {{"train", one_file("cut.txt")}});
             }),
             Catch::Contains("byte offset 6 (byte 0xE2, a sequence cut off by the end of the file)"));
  CHECK(open_corpus(root, {{"seq_len", int64_t{4}}, {"level", std::string("byte")}}, {{"train", one_file("bad.txt")}})
            .train->size() == 2);  // the same bytes are fine at byte level
  CHECK_THAT(data_error([&] {
               open_corpus(root, opts, {{"train", {{"files", Strings{"nothing*.txt"}}}}});
             }),
             Catch::Contains("data.train.files: '" + dir.file("nothing*.txt") + "' matches no file"));
  CHECK_THROWS_WITH(open_corpus(root, opts, {{"train", {{"file", std::string("short.txt")}, {"files", Strings{"a"}}}}}),
                    Catch::Contains("give either 'file'") && Catch::Contains("not both"));
  CHECK_THROWS_WITH(open_corpus(root, opts, {{"train", AttrMap{}}}), Catch::Contains("give either 'file'"));
  CHECK_THAT(data_error([&] {
               open_corpus(root, opts, {{"train", one_file(".")}});
             }),
             Catch::Contains("is a directory"));
}

TEST_CASE("text: the fortunes corpus opens at char and byte level", "[datasets][text]") {
  const std::string dir = "/usr/share/games/fortunes";
  if (!std::filesystem::exists(dir + "/fortunes")) {
    WARN("fortunes not installed (apt-get install fortunes); skipped");
    return;
  }
  const std::map<std::string, AttrMap> splits = {
      {"train", {{"files", Strings{dir + "/*"}}, {"exclude", Strings{"*.dat"}}}}};
  Splits c = open_corpus("", {{"seq_len", int64_t{128}}, {"holdout", 0.05}}, splits);
  const DatasetInfo& info = c.train->info();
  CHECK(info.num_classes > 90);  // printable ASCII and a few accented letters
  CHECK(info.num_classes < 300);
  CHECK(std::find(info.class_names.begin(), info.class_names.end(), "%") != info.class_names.end());
  CHECK(std::find(info.class_names.begin(), info.class_names.end(), "<0x0A>") != info.class_names.end());  // \n
  CHECK(c.train->size() > 15000);  // about 2.5 MB of text / 128
  REQUIRE(c.val);
  CHECK(c.val->size() > c.train->size() / 25);
  // The registration's example is this recipe.
  Config cfg = load_config_string("model: {layers: [flatten]}\ndata: " + format_def("text").example + "\n", "ex.yaml");
  CHECK(train::open_data(cfg).train->size() == c.train->size());
  Splits b = open_corpus("", {{"seq_len", int64_t{128}}, {"level", std::string("byte")}}, splits);
  CHECK(b.train->info().num_classes <= 257);
  CHECK(b.train->size() >= c.train->size());
}

TEST_CASE("text: the DataLoader batches windows as i64 B x seq_len without transforms", "[datasets][text]") {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 40; ++i) text += "line " + std::to_string(i) + "\n";
  dir.file("t.txt", text);
  Splits s = open_corpus(dir.path.string(), {{"seq_len", int64_t{16}}}, {{"train", one_file("t.txt")}});
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 3;
  o.workers = 2;
  o.transform = TransformPipeline();  // token ids stay i64
  o.sampler = make_sampler("random", {}, *s.train);
  DataLoader loader(s.train, o);
  loader.start_epoch(0);
  std::optional<Batch> b = loader.next();
  REQUIRE(b);
  CHECK(b->input().dtype() == DType::I64);
  CHECK(b->input().shape() == Shape{4, 16});
  CHECK(b->target().shape() == Shape{4, 16});
  CHECK(!b->tensors.has("input_lengths"));  // equal lengths: nothing padded
  // Row r is the window of dataset index indices[r]; its target is the input shifted by one.
  const Sample first = s.train->get(b->indices[0]);
  const Ids in = ids(first.at(kInput)), tg = ids(first.at(kTarget));
  CHECK(in == Ids(b->input().data<int64_t>(), b->input().data<int64_t>() + 16));
  CHECK(tg == Ids(b->target().data<int64_t>(), b->target().data<int64_t>() + 16));
  CHECK(Ids(tg.begin(), tg.end() - 1) == Ids(in.begin() + 1, in.end()));
}

TEST_CASE("text: a recipe's data section opens the corpus and builds its sampler", "[datasets][text]") {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 30; ++i) text += "fortune " + std::to_string(i) + "\n%\n";
  dir.file("corpus.txt", text);
  const std::string head = "model: {layers: [flatten, {type: linear, out_features: 2}]}\n"
                           "data:\n"
                           "  dataset: corpus\n"
                           "  format: text\n"
                           "  root: " + dir.path.string() + "\n"
                           "  seq_len: 8\n"
                           "  holdout: 0.1\n";
  const std::string sampler = "  loader: {sampler: {type: subset, ranges: ['0:10'], shuffle: false}}\n";
  // `files` given as one string is a list of one; stride defaults to seq_len.
  Config cfg = load_config_string(head + "  train: {files: corpus.txt}\n" + sampler, "text.yaml");
  CHECK(attr_int(cfg.data.options, "stride") == 8);
  CHECK(cfg.data.transforms.empty());  // token ids: no default to_float
  CHECK_THAT(cfg.resolved_yaml, Catch::Contains("stride: 8"));
  Splits s = train::open_data(cfg);
  REQUIRE(s.val);
  const int64_t tokens = static_cast<int64_t>(text.size()), val_tokens = (tokens + 5) / 10;
  CHECK(s.train->size() == (tokens - val_tokens - 9) / 8 + 1);
  CHECK(s.val->size() == (val_tokens - 9) / 8 + 1);
  CHECK(train::build_sampler(cfg, *s.train)->epoch_indices(0, 0) == Ids{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  // The holdout is a validation split the config reader knows of (FormatDef::makes_val): a val/
  // metric is accepted with it and refused without it.
  const std::string best = "checkpoint: {best: {metric: val/loss}}\n";
  CHECK_NOTHROW(load_config_string(head + "  train: {files: corpus.txt}\n" + best, "text.yaml"));
  std::string no_holdout = head;
  no_holdout.replace(no_holdout.find("holdout: 0.1"), 12, "holdout: 0.0");
  CHECK_THROWS_WITH(load_config_string(no_holdout + "  train: {files: corpus.txt}\n" + best, "text.yaml"),
                    Catch::Contains("needs a validation split"));
  // A sampler that needs classes says so, naming the sampler option.
  Config balanced = load_config_string(head +
                                           "  train: {files: corpus.txt}\n"
                                           "  loader: {sampler: {type: weighted_random, balanced: true}}\n",
                                       "text.yaml");
  try {
    train::build_sampler(balanced, *s.train);
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::Contains("data.loader.sampler") && Catch::Contains("needs class targets"));
  }
  // A misspelled split key is a config error with a suggestion.
  try {
    load_config_string(head + "  train: {filez: corpus.txt}\n", "text.yaml");
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(),
               Catch::Contains("data.train.filez: unknown key for format 'text'") && Catch::Contains("did you mean"));
  }
}
