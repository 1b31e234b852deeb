// data.format: csv (datasets/formats/csv.cpp): parsing (header, delimiters, quotes, CRLF, gzip,
// skip_rows, target_file), column selection, target kinds and the class mapping, every data
// error with its file:line:column, and the sklearn files the tabular recipes read.
#include <zlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "datasets/format.h"
#include "tests/support/open_format.h"
#include "tests/support/skip.h"
#include "tests/support/tempdir.h"

using namespace dl;
using namespace dl::data;
using Strings = std::vector<std::string>;

namespace {

Splits open_csv(AttrMap options, std::map<std::string, AttrMap> splits, const SplitOptions& carve = {}) {
  return dl::test::open_format("csv", "", std::move(options), std::move(splits), carve);
}

Splits open_file(const std::string& path, AttrMap options) {
  return open_csv(std::move(options), {{"train", AttrMap{{"file", path}}}});
}

std::vector<float> input_of(const Dataset& d, int64_t i) { return d.get(i).at(kInput).to_vector<float>(); }
int64_t label_of(const Dataset& d, int64_t i) { return d.get(i).at(kTarget).to_vector<int64_t>().at(0); }

// The DataError message of opening `text` as a csv file with `options`.
std::string error_of(const std::string& text, AttrMap options, std::string* path_out = nullptr) {
  test::TempDir dir;
  const std::string path = dir.file("t.csv", text);
  if (path_out) *path_out = path;
  try {
    open_file(path, std::move(options));
  } catch (const DataError& e) {
    return e.what();
  }
  return "no error";
}

std::string gzip_file(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f);
  REQUIRE(gzwrite(f, text.data(), static_cast<unsigned>(text.size())) == static_cast<int>(text.size()));
  REQUIRE(gzclose(f) == Z_OK);
  return path;
}

constexpr const char* kSklearn = "/usr/lib/python3/dist-packages/sklearn/datasets/data/";

}  // namespace

TEST_CASE("csv: header names, class names sorted, f32 features and i64 labels", "[datasets][csv]") {
  test::TempDir dir;
  const std::string path = dir.file("t.csv", "a,b,label\n1,2.5,dog\n-3,4e-1,cat\n\n5, +6 ,dog\n");
  Splits s = open_file(path, {{"target", Strings{"label"}}});
  const Dataset& d = *s.train;
  REQUIRE(d.size() == 3);
  CHECK(d.info().input_shape == Shape{2});
  CHECK(d.info().input_dtype == DType::F32);
  CHECK(d.info().target_kind == TargetKind::class_index);
  CHECK(d.info().num_classes == 2);
  CHECK(d.info().class_names == Strings{"cat", "dog"});
  CHECK(input_of(d, 0) == std::vector<float>{1.f, 2.5f});
  CHECK(input_of(d, 1) == std::vector<float>{-3.f, 0.4f});
  CHECK(input_of(d, 2) == std::vector<float>{5.f, 6.f});
  CHECK(d.get(0).at(kTarget).shape().empty());
  CHECK(d.get(0).at(kTarget).dtype() == DType::I64);
  CHECK(label_of(d, 0) == 1);
  CHECK(label_of(d, 1) == 0);
  CHECK(d.class_of(2) == 1);
  CHECK(d.describe(2) == path + ":5");  // the blank line 4 is skipped
}

TEST_CASE("csv: features and target by index, range and negative index, integer classes stay", "[datasets][csv]") {
  test::TempDir dir;
  const std::string path = dir.file("t.csv", "9,1,2,3,0\n9,4,5,6,2\n");
  Splits s = open_file(path, {{"header", false}, {"features", Strings{"1:3", "-2"}}, {"target", Strings{"-1"}}});
  CHECK(s.train->info().input_shape == Shape{3});
  CHECK(input_of(*s.train, 1) == std::vector<float>{4, 5, 6});
  CHECK(label_of(*s.train, 1) == 2);
  CHECK(s.train->info().num_classes == 3);  // max + 1
  CHECK(s.train->info().class_names.empty());
  // Default features: every column but the target.
  Splits all = open_file(path, {{"header", false}, {"target", Strings{"4"}}});
  CHECK(input_of(*all.train, 0) == std::vector<float>{9, 1, 2, 3});
}

TEST_CASE("csv: RFC 4180 quotes, CRLF, a byte-order mark, other delimiters", "[datasets][csv]") {
  test::TempDir dir;
  const std::string path =
      dir.file("t.csv", "\xEF\xBB\xBFx;\"y;z\";class\r\n\"1\";2;\"a \"\"big\"\"; one\"\r\n3;\"4\";\"multi\nline\"\r\n");
  Splits s = open_file(path, {{"delimiter", std::string(";")}, {"target", Strings{"class"}}, {"features", Strings{"x", "y;z"}}});
  REQUIRE(s.train->size() == 2);
  CHECK(s.train->info().class_names == Strings{"a \"big\"; one", "multi\nline"});
  CHECK(input_of(*s.train, 0) == std::vector<float>{1, 2});
  CHECK(input_of(*s.train, 1) == std::vector<float>{3, 4});
  CHECK(s.train->describe(1) == path + ":3");
}

