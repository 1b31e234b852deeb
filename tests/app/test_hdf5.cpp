// data.format: hdf5 (datasets/formats/hdf5.cpp): dtypes and ranks, the block cache against
// data.in_memory, nested keys, target kinds, concurrent get(), and every bad-input error.
#include <hdf5.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "datasets/format.h"
#include "tests/support/open_format.h"
#include "tests/support/tempdir.h"

using namespace dl;
using namespace dl::data;
using Strings = std::vector<std::string>;

namespace {

// One dataset to write: its path in the file (groups are created), file type, shape and
// row-major values in the matching memory type; chunk_rows > 0 makes it chunked.
struct H5Data {
  std::string key;
  hid_t type;
  std::vector<hsize_t> dims;
  const void* data;
  hsize_t chunk_rows = 0;
};

void write_h5(const std::string& path, const std::vector<H5Data>& sets) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(f >= 0);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  for (const H5Data& d : sets) {
    hid_t space = d.dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(d.dims.size()), d.dims.data(), nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (d.chunk_rows) {
      std::vector<hsize_t> chunk = d.dims;
      chunk[0] = d.chunk_rows;
      H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
      H5Pset_deflate(dcpl, 1);
    }
    hid_t ds = H5Dcreate2(f, d.key.c_str(), d.type, space, lcpl, dcpl, H5P_DEFAULT);
    REQUIRE(ds >= 0);
    if (d.data) REQUIRE(H5Dwrite(ds, d.type, H5S_ALL, H5S_ALL, H5P_DEFAULT, d.data) >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
  }
  H5Pclose(lcpl);
  REQUIRE(H5Fclose(f) >= 0);
}

Splits open_h5(AttrMap options, std::map<std::string, AttrMap> splits, bool in_memory = false) {
  return dl::test::open_format("hdf5", "", std::move(options), std::move(splits), {}, in_memory);
}

Splits open_train(const std::string& file, AttrMap options = {}, AttrMap keys = {}, bool in_memory = false) {
  keys["file"] = file;
  return open_h5(std::move(options), {{"train", keys}}, in_memory);
}

std::string error_of(const std::string& file, AttrMap options = {}, AttrMap keys = {}) {
  try {
    open_train(file, std::move(options), std::move(keys));
  } catch (const DataError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("hdf5: u8 images stay u8, integer targets become class indices", "[datasets][hdf5]") {
  test::TempDir dir;
  const std::string path = dir.file("d.h5");
  std::vector<uint8_t> x(5 * 1 * 2 * 3);
  std::iota(x.begin(), x.end(), uint8_t(0));
  const std::vector<int32_t> y = {0, 2, 1, 2, 0};
  write_h5(path, {{"x", H5T_STD_U8LE, {5, 1, 2, 3}, x.data()}, {"y", H5T_STD_I32LE, {5}, y.data()}});
  for (bool in_memory : {false, true}) {
    Splits s = open_train(path, {}, {}, in_memory);
    const Dataset& d = *s.train;
    REQUIRE(d.size() == 5);
    CHECK(d.info().input_shape == Shape{1, 2, 3});
    CHECK(d.info().input_dtype == DType::U8);
    CHECK(d.info().num_classes == 3);
    const Sample s3 = d.get(3);
    CHECK(s3.at(kInput).shape() == Shape{1, 2, 3});
    CHECK(s3.at(kInput).to_vector<uint8_t>() == std::vector<uint8_t>{18, 19, 20, 21, 22, 23});
    CHECK(s3.at(kTarget).dtype() == DType::I64);
    CHECK(s3.at(kTarget).shape().empty());
    CHECK(s3.at(kTarget).to_vector<int64_t>() == std::vector<int64_t>{2});
    CHECK(d.class_of(1) == 2);
    CHECK(d.describe(4) == path + "[x][4]");
  }
}

TEST_CASE("hdf5: blocks through the cache equal in_memory, chunked or not, from several threads", "[datasets][hdf5]") {
  test::TempDir dir;
  const std::string path = dir.file("d.h5");
  const hsize_t n = 3000, f = 7;
  std::vector<double> x(n * f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i) * 0.1 - 5.0;
  std::vector<int64_t> y(n);
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<int64_t>(i % 4);
  write_h5(path, {{"contiguous", H5T_IEEE_F64LE, {n, f}, x.data()},
                  {"chunked", H5T_IEEE_F64LE, {n, f}, x.data(), 100},
                  {"y", H5T_STD_I64LE, {n}, y.data()}});
  const Splits mem = open_train(path, {}, {{"input", std::string("contiguous")}}, true);
  for (const char* key : {"contiguous", "chunked"}) {
    const Splits lazy = open_train(path, {}, {{"input", std::string(key)}});
    REQUIRE(lazy.train->size() == static_cast<int64_t>(n));
    CHECK(lazy.train->info().input_dtype == DType::F32);
    CHECK(lazy.train->info().input_shape == Shape{7});
    std::vector<std::thread> threads;
    std::vector<int> mismatches(4, 0);
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        // Each thread walks the samples in its own order, so the threads miss blocks together.
        for (int64_t k = 0; k < static_cast<int64_t>(n); ++k) {
          const int64_t i = (k * (2 * t + 1) + 977 * t) % static_cast<int64_t>(n);
          const Sample a = lazy.train->get(i), b = mem.train->get(i);
          if (a.at(kInput).to_vector<float>() != b.at(kInput).to_vector<float>() ||
              a.at(kTarget).to_vector<int64_t>() != b.at(kTarget).to_vector<int64_t>())
            ++mismatches[static_cast<size_t>(t)];
        }
      });
    for (auto& th : threads) th.join();
    CHECK(mismatches == std::vector<int>(4, 0));
    CHECK(lazy.train->get(2999).at(kInput).to_vector<float>().back() == static_cast<float>(x.back()));
  }
}

TEST_CASE("hdf5: nested keys, splits in one file, regression / multi_hot / none targets", "[datasets][hdf5]") {
  test::TempDir dir;
  const std::string path = dir.file("d.h5");
  const std::vector<int32_t> x = {1, 2, 3, 4, 5, 6};         // [3, 2]
  const std::vector<double> r = {0.5, -1.5, 2.25};          // [3]
  const std::vector<float> r2 = {1, 2, 3, 4, 5, 6};         // [3, 2]
  const std::vector<uint8_t> hot = {1, 0, 1, 0, 1, 1};      // [3, 2]
  write_h5(path, {{"train/x", H5T_STD_I32LE, {3, 2}, x.data()},
                  {"train/r", H5T_IEEE_F64LE, {3}, r.data()},
                  {"train/r2", H5T_IEEE_F32LE, {3, 2}, r2.data()},
                  {"train/hot", H5T_STD_U8LE, {3, 2}, hot.data()},
                  {"test/x", H5T_STD_I32LE, {1, 2}, x.data()},
                  {"test/r", H5T_IEEE_F64LE, {1}, r.data()}});
  const AttrMap regression{{"target_kind", std::string("regression")}};
  Splits s = open_h5(regression, {{"train", AttrMap{{"file", path}, {"input", std::string("train/x")}, {"target", std::string("train/r")}}},
                                  {"test", AttrMap{{"file", path}, {"input", std::string("test/x")}, {"target", std::string("test/r")}}}});
  CHECK(s.train->info().input_dtype == DType::F32);  // int32 features become f32
  CHECK(s.train->info().target_shape == Shape{1});
  CHECK(s.train->get(2).at(kInput).to_vector<float>() == std::vector<float>{5, 6});
  CHECK(s.train->get(1).at(kTarget).to_vector<float>() == std::vector<float>{-1.5f});
  CHECK(s.train->get(1).at(kTarget).shape() == Shape{1});
  REQUIRE(s.test);
  CHECK(s.test->size() == 1);
  CHECK(s.test->describe(0) == path + "[test/x][0]");

  Splits s2 = open_train(path, regression, {{"input", std::string("train/x")}, {"target", std::string("train/r2")}});
  CHECK(s2.train->info().target_shape == Shape{2});
  CHECK(s2.train->get(1).at(kTarget).to_vector<float>() == std::vector<float>{3, 4});

  Splits hot_s = open_train(path, {{"target_kind", std::string("multi_hot")}}, {{"input", std::string("train/x")}, {"target", std::string("train/hot")}});
  CHECK(hot_s.train->info().num_classes == 2);
  CHECK(hot_s.train->get(2).at(kTarget).to_vector<float>() == std::vector<float>{1, 1});

  Splits none = open_train(path, {{"target_kind", std::string("none")}}, {{"input", std::string("train/x")}, {"target", std::string("missing")}});
  CHECK(!none.train->get(0).has(kTarget));
  CHECK(none.train->info().target_kind == TargetKind::none);
}

TEST_CASE("hdf5: data.classes names the classes and bounds the labels", "[datasets][hdf5]") {
  test::TempDir dir;
  const std::string path = dir.file("d.h5");
  const std::vector<uint8_t> x = {1, 2, 3};
  const std::vector<int64_t> y = {0, 1, 1};
  write_h5(path, {{"x", H5T_STD_U8LE, {3}, x.data()}, {"y", H5T_STD_I64LE, {3}, y.data()}});
  Splits s = open_train(path, {{"classes", Strings{"no", "yes", "maybe"}}});
  CHECK(s.train->info().num_classes == 3);
  CHECK(s.train->info().class_names == Strings{"no", "yes", "maybe"});
  CHECK(s.train->info().input_shape == Shape{});
  CHECK(error_of(path, {{"classes", Strings{"only"}}}) ==
        path + "[x] sample 1: class 1 has no name: data.classes names 1 class(es) (indices 0..0)");
}

TEST_CASE("hdf5: bad files and datasets are DataErrors naming the file and key", "[datasets][hdf5]") {
  test::TempDir dir;
  const std::string path = dir.file("d.h5");
  const std::vector<uint8_t> x(12, 7);
  const std::vector<int64_t> y = {0, 1, 1, 0};
  const std::vector<int64_t> y_neg = {0, -1, 1};
  const std::vector<float> y_float = {0, 1, 1};
  hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, 4);
  const char strings[12] = "abcdefghijk";
  write_h5(path, {{"x", H5T_STD_U8LE, {3, 4}, x.data()},
                  {"y", H5T_STD_I64LE, {4}, y.data()},
                  {"y_neg", H5T_STD_I64LE, {3}, y_neg.data()},
                  {"y_float", H5T_IEEE_F32LE, {3}, y_float.data()},
                  {"names", str, {3}, strings},
                  {"empty", H5T_STD_U8LE, {0, 4}, nullptr},
                  {"scalar", H5T_STD_U8LE, {}, x.data()},
                  {"group/inner", H5T_STD_U8LE, {3}, x.data()}});
  H5Tclose(str);
  auto keys = [](const char* input, const char* target) {
    return AttrMap{{"input", std::string(input)}, {"target", std::string(target)}};
  };
  CHECK(error_of(dir.file("none.h5")) == dir.file("none.h5") + ": file not found");
  CHECK(error_of(dir.file("text.h5", "hello")).find("text.h5: not an HDF5 file") != std::string::npos);
  CHECK(error_of(path, {}, keys("pixels", "y")) ==
        path + ": input 'pixels' is not in the file (datasets there: empty, group/inner, names, scalar, x, y, y_float, y_neg) "
               "(set data.<split>.input)");
  CHECK(error_of(path, {}, keys("group/missing", "y")).find("input 'group/missing' is not in the file") != std::string::npos);
  CHECK(error_of(path, {}, keys("group", "y")).find("input 'group' is a group, not a dataset") != std::string::npos);
  CHECK(error_of(path, {}, keys("x", "labels")).find(": target 'labels' is not in the file") != std::string::npos);
  CHECK(error_of(path, {}, keys("x", "y")) ==
        path + ": input 'x' has 3 samples but target 'y' has 4; they need one target per sample");
  CHECK(error_of(path, {}, keys("names", "y_neg")) == path + ": input 'names' holds string values; expected integers or floats");
  CHECK(error_of(path, {}, keys("x", "y_float")) ==
        path + "[y_float] holds float32 values: class targets are integers (set data.target_kind: regression for numeric targets)");
  CHECK(error_of(path, {}, keys("x", "y_neg")) == path + "[x] sample 1: class -1 is negative; class indices start at 0");
  CHECK(error_of(path, {}, keys("empty", "y")) == path + ": input 'empty' has no samples (shape [0, 4])");
  CHECK(error_of(path, {}, keys("scalar", "y")).find("input 'scalar' is a scalar") != std::string::npos);
  CHECK(error_of(path, {{"target_kind", std::string("multi_hot")}}, keys("x", "y_neg")).find("multi_hot targets are [N, classes]") !=
        std::string::npos);
}

