// The ONNX Runtime test harness itself (tests/support/onnxruntime.h): tiny models written with
// the ONNX protobuf classes (no exporter involved) run in ONNX Runtime at several batch sizes
// and match values worked out by hand; the onnx checker accepts them and rejects a broken one.
// Skipped (ctest: exit code 4) when ONNX Runtime is not installed (scripts/setup_ort.sh).
#include <catch2/catch.hpp>

#include <onnx/onnx_pb.h>

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/tensor/tensor.h"
#include "tests/support/onnxruntime.h"
#include "tests/support/tempdir.h"

namespace {

using dl::test::TempDir;

ONNX_NAMESPACE::ModelProto new_model(const std::string& graph_name) {
  ONNX_NAMESPACE::ModelProto m;
  m.set_ir_version(8);  // what Debian's onnx 1.12 checker knows
  m.set_producer_name("dltool-tests");
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(13);
  m.mutable_graph()->set_name(graph_name);
  return m;
}

// A graph input/output (float32 unless `elem_type` says otherwise); a dim < 0 is the symbolic
// batch dim "N".
void add_value(google::protobuf::RepeatedPtrField<ONNX_NAMESPACE::ValueInfoProto>* list, const std::string& name,
               const std::vector<int64_t>& dims, int elem_type = ONNX_NAMESPACE::TensorProto::FLOAT) {
  auto* v = list->Add();
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  for (int64_t d : dims) {
    auto* dim = tt->mutable_shape()->add_dim();
    if (d < 0) {
      dim->set_dim_param("N");
    } else {
      dim->set_dim_value(d);
    }
  }
}

void add_initializer(ONNX_NAMESPACE::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims,
                     const std::vector<float>& values) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(ONNX_NAMESPACE::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  for (float v : values) t->add_float_data(v);
}

std::string save(const ONNX_NAMESPACE::ModelProto& m, const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  REQUIRE(m.SerializeToOstream(&f));
  return path;
}

// y = relu(x W^T + b): Gemm (transB = 1) with initializers W [2, 3] and b [2], then Relu.
// Input x [N, 3], output y [N, 2].
const std::vector<float> kW = {1.0f, -2.0f, 0.5f,    // row 0
                               0.25f, 1.0f, -1.0f};  // row 1
const std::vector<float> kB = {0.5f, -1.0f};

ONNX_NAMESPACE::ModelProto gemm_relu_model() {
  ONNX_NAMESPACE::ModelProto m = new_model("gemm_relu");
  auto* g = m.mutable_graph();
  add_value(g->mutable_input(), "x", {-1, 3});
  add_value(g->mutable_output(), "y", {-1, 2});
  add_initializer(g, "W", {2, 3}, kW);
  add_initializer(g, "b", {2}, kB);
  auto* gemm = g->add_node();
  gemm->set_op_type("Gemm");
  gemm->set_name("fc");
  gemm->add_input("x");
  gemm->add_input("W");
  gemm->add_input("b");
  gemm->add_output("h");
  auto* trans_b = gemm->add_attribute();
  trans_b->set_name("transB");
  trans_b->set_type(ONNX_NAMESPACE::AttributeProto::INT);
  trans_b->set_i(1);
  auto* relu = g->add_node();
  relu->set_op_type("Relu");
  relu->set_name("act");
  relu->add_input("h");
  relu->add_output("y");
  return m;
}

// Inputs and weights are multiples of 1/4 with small magnitudes: every product and partial sum
// is exact in float32, so ONNX Runtime must return exactly these values, whatever its order.
float reference_y(const std::vector<float>& x, int64_t row, int64_t col) {
  float h = kB[col];
  for (int64_t k = 0; k < 3; ++k) h += x[row * 3 + k] * kW[col * 3 + k];
  return h > 0 ? h : 0.0f;
}

}  // namespace

TEST_CASE("onnxruntime harness: a Gemm+Relu model with a dynamic batch dim runs at batch 1 and 7",
          "[onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  TempDir d;
  const std::string model = save(gemm_relu_model(), d.file("gemm_relu.onnx"));

  SECTION("batch 1, worked out by hand") {
    // h0 = 0.5 + (2*1 + 1*-2 + -4*0.5)    = 0.5 - 2   = -1.5 -> relu 0
    // h1 = -1 + (2*0.25 + 1*1 + -4*-1)    = -1 + 5.5  =  4.5
    dl::test::OrtRunInfo info;
    const dl::Tensor y = dl::test::ort_run(model, dl::from_vector<float>({2.0f, 1.0f, -4.0f}, {1, 3}), &info);
    CHECK(info.input_name == "x");
    CHECK(info.output_name == "y");
    REQUIRE(y.dtype() == dl::DType::F32);
    REQUIRE(y.shape() == dl::Shape{1, 2});
    CHECK(y.to_vector<float>() == std::vector<float>{0.0f, 4.5f});
  }

  SECTION("batch 7, against the same arithmetic in plain loops") {
    std::vector<float> x(7 * 3);
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.25f * static_cast<float>(static_cast<int>(i % 11) - 5);
    const dl::Tensor y = dl::test::ort_run(model, dl::from_vector<float>(x, {7, 3}));
    REQUIRE(y.shape() == dl::Shape{7, 2});
    const std::vector<float> got = y.to_vector<float>();
    int positive = 0, zero = 0;
    for (int64_t r = 0; r < 7; ++r) {
      for (int64_t c = 0; c < 2; ++c) {
        INFO("row " << r << " col " << c);
        const float want = reference_y(x, r, c);
        CHECK(got[r * 2 + c] == want);
        (want > 0 ? positive : zero) += 1;
      }
    }
    CHECK(positive > 0);  // the inputs exercise both sides of the Relu
    CHECK(zero > 0);
  }

  SECTION("a non-contiguous input is fed in row-major order") {
    // x^T of a [3, 2] tensor: rows (2, 1, -4) and (1, 0, 1).
    const dl::Tensor xt = dl::from_vector<float>({2.0f, 1.0f, 1.0f, 0.0f, -4.0f, 1.0f}, {3, 2}).t();
    REQUIRE(!xt.is_contiguous());
    const dl::Tensor y = dl::test::ort_run(model, xt);
    // row 1: h0 = 0.5 + (1 + 0 + 0.5) = 2, h1 = -1 + (0.25 + 0 - 1) = -1.75 -> 0
    CHECK(y.to_vector<float>() == std::vector<float>{0.0f, 4.5f, 2.0f, 0.0f});
  }

  SECTION("a wrong input shape is an error with ONNX Runtime's message") {
    try {
      dl::test::ort_run(model, dl::from_vector<float>({1.0f, 2.0f, 3.0f, 4.0f}, {1, 4}));
      FAIL("ort_run accepted a [1, 4] input for a [N, 3] model");
    } catch (const std::runtime_error& e) {
      CHECK_THAT(e.what(), Catch::Contains("gemm_relu.onnx") && Catch::Contains("invalid dimensions"));
    }
  }
}