TEST_CASE("csv: gzip, whitespace runs, skip_rows and a separate target file (regression)", "[datasets][csv]") {
  test::TempDir dir;
  const std::string x = gzip_file(dir.file("x.csv.gz"), "counts 2 1\n  1  2\t3 \n4 5   6\n");
  const std::string y = gzip_file(dir.file("y.csv.gz"), "counts 2 1\n1.5e+02\n-7\n");
  Splits s = open_csv({{"header", false}, {"skip_rows", int64_t(1)}, {"delimiter", std::string(" ")},
                       {"target_kind", std::string("regression")}},
                      {{"train", AttrMap{{"file", x}, {"target_file", y}}}});
  const Dataset& d = *s.train;
  REQUIRE(d.size() == 2);
  CHECK(d.info().target_kind == TargetKind::regression);
  CHECK(d.info().target_shape == Shape{1});
  CHECK(input_of(d, 0) == std::vector<float>{1, 2, 3});
  const Tensor t = d.get(1).at(kTarget);
  CHECK(t.dtype() == DType::F32);
  CHECK(t.shape() == Shape{1});
  CHECK(t.to_vector<float>() == std::vector<float>{-7});
  CHECK(d.get(0).at(kTarget).to_vector<float>() == std::vector<float>{150});
  CHECK(d.describe(1) == x + ":3");
}

TEST_CASE("csv: multi_hot targets from 0/1 columns, named by the header", "[datasets][csv]") {
  test::TempDir dir;
  const std::string path = dir.file("t.csv", "f,rock,jazz\n0.5,1,0\n1.5,1,1\n");
  Splits s = open_file(path, {{"target", Strings{"1:3"}}, {"target_kind", std::string("multi_hot")}});
  CHECK(s.train->info().num_classes == 2);
  CHECK(s.train->info().class_names == Strings{"rock", "jazz"});
  CHECK(s.train->info().target_shape == Shape{2});
  CHECK(s.train->get(1).at(kTarget).to_vector<float>() == std::vector<float>{1, 1});
  CHECK(!s.train->class_of(0).has_value());
  CHECK(error_of("f,a\n1,2\n", {{"target", Strings{"a"}}, {"target_kind", std::string("multi_hot")}}).find(
            ":2:3: '2' in column 'a' (index 1) is not 0 or 1") != std::string::npos);
}

TEST_CASE("csv: data.classes names the classes, names and integer indices map to them", "[datasets][csv]") {
  test::TempDir dir;
  const std::string path = dir.file("t.csv", "1,low\n2,high\n3,1\n");
  Splits s = open_file(path, {{"header", false}, {"target", Strings{"1"}}, {"classes", Strings{"low", "mid", "high"}}});
  CHECK(s.train->info().num_classes == 3);
  CHECK(s.train->info().class_names == Strings{"low", "mid", "high"});
  CHECK(label_of(*s.train, 0) == 0);
  CHECK(label_of(*s.train, 1) == 2);
  CHECK(label_of(*s.train, 2) == 1);
  const std::string e = error_of("1,low\n2,huge\n", {{"header", false}, {"target", Strings{"1"}}, {"classes", Strings{"low", "high"}}});
  CHECK(e.find("t.csv:2:3: class 'huge' is neither one of data.classes ([low, high]) nor an index 0..1") != std::string::npos);
}

TEST_CASE("csv: every split's file shares one class mapping", "[datasets][csv]") {
  test::TempDir dir;
  const std::string train = dir.file("train.csv", "x,y\n1,b\n2,c\n");
  const std::string test = dir.file("test.csv", "x,y\n3,a\n4,c\n");
  Splits s = open_csv({{"target", Strings{"y"}}}, {{"train", AttrMap{{"file", train}}}, {"test", AttrMap{{"file", test}}}});
  CHECK(s.train->info().class_names == Strings{"a", "b", "c"});
  CHECK(s.test->info().class_names == Strings{"a", "b", "c"});
  CHECK(label_of(*s.train, 0) == 1);
  CHECK(label_of(*s.test, 0) == 0);
  CHECK(label_of(*s.test, 1) == 2);
  CHECK(s.test->describe(1) == test + ":3");
  // A split with other columns is refused.
  const std::string wide = dir.file("wide.csv", "x,z,y\n3,3,a\n");
  CHECK_THROWS_WITH(open_csv({{"target", Strings{"y"}}}, {{"train", AttrMap{{"file", train}}}, {"test", AttrMap{{"file", wide}}}}),
                    Catch::Contains("2 feature and 1 target column(s), but the training file") &&
                        Catch::Contains("has 1 and 1"));
}