TEST_CASE("hdf5: splits must share the sample layout", "[datasets][hdf5]") {
  test::TempDir dir;
  const std::string path = dir.file("d.h5");
  const std::vector<uint8_t> x(12, 1);
  const std::vector<int64_t> y = {0, 1, 1};
  write_h5(path, {{"a", H5T_STD_U8LE, {3, 4}, x.data()}, {"b", H5T_STD_U8LE, {3, 2, 2}, x.data()}, {"y", H5T_STD_I64LE, {3}, y.data()}});
  CHECK_THROWS_WITH(open_h5({}, {{"train", AttrMap{{"file", path}, {"input", std::string("a")}}},
                                 {"test", AttrMap{{"file", path}, {"input", std::string("b")}}}}),
                    Catch::StartsWith(path + "[b]: samples of shape [2, 2] uint8 with targets [], but the training split has [4] uint8"));
}

TEST_CASE("hdf5: more data than the 64 MB block cache: evicted blocks are read again", "[datasets][hdf5]") {
  test::TempDir dir;
  const std::string path = dir.file("d.h5");
  const hsize_t n = 1100, row = 65536;  // 72 MB of u8: 1100 one-row blocks for a cache of 1024
  std::vector<uint8_t> x(n * row);
  for (hsize_t i = 0; i < n; ++i) std::fill_n(x.begin() + static_cast<std::ptrdiff_t>(i * row), row, static_cast<uint8_t>(i % 251));
  std::vector<int64_t> y(n, 0);
  write_h5(path, {{"x", H5T_STD_U8LE, {n, row}, x.data()}, {"y", H5T_STD_I64LE, {n}, y.data()}});
  x.clear();
  x.shrink_to_fit();
  const Splits s = open_train(path);
  int wrong = 0;
  for (int pass = 0; pass < 2; ++pass)
    for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) {
      const Tensor t = s.train->get(i).at(kInput);
      const uint8_t* p = t.data<uint8_t>();
      wrong += p[0] != i % 251 || p[row - 1] != i % 251;
    }
  CHECK(wrong == 0);
}