TEST_CASE("onnxruntime harness: a 4-d Relu model keeps the shape and the values", "[onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  TempDir d;
  ONNX_NAMESPACE::ModelProto m = new_model("relu4d");
  auto* g = m.mutable_graph();
  add_value(g->mutable_input(), "images", {-1, 1, 2, 2});
  add_value(g->mutable_output(), "out", {-1, 1, 2, 2});
  auto* relu = g->add_node();
  relu->set_op_type("Relu");
  relu->add_input("images");
  relu->add_output("out");
  const std::string model = save(m, d.file("relu4d.onnx"));

  std::vector<float> x, want;
  for (int i = 0; i < 3 * 4; ++i) {
    x.push_back(static_cast<float>(i) - 5.5f);
    want.push_back(x.back() > 0 ? x.back() : 0.0f);
  }
  dl::test::OrtRunInfo info;
  const dl::Tensor y = dl::test::ort_run(model, dl::from_vector<float>(x, {3, 1, 2, 2}), &info);
  CHECK(info.input_name == "images");
  CHECK(info.output_name == "out");
  CHECK(y.shape() == dl::Shape{3, 1, 2, 2});
  CHECK(y.to_vector<float>() == want);
}

TEST_CASE("onnxruntime harness: an int64 input (token indices) feeds a Gather", "[onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  TempDir d;
  ONNX_NAMESPACE::ModelProto m = new_model("gather");
  auto* g = m.mutable_graph();
  add_value(g->mutable_input(), "tokens", {-1, 2}, ONNX_NAMESPACE::TensorProto::INT64);
  add_value(g->mutable_output(), "vectors", {-1, 2, 3});
  add_initializer(g, "table", {2, 3}, kW);
  auto* gather = g->add_node();
  gather->set_op_type("Gather");
  gather->add_input("table");
  gather->add_input("tokens");
  gather->add_output("vectors");
  const std::string model = save(m, d.file("gather.onnx"));
  const dl::Tensor y = dl::test::ort_run(model, dl::from_vector<int64_t>({1, 0, 1, 1, 0, 0}, {3, 2}));
  CHECK(y.shape() == dl::Shape{3, 2, 3});
  std::vector<float> want;
  for (int64_t row : {1, 0, 1, 1, 0, 0}) want.insert(want.end(), kW.begin() + row * 3, kW.begin() + row * 3 + 3);
  CHECK(y.to_vector<float>() == want);
  CHECK_THROWS_WITH(dl::test::ort_run(model, dl::zeros({3, 2}, dl::DType::U8)), Catch::Contains("float32 or int64"));
}

TEST_CASE("onnxruntime harness: a file that is not a model is an error naming it", "[onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  TempDir d;
  const std::string junk = d.file("junk.onnx", "definitely not a protobuf");
  try {
    dl::test::ort_run(junk, dl::from_vector<float>({1.0f}, {1, 1}));
    FAIL("ort_run accepted a junk model");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("junk.onnx"));
  }
}

TEST_CASE("onnxruntime harness: the python onnx checker accepts the models and rejects a broken one",
          "[onnxruntime]") {
  std::string why;
  DLTOOL_SKIP_IF(!dl::test::python_onnx_available(&why), why);
  TempDir d;
  const std::string good = save(gemm_relu_model(), d.file("gemm_relu.onnx"));
  CHECK(dl::test::python_onnx_check(good) == "");

  ONNX_NAMESPACE::ModelProto broken = gemm_relu_model();
  broken.mutable_graph()->mutable_node(1)->set_input(0, "no_such_tensor");  // Relu reads an undefined name
  const std::string bad = save(broken, d.file("broken.onnx"));
  const std::string msg = dl::test::python_onnx_check(bad);
  INFO(msg);
  CHECK_THAT(msg, Catch::Contains("no_such_tensor"));

  CHECK_THAT(dl::test::python_onnx_check(d.file("missing.onnx")), Catch::Contains("missing.onnx"));
}