TEST_CASE("csv: data.test_fraction carves a seeded test split from the rows", "[datasets][csv]") {
  test::TempDir dir;
  std::string text = "x,y\n";
  for (int i = 0; i < 20; ++i) text += std::to_string(i) + "," + std::to_string(i % 2) + "\n";
  const std::string path = dir.file("t.csv", text);
  SplitOptions carve;
  carve.test_fraction = 0.25;
  carve.split_seed = 7;
  Splits s = open_csv({{"target", Strings{"y"}}}, {{"train", AttrMap{{"file", path}}}}, carve);
  CHECK(s.train->size() == 15);
  REQUIRE(s.test);
  CHECK(s.test->size() == 5);
  const float v = input_of(*s.test, 0)[0];
  CHECK(s.test->describe(0) == path + ":" + std::to_string(static_cast<int>(v) + 2));
}

TEST_CASE("csv: bad rows are DataErrors naming file:line:column", "[datasets][csv]") {
  const AttrMap t{{"target", Strings{"y"}}};
  std::string path;
  const std::string missing = error_of("x,y\n1,0\n,1\n", t, &path);
  CHECK(missing == path + ":3:1: missing value in column 'x' (index 0); fill it in or remove the row");
  CHECK(error_of("x,y\n1,0\n NA ,1\n", t).find(":3:1: missing value in column 'x'") != std::string::npos);
  CHECK(error_of("x,y\n1,0\n2,1\n1.2.3,1\n", t).find(
            ":4:1: '1.2.3' in column 'x' (index 0) is not a number; fix it, or leave the column out of data.features") !=
        std::string::npos);
  CHECK(error_of("x,y\n1,0\ninf,1\n", t).find(":3:1: 'inf' in column 'x' (index 0) is not a finite number") != std::string::npos);
  CHECK(error_of("x,y\n1,0\n2,1,5\n", t).find(":3:5: 3 fields, expected 2 as in the header on line 1; check data.delimiter") !=
        std::string::npos);
  CHECK(error_of("x,y,z\n1,0,1\n22,1\n", {{"target", Strings{"y"}}}).find(":3:5: 2 fields, expected 3 as in the header") !=
        std::string::npos);
  CHECK(error_of("1,0\n2,1,5\n", {{"header", false}, {"target", Strings{"1"}}}).find("as in the first row on line 1") !=
        std::string::npos);
  CHECK(error_of("x,y\n1,0\n2,\"a\n", t).find(":3:3: unterminated quoted field") != std::string::npos);
  CHECK(error_of("x,y\n1,0\n2,\"a\"b\n", t).find(":3:6: unexpected 'b' after a quoted field's closing quote") != std::string::npos);
  CHECK(error_of("x,y\n1,\n", t).find(":2:3: missing class in column 'y' (index 1)") != std::string::npos);
  CHECK(error_of("x,y\n1,0\n2,1.5\n", t).find(":3:3: the target column holds numbers such as 1.5, not classes; set "
                                              "data.target_kind: regression") != std::string::npos);
  CHECK(error_of("x,y\n1,0\n2,-1\n", t).find(":3:3: class -1 is negative") != std::string::npos);
  CHECK(error_of("", t).find("t.csv: no header (the file is empty)") != std::string::npos);
  CHECK(error_of("x,y\n\n", t).find("t.csv: no data rows after the header") != std::string::npos);
  CHECK(error_of("a\nb\n", {{"header", false}, {"skip_rows", int64_t(5)}, {"target", Strings{"0"}}})
            .find("no rows after the 5 skipped line(s)") != std::string::npos);
}

TEST_CASE("csv: missing, unreadable and corrupt files", "[datasets][csv]") {
  test::TempDir dir;
  CHECK_THROWS_WITH(open_file(dir.file("nope.csv"), {{"target", Strings{"y"}}}), Catch::EndsWith("nope.csv: file not found"));
  CHECK_THROWS_WITH(open_file(dir.path.string(), {{"target", Strings{"y"}}}), Catch::Contains("is a directory"));
  // A gzip stream cut in half.
  const std::string gz = gzip_file(dir.file("t.csv.gz"), std::string(5000, '1') + ",2\n3,4\n");
  const std::string bytes = test::read_file(gz);
  test::write_file(gz, bytes.substr(0, bytes.size() / 2));
  CHECK_THROWS_AS(open_file(gz, {{"header", false}, {"target", Strings{"1"}}}), DataError);
}

TEST_CASE("csv: option problems are std::invalid_argument naming the option", "[datasets][csv]") {
  test::TempDir dir;
  const std::string path = dir.file("t.csv", "x,y,z\n1,2,0\n");
  auto err = [&](AttrMap o) -> std::string {
    try {
      open_file(path, std::move(o));
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "no error";
  };
  CHECK(err({}).find("data.target: the csv format needs the target column") != std::string::npos);
  CHECK(err({{"target", Strings{"w"}}}) == "data.target: 'w' is not a column of '" + path + "' (columns: x, y, z)");
  CHECK(err({{"target", Strings{"3"}}}).find("data.target: '3' is out of range: '" + path + "' has 3 columns") != std::string::npos);
  CHECK(err({{"target", Strings{"z"}}, {"features", Strings{"x", "z"}}}) == "data.features: column 'z' (index 2) is also data.target");
  CHECK(err({{"target", Strings{"z"}}, {"features", Strings{"x", "0"}}}) == "data.features: column 'x' (index 0) is selected twice");
  CHECK(err({{"target", Strings{"z"}}, {"features", Strings{"2:1"}}}).find("'2:1' selects no column") != std::string::npos);
  CHECK(err({{"target", Strings{"z"}}, {"features", Strings{"a:b"}}}).find("'a:b' is not a column range") != std::string::npos);
  CHECK(err({{"target", Strings{"y", "z"}}}).find("data.target: class targets need exactly one column, got 2") != std::string::npos);
  CHECK(err({{"target", Strings{"z"}}, {"target_kind", std::string("regression")}, {"classes", Strings{"a"}}})
            .find("data.classes: only class targets have class names") != std::string::npos);
  CHECK(err({{"header", false}, {"target", Strings{"y"}}}).find("'y' is not a column index or a range") != std::string::npos);
  // The schema refuses a delimiter that is not one character.
  const AttrSchema* delim = find_attr(format_def("csv").attrs, "delimiter");
  REQUIRE(delim);
  CHECK(!check_attr(*delim, AttrValue(std::string(";;"))).empty());
  CHECK(check_attr(*delim, AttrValue(std::string("\t"))).empty());
}

TEST_CASE("csv: a separate target file must have one row per data row", "[datasets][csv]") {
  test::TempDir dir;
  const std::string x = dir.file("x.csv", "1\n2\n3\n");
  const std::string y2 = dir.file("y2.csv", "0\n1\n");
  const std::string y4 = dir.file("y4.csv", "0\n1\n0\n1\n");
  const AttrMap o{{"header", false}};
  CHECK_THROWS_WITH(open_csv(o, {{"train", AttrMap{{"file", x}, {"target_file", y2}}}}),
                    Catch::StartsWith(x + ":3:1: data row 3 has no row in target_file"));
  CHECK_THROWS_WITH(open_csv(o, {{"train", AttrMap{{"file", x}, {"target_file", y4}}}}),
                    Catch::StartsWith(y4 + ":4:1: target_file has more rows than"));
}

TEST_CASE("csv: the sklearn wine and diabetes files as the recipes read them", "[datasets][csv]") {
  const std::string dir = kSklearn;
  DLTOOL_SKIP_IF(!std::filesystem::exists(dir + "wine_data.csv"), "python3-sklearn's data files are not installed");
  Splits wine = open_file(dir + "wine_data.csv", {{"header", false}, {"skip_rows", int64_t(1)}, {"target", Strings{"-1"}},
                                                  {"classes", Strings{"class_0", "class_1", "class_2"}}});
  REQUIRE(wine.train->size() == 178);
  CHECK(wine.train->info().input_shape == Shape{13});
  CHECK(wine.train->info().num_classes == 3);
  // Line 2: 14.23,1.71,2.43,15.6,127,2.8,3.06,0.28,2.29,5.64,1.04,3.92,1065,0
  CHECK(input_of(*wine.train, 0) ==
        std::vector<float>{14.23f, 1.71f, 2.43f, 15.6f, 127, 2.8f, 3.06f, 0.28f, 2.29f, 5.64f, 1.04f, 3.92f, 1065});
  CHECK(label_of(*wine.train, 0) == 0);
  CHECK(label_of(*wine.train, 177) == 2);

  Splits diabetes = open_csv({{"header", false}, {"delimiter", std::string(" ")}, {"target_kind", std::string("regression")}},
                             {{"train", AttrMap{{"file", dir + "diabetes_data_raw.csv.gz"},
                                                {"target_file", dir + "diabetes_target.csv.gz"}}}});
  REQUIRE(diabetes.train->size() == 442);
  CHECK(diabetes.train->info().input_shape == Shape{10});
  CHECK(input_of(*diabetes.train, 0) == std::vector<float>{59, 2, 32.1f, 101, 157, 93.2f, 38, 4, 4.8598f, 87});
  CHECK(diabetes.train->get(0).at(kTarget).to_vector<float>() == std::vector<float>{151});
}
