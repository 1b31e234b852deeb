// Tests for exporters/checkpoint: round trip, the fixed layout, h5dump/h5py interop, PyTorch
// weights written by h5py, load validation and fuzzing. Atomicity and failed saves are in
// test_checkpoint_atomic.cpp.
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <regex>
#include <set>

#include "exporters/checkpoint.h"
#include "exporters/checkpoint_userblock.h"
#include "exporters/hdf5_util.h"
#include "tests/app/checkpoint_test_util.h"
#include "tests/support/fixtures.h"

using namespace ckpt_test;
using dl::Checkpoint;
using dl::CheckpointError;
using dl::h5::Handle;

namespace {

// Model keys in a deliberately non-alphabetical order.
const std::vector<std::string> kModelOrder = {"layer2.weight", "layer1.bias", "bn.running_mean",
                                              "bn.num_batches_tracked", "0.scale", "head.double",
                                              "mask", "pixels", "empty", "half"};

Checkpoint make_full() {
  std::mt19937 rng(42);
  Checkpoint c;
  c.config_yaml = "model:\n  layers: [conv, relu]\nname: \"λ-run\"\n";
  // layer2.weight: a transposed (non-contiguous) [3, 4] view of a [4, 3] tensor.
  c.model.emplace_back("layer2.weight", random_tensor({4, 3}, DType::F32, rng).transpose(0, 1));
  c.model.emplace_back("layer1.bias", random_tensor({3}, DType::F32, rng));
  c.model.emplace_back("bn.running_mean", random_tensor({5}, DType::F32, rng));
  c.model.emplace_back("bn.num_batches_tracked", filled({}, DType::I64, 42));
  c.model.emplace_back("0.scale", filled({}, DType::F32, 0.25));
  c.model.emplace_back("head.double", random_tensor({2, 2}, DType::F64, rng));
  c.model.emplace_back("mask", random_tensor({4}, DType::Bool, rng));
  c.model.emplace_back("pixels", random_tensor({2, 3}, DType::U8, rng));
  c.model.emplace_back("empty", dl::empty({0, 3}, DType::F32));
  c.model.emplace_back("half", random_tensor({3}, DType::F16, rng));

  dl::OptimizerState o;
  o.type = "adam";
  o.defaults = {{"lr", 1e-3}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8}, {"weight_decay", 0.0}};
  o.param_groups.push_back({{"layer2.weight", "layer1.bias"}, {{"lr", 1e-3}, {"weight_decay", 0.0}}});
  o.param_groups.push_back({{"bn.running_mean", "0.scale", "head.double"}, {{"lr", 1e-2}}});
  o.param_groups.push_back({{}, {{"lr", 0.5}}});  // an empty group
  for (const char* key : {"layer2.weight", "layer1.bias"}) {
    dl::OptimizerParamState ps;
    ps.step = 7;
    Shape s = std::string(key) == "layer2.weight" ? Shape{3, 4} : Shape{3};
    ps.slots["exp_avg"] = random_tensor(s, DType::F32, rng);
    ps.slots["exp_avg_sq"] = random_tensor(s, DType::F32, rng);
    o.state[key] = ps;
  }
  o.state["0.scale"].step = 0;  // a state entry without slots
  c.optimizer = o;

  dl::SchedulerState s;
  s.type = "cosine";
  s.scalars = {{"last_epoch", 4}, {"T_max", 10}, {"eta_min", 0}};
  s.lists = {{"base_lrs", {1e-3, 1e-2, 0.5}}, {"one", {2.5}}, {"none", {}}};
  c.scheduler = s;

  c.trainer = {{"epoch", int64_t{3}},
               {"global_step", int64_t{1234}},
               {"batch_in_epoch", int64_t{17}},
               {"big", int64_t{1} << 60},
               {"negative", int64_t{-5}},
               {"best_metric", 0.875},
               {"best_metric_name", std::string("val_accuracy")}};
  std::vector<uint8_t> bytes(5000);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  c.rng = {{"cpu", bytes}, {"dataloader", {1, 2, 3, 255}}, {"empty", {}}};
  return c;
}

void require_same_model(const dl::StateDict& got, const dl::StateDict& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("model entry " << i << ": " << want[i].first);
    CHECK(got[i].first == want[i].first);
    CHECK(got[i].second.device().is_cpu());
    CHECK(got[i].second.is_contiguous());
    CHECK(bit_equal(got[i].second, want[i].second));
  }
}

void require_same(const Checkpoint& got, const Checkpoint& want) {
  CHECK(got.config_yaml == want.config_yaml);
  require_same_model(got.model, want.model);
  REQUIRE(got.optimizer.has_value() == want.optimizer.has_value());
  if (want.optimizer) {
    const auto &a = *got.optimizer, &b = *want.optimizer;
    CHECK(a.type == b.type);
    CHECK(a.defaults == b.defaults);
    REQUIRE(a.param_groups.size() == b.param_groups.size());
    for (size_t i = 0; i < b.param_groups.size(); ++i) {
      CHECK(a.param_groups[i].options == b.param_groups[i].options);
      CHECK(a.param_groups[i].names == b.param_groups[i].names);
    }
    REQUIRE(a.state.size() == b.state.size());
    for (const auto& [key, ps] : b.state) {
      INFO("optimizer state " << key);
      REQUIRE(a.state.count(key));
      const auto& qs = a.state.at(key);
      CHECK(qs.step == ps.step);
      REQUIRE(qs.slots.size() == ps.slots.size());
      for (const auto& [slot, t] : ps.slots) CHECK(bit_equal(qs.slots.at(slot), t));
    }
  }
  REQUIRE(got.scheduler.has_value() == want.scheduler.has_value());
  if (want.scheduler) {
    CHECK(got.scheduler->type == want.scheduler->type);
    CHECK(got.scheduler->scalars == want.scheduler->scalars);
    CHECK(got.scheduler->lists == want.scheduler->lists);
  }
  CHECK(got.trainer == want.trainer);
  CHECK(got.rng == want.rng);
}

// IEEE binary16 -> float (for comparing h5py's float16 with fixture values).
float half_to_float(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31) v = mant ? NAN : INFINITY;
  else v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

// ---- raw HDF5 files for the error cases ----
struct RawFile {
  Handle file;
  explicit RawFile(const std::string& path) : file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose) {
    REQUIRE(file);
  }
  hid_t id() const { return file.id(); }
};

void put_str_attr(hid_t obj, const char* name, const std::string& value) {
  Handle t(dl::h5::vlen_str_type(), H5Tclose);
  Handle s(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(obj, name, t.id(), s.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const char* p = value.c_str();
  REQUIRE(H5Awrite(a.id(), t.id(), &p) >= 0);
}

void put_i64_attr(hid_t obj, const char* name, int64_t v) {
  Handle s(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(obj, name, H5T_STD_I64LE, s.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  REQUIRE(H5Awrite(a.id(), H5T_NATIVE_INT64, &v) >= 0);
}

Handle put_group(hid_t loc, const char* name) {
  Handle g(H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  REQUIRE(g);
  return g;
}

void put_f32(hid_t loc, const char* name, const std::vector<float>& v) {
  hsize_t n = v.size();
  Handle s(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle d(H5Dcreate2(loc, name, H5T_IEEE_F32LE, s.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  REQUIRE(H5Dwrite(d.id(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0);
}

void put_root_attrs(hid_t file, const std::string& format = "dltool.checkpoint", int64_t version = 1) {
  Handle root(H5Gopen2(file, "/", H5P_DEFAULT), H5Gclose);
  put_str_attr(root.id(), "format", format);
  put_i64_attr(root.id(), "format_version", version);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("checkpoint round trip is bit-exact and keeps the model order", "[checkpoint]") {
  TempDir dir;
  const std::string path = dir.file("full.h5");
  const Checkpoint want = make_full();
  dl::save_checkpoint(path, want);
  CHECK_FALSE(fs::exists(path + ".tmp"));

  const Checkpoint got = dl::load_checkpoint(path);
  require_same(got, want);
  CHECK(got.format_version == 1);
  CHECK(got.dltool_version == DLTOOL_VERSION);
  CHECK(std::regex_match(got.created_utc, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));

  SECTION("weights_only reads /model and /config, nothing else") {
    const Checkpoint w = dl::load_checkpoint(path, true);
    require_same_model(w.model, want.model);
    CHECK(w.config_yaml == want.config_yaml);
    CHECK_FALSE(w.optimizer);
    CHECK_FALSE(w.scheduler);
    CHECK(w.trainer.empty());
    CHECK(w.rng.empty());
  }
  SECTION("saving again replaces the file; a stale .tmp is overwritten") {
    write_file(path + ".tmp", "garbage left by a killed writer");
    Checkpoint next = want;
    next.trainer["global_step"] = int64_t{1235};
    dl::save_checkpoint(path, next);
    CHECK_FALSE(fs::exists(path + ".tmp"));
    CHECK(std::get<int64_t>(dl::load_checkpoint(path).trainer.at("global_step")) == 1235);
  }
  SECTION("a weights-only checkpoint is /model plus the root attributes") {
    Checkpoint w;
    w.model = want.model;
    const std::string wpath = dir.file("weights.h5");
    dl::save_checkpoint(wpath, w);
    Handle f(H5Fopen(wpath.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    REQUIRE(f);
    Handle root(H5Gopen2(f.id(), "/", H5P_DEFAULT), H5Gclose);
    std::vector<dl::h5::Link> links;
    REQUIRE(dl::h5::list_links(root.id(), links));
    REQUIRE(links.size() == 1);
    CHECK(links[0].name == "model");
    const Checkpoint back = dl::load_checkpoint(wpath);  // a full load of it is fine too
    require_same_model(back.model, want.model);
    CHECK(back.config_yaml.empty());
    CHECK_FALSE(back.optimizer);
    CHECK_FALSE(back.scheduler);
  }
}

TEST_CASE("checkpoint: bfloat16 is stored as float32, exactly", "[checkpoint]") {
  TempDir dir;
  std::mt19937 rng(3);
  Tensor bf = random_tensor({5}, DType::BF16, rng);
  Checkpoint c;
  c.model.emplace_back("w", bf);
  dl::save_checkpoint(dir.file("bf.h5"), c);
  Tensor back = dl::load_checkpoint(dir.file("bf.h5")).model.at(0).second;
  REQUIRE(back.dtype() == DType::F32);
  REQUIRE(back.shape() == Shape{5});
  for (int i = 0; i < 5; ++i) {
    uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(bf.raw_data())[i]) << 16;
    float want;
    std::memcpy(&want, &bits, 4);
    CHECK(back.data<float>()[i] == want);
  }
}

TEST_CASE("checkpoint: big models keep their order and long param lists", "[checkpoint]") {
  // 3000 keys push /model into HDF5's dense link storage (fractal heap + B-tree indexes); 6000
  // names make the `params` attribute larger than the 64 KiB an object header message can hold.
  TempDir dir;
  Checkpoint c;
  std::vector<std::string> names;
  for (int i = 2999; i >= 0; --i) {
    names.push_back("blocks." + std::to_string(i) + (i % 2 ? ".weight" : ".bias"));
    c.model.emplace_back(names.back(), filled({2}, DType::F32, i));
  }
  dl::OptimizerState o;
  o.type = "sgd";
  dl::OptimizerGroupState g;
  for (int i = 0; i < 6000; ++i) g.names.push_back("a.rather.long.parameter.name.number." + std::to_string(i));
  o.param_groups.push_back(g);
  c.optimizer = o;
  dl::save_checkpoint(dir.file("big.h5"), c);
  const Checkpoint back = dl::load_checkpoint(dir.file("big.h5"));
  require_same_model(back.model, c.model);
  REQUIRE(back.optimizer);
  REQUIRE(back.optimizer->param_groups.size() == 1);
  CHECK(back.optimizer->param_groups[0].names == g.names);
}

TEST_CASE("checkpoint: the file layout is the one DESIGN.md fixes", "[checkpoint]") {
  TempDir dir;
  const std::string path = dir.file("layout.h5");
  dl::save_checkpoint(path, make_full());

  // The dltool header in the HDF5 user block.
  const std::string bytes = read_file(path);
  REQUIRE(bytes.size() > dl::ckpt_detail::kUserBlockBytes);
  CHECK(bytes.rfind("dltool.checkpoint user block 1\n", 0) == 0);
  CHECK(bytes.compare(512, 8, "\x89HDF\r\n\x1a\n") == 0);

  Handle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  REQUIRE(f);
  auto type_of_attr = [](hid_t obj, const char* name) {
    Handle a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
    REQUIRE(a);
    return Handle(H5Aget_type(a.id()), H5Tclose);
  };
  auto is_vlen_str = [](hid_t t) { return H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0; };
  Handle root(H5Gopen2(f.id(), "/", H5P_DEFAULT), H5Gclose);
  CHECK(is_vlen_str(type_of_attr(root.id(), "format").id()));
  CHECK(H5Tequal(type_of_attr(root.id(), "format_version").id(), H5T_STD_I64LE) > 0);
  CHECK(is_vlen_str(type_of_attr(root.id(), "dltool_version").id()));
  CHECK(is_vlen_str(type_of_attr(root.id(), "created_utc").id()));

  // /model: creation order tracked and indexed; one dataset per key, in model order.
  Handle model(H5Gopen2(f.id(), "model", H5P_DEFAULT), H5Gclose);
  REQUIRE(model);
  Handle gcpl(H5Gget_create_plist(model.id()), H5Pclose);
  unsigned flags = 0;
  REQUIRE(H5Pget_link_creation_order(gcpl.id(), &flags) >= 0);
  CHECK(flags == (H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
  std::vector<std::string> names;
  hsize_t idx = 0;
  H5Literate(model.id(), H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx,
             [](hid_t, const char* name, const H5L_info_t*, void* d) -> herr_t {
               static_cast<std::vector<std::string>*>(d)->push_back(name);
               return 0;
             },
             &names);
  CHECK(names == kModelOrder);
  auto dset_type = [&](const char* name) {
    Handle d(H5Dopen2(model.id(), name, H5P_DEFAULT), H5Dclose);
    REQUIRE(d);
    return Handle(H5Dget_type(d.id()), H5Tclose);
  };
  CHECK(H5Tequal(dset_type("layer2.weight").id(), H5T_IEEE_F32LE) > 0);
  CHECK(H5Tequal(dset_type("bn.num_batches_tracked").id(), H5T_STD_I64LE) > 0);
  CHECK(H5Tequal(dset_type("head.double").id(), H5T_IEEE_F64LE) > 0);
  CHECK(H5Tequal(dset_type("pixels").id(), H5T_STD_U8LE) > 0);
  {
    Handle d(H5Dopen2(model.id(), "bn.num_batches_tracked", H5P_DEFAULT), H5Dclose);
    Handle s(H5Dget_space(d.id()), H5Sclose);
    CHECK(H5Sget_simple_extent_type(s.id()) == H5S_SCALAR);
  }
  // /optimizer, param groups (params: 1-d vlen strings), state/<key>/<slot> + step.
  Handle opt(H5Gopen2(f.id(), "optimizer", H5P_DEFAULT), H5Gclose);
  REQUIRE(opt);
  CHECK(is_vlen_str(type_of_attr(opt.id(), "type").id()));
  CHECK(H5Tequal(type_of_attr(opt.id(), "lr").id(), H5T_IEEE_F64LE) > 0);
  Handle pg(H5Gopen2(f.id(), "optimizer/param_groups/1", H5P_DEFAULT), H5Gclose);
  REQUIRE(pg);
  CHECK(is_vlen_str(type_of_attr(pg.id(), "params").id()));
  Handle st(H5Gopen2(f.id(), "optimizer/state/layer2.weight", H5P_DEFAULT), H5Gclose);
  REQUIRE(st);
  CHECK(H5Tequal(type_of_attr(st.id(), "step").id(), H5T_STD_I64LE) > 0);
  CHECK(H5Lexists(st.id(), "exp_avg", H5P_DEFAULT) > 0);
  CHECK(H5Lexists(st.id(), "exp_avg_sq", H5P_DEFAULT) > 0);
  // /scheduler, /trainer, /rng, /config.
  Handle sch(H5Gopen2(f.id(), "scheduler", H5P_DEFAULT), H5Gclose);
  CHECK(H5Tequal(type_of_attr(sch.id(), "last_epoch").id(), H5T_IEEE_F64LE) > 0);
  Handle tr(H5Gopen2(f.id(), "trainer", H5P_DEFAULT), H5Gclose);
  CHECK(H5Tequal(type_of_attr(tr.id(), "global_step").id(), H5T_STD_I64LE) > 0);
  Handle rng(H5Dopen2(f.id(), "rng/cpu", H5P_DEFAULT), H5Dclose);
  REQUIRE(rng);
  Handle rt(H5Dget_type(rng.id()), H5Tclose);
  CHECK(H5Tequal(rt.id(), H5T_STD_U8LE) > 0);
  CHECK(H5Lexists(f.id(), "config", H5P_DEFAULT) > 0);
}

TEST_CASE("checkpoint: h5dump and h5py read dltool checkpoints", "[checkpoint][interop]") {
  TempDir dir;
  const std::string path = dir.file("interop.h5");
  dl::save_checkpoint(path, make_full());

  if (::access("/usr/bin/h5dump", X_OK) == 0) {
    std::string out;
    REQUIRE(run_command("/usr/bin/h5dump '" + path + "'", out) == 0);
    CHECK(out.find("\"dltool.checkpoint\"") != std::string::npos);
    CHECK(out.find("DATASET \"layer2.weight\"") != std::string::npos);
    CHECK(out.find("GROUP \"param_groups\"") != std::string::npos);
  } else {
    WARN("/usr/bin/h5dump not installed: h5dump check skipped");
  }

  if (!have_python_modules("h5py, numpy")) {
    WARN("/usr/bin/python3 with h5py not available: h5py check skipped");
    return;
  }
  // What an h5py user sees. Model keys come back in creation (= model) order because h5py
  // follows a group's creation-order index when it has one.
  const std::string script = dir.file("check.py");
  write_file(script, R"PY(
import sys
import h5py
import numpy as np

path, order = sys.argv[1], sys.argv[2].split(',')
with h5py.File(path, 'r') as f:
    assert f.userblock_size == 512, f.userblock_size
    assert f.attrs['format'] == 'dltool.checkpoint', repr(f.attrs['format'])
    assert f.attrs['format_version'] == 1
    assert isinstance(f.attrs['dltool_version'], str) and f.attrs['created_utc'].endswith('Z')
    m = f['model']
    assert list(m) == order, list(m)
    assert m['layer2.weight'].shape == (3, 4) and m['layer2.weight'].dtype == np.float32
    assert m['bn.num_batches_tracked'].shape == () and m['bn.num_batches_tracked'].dtype == np.int64
    assert m['bn.num_batches_tracked'][()] == 42
    assert m['0.scale'][()] == 0.25
    assert m['head.double'].dtype == np.float64
    assert m['mask'].dtype == np.bool_ and m['pixels'].dtype == np.uint8
    assert m['half'].dtype == np.float16 and m['empty'].shape == (0, 3)
    assert f['config'].asstr()[()].startswith('model:')
    o = f['optimizer']
    assert o.attrs['type'] == 'adam' and o.attrs['lr'] == 1e-3
    assert list(o['param_groups']) == ['0', '1', '2']
    params = list(o['param_groups/0'].attrs['params'])
    assert params == ['layer2.weight', 'layer1.bias'], params
    assert all(type(p) is str for p in params)
    assert list(o['param_groups/2'].attrs['params']) == []
    s = o['state/layer2.weight']
    assert s.attrs['step'] == 7 and s['exp_avg'].shape == (3, 4)
    sc = f['scheduler'].attrs
    assert sc['type'] == 'cosine' and sc['last_epoch'] == 4 and list(sc['base_lrs']) == [1e-3, 1e-2, 0.5]
    t = f['trainer'].attrs
    assert t['epoch'] == 3 and t['global_step'] == 1234 and t['best_metric'] == 0.875
    assert t['best_metric_name'] == 'val_accuracy' and t['big'] == 2**60
    assert f['rng/cpu'].dtype == np.uint8 and f['rng/cpu'].shape == (5000,)
print('h5py OK')
)PY");
  std::string order;
  for (const auto& k : kModelOrder) order += (order.empty() ? "" : ",") + k;
  std::string out;
  int rc = run_command("/usr/bin/python3 '" + script + "' '" + path + "' '" + order + "'", out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("h5py OK") != std::string::npos);
}

TEST_CASE("checkpoint: PyTorch state_dicts written by h5py load as weights only", "[checkpoint][interop]") {
  const auto cases = dl::test::load_fixtures("checkpoint_torch.txt");
  const auto& sd = dl::test::find_case(cases, "state_dict");
  std::vector<std::string> order;
  {
    std::istringstream in(sd.attr("order"));
    for (std::string k; in >> k;) order.push_back(k);
  }
  auto check_values = [&](const dl::StateDict& got) {
    for (const auto& [k, t] : got) {
      INFO(k);
      CHECK(bit_equal(t, sd.t(k)));
    }
  };
  auto keys_of = [](const dl::StateDict& m) {
    std::vector<std::string> ks;
    for (const auto& kv : m) ks.push_back(kv.first);
    return ks;
  };

  SECTION("track_order=True keeps the state_dict order") {
    const std::string path = dl::test::source_path("tests/fixtures/checkpoint_torch_ordered.h5");
    const Checkpoint c = dl::load_checkpoint(path, true);
    CHECK(keys_of(c.model) == order);
    check_values(c.model);
    CHECK(c.format_version == 0);  // a foreign file: no root attributes
    CHECK(c.dltool_version.empty());
    const std::string msg = error_of([&] { dl::load_checkpoint(path); });
    CHECK_THAT(msg, Catch::Contains("no root attribute 'format'") && Catch::Contains("weights only") &&
                        Catch::Contains(path));
  }
  SECTION("a plain h5py group lists keys by name") {
    const Checkpoint c = dl::load_checkpoint(dl::test::source_path("tests/fixtures/checkpoint_torch_plain.h5"), true);
    std::vector<std::string> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    CHECK(keys_of(c.model) == sorted);
    check_values(c.model);
  }
  SECTION("the other dtypes h5py writes") {
    const auto& want = dl::test::find_case(cases, "dtypes");
    const Checkpoint c = dl::load_checkpoint(dl::test::source_path("tests/fixtures/checkpoint_h5py_dtypes.h5"), true);
    CHECK(keys_of(c.model) == std::vector<std::string>{"half", "mask", "i32", "u16", "be", "scalar"});
    std::map<std::string, Tensor> m(c.model.begin(), c.model.end());
    REQUIRE(m.at("half").dtype() == DType::F16);
    const Tensor& hw = want.t("half");
    for (int64_t i = 0; i < 6; ++i)
      CHECK(half_to_float(static_cast<const uint16_t*>(m.at("half").raw_data())[i]) == hw.data<float>()[i]);
    CHECK(bit_equal(m.at("mask"), want.t("mask")));
    CHECK(bit_equal(m.at("i32"), want.t("i32")));  // int32 widened to int64
    CHECK(bit_equal(m.at("u16"), want.t("u16")));
    CHECK(bit_equal(m.at("be"), want.t("be")));  // big-endian float32 converted
    CHECK(bit_equal(m.at("scalar"), want.t("scalar")));
  }
  SECTION("written on the fly by h5py from a torch model") {
    if (!have_python_modules("h5py, torch")) {
      WARN("/usr/bin/python3 with h5py and torch not available: on-the-fly check skipped");
      return;
    }
    TempDir dir;
    const std::string script = dir.file("make.py"), h5 = dir.file("torch.h5"), txt = dir.file("torch.txt");
    write_file(script, R"PY(
import sys
import h5py
import torch
torch.manual_seed(5)
net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                          torch.nn.Flatten(), torch.nn.Linear(2, 3))
sd = net.state_dict()
with h5py.File(sys.argv[1], 'w') as f:
    g = f.create_group('model', track_order=True)
    for k, v in sd.items():
        g[k] = v.numpy()
with open(sys.argv[2], 'w') as out:
    for k, v in sd.items():
        vals = v.reshape(-1).tolist()
        out.write(' '.join([k, str(v.dtype), str(len(vals))] + [repr(float(x)) for x in vals]) + '\n')
)PY");
    std::string out;
    int rc = run_command("/usr/bin/python3 '" + script + "' '" + h5 + "' '" + txt + "'", out);
    INFO(out);
    REQUIRE(rc == 0);
    const Checkpoint c = dl::load_checkpoint(h5, true);
    std::istringstream in(read_file(txt));
    size_t i = 0;
    for (std::string line; std::getline(in, line); ++i) {
      std::istringstream ls(line);
      std::string key, dtype;
      size_t n;
      ls >> key >> dtype >> n;
      INFO(key);
      REQUIRE(i < c.model.size());
      CHECK(c.model[i].first == key);
      const Tensor& t = c.model[i].second;
      REQUIRE(static_cast<size_t>(t.numel()) == n);
      for (size_t j = 0; j < n; ++j) {
        double v;
        ls >> v;
        if (dtype == "torch.int64") CHECK(t.data<int64_t>()[j] == static_cast<int64_t>(v));
        else CHECK(t.data<float>()[j] == static_cast<float>(v));
      }
    }
    CHECK(i == c.model.size());
    CHECK(c.model.size() == 9);  // 0.weight, 0.bias, 1.weight ... 1.num_batches_tracked, 4.weight, 4.bias
  }
}

TEST_CASE("checkpoint: load errors name the file and the problem", "[checkpoint]") {
  TempDir dir;
  const std::string good = dir.file("good.h5");
  dl::save_checkpoint(good, make_full());
  const std::string p = dir.file("bad.h5");
  auto load_error = [&](bool weights_only = false) { return error_of([&] { dl::load_checkpoint(p, weights_only); }); };
  using Catch::Contains;

  SECTION("missing file") {
    CHECK_THAT(load_error(), Contains("'" + p + "'") && Contains("no such file"));
  }
  SECTION("a directory") {
    fs::create_directory(p);
    CHECK_THAT(load_error(), Contains("is a directory"));
  }
  SECTION("a FIFO is refused without blocking") {
    REQUIRE(::mkfifo(p.c_str(), 0600) == 0);
    CHECK_THAT(load_error(), Contains("not a regular file"));
  }
  SECTION("empty file") {
    write_file(p, "");
    CHECK_THAT(load_error(), Contains("'" + p + "'") && Contains("empty (0 bytes)"));
  }
  SECTION("not HDF5") {
    write_file(p, "model:\n  layers: []\n");
    CHECK_THAT(load_error(), Contains("not an HDF5 file"));
    write_file(p, std::string("PK\x03\x04", 4) + "archive/data.pkl");
    CHECK_THAT(load_error(), Contains("not an HDF5 file") && Contains("torch.save()"));
  }
  SECTION("HDF5, but neither 'format' nor /model") {
    { RawFile f(p); put_group(f.id(), "weights"); }
    CHECK_THAT(load_error(true), Contains("not a dltool checkpoint: no root attribute 'format' (weights-only files "
                                          "need at least /model)"));
  }
  SECTION("/model without 'format' is weights-only") {
    {
      RawFile f(p);
      Handle m = put_group(f.id(), "model");
      put_f32(m.id(), "fc.weight", {1, 2, 3});
    }
    CHECK_THAT(load_error(false), Contains("no root attribute 'format'") && Contains("weights only"));
    const Checkpoint c = dl::load_checkpoint(p, true);
    REQUIRE(c.model.size() == 1);
    CHECK(c.model[0].first == "fc.weight");
  }
  SECTION("another format") {
    {
      RawFile f(p);
      put_root_attrs(f.id(), "keras.weights");
      put_group(f.id(), "model");
    }
    CHECK_THAT(load_error(true), Contains("not a dltool checkpoint: root attribute format = 'keras.weights'"));
  }
  SECTION("a newer format_version") {
    {
      RawFile f(p);
      put_root_attrs(f.id(), "dltool.checkpoint", 2);
      put_group(f.id(), "model");
    }
    CHECK_THAT(load_error(), Contains("written by a newer dltool (format_version 2"));
  }
  SECTION("format but no /model") {
    { RawFile f(p); put_root_attrs(f.id()); }
    CHECK_THAT(load_error(), Contains("no /model group"));
  }
  SECTION("a truncated dltool checkpoint") {
    const std::string bytes = read_file(good);
    write_file(p, bytes.substr(0, bytes.size() / 2));
    CHECK_THAT(load_error(), Contains("truncated or corrupt") && Contains("'" + p + "'"));
    write_file(p, bytes.substr(0, 300));  // inside the dltool header
    CHECK_THAT(load_error(), Contains("truncated or corrupt"));
  }
  SECTION("a truncated foreign file (no dltool header: HDF5's own check)") {
    const std::string bytes = read_file(dl::test::source_path("tests/fixtures/checkpoint_torch_ordered.h5"));
    write_file(p, bytes.substr(0, bytes.size() - 100));
    CHECK_THAT(load_error(true), Contains("truncated or corrupt"));
  }
  SECTION("one flipped bit in a weight is caught by the checksum") {
    std::string bytes = read_file(good);
    bytes[bytes.size() - 20] ^= 0x01;
    write_file(p, bytes);
    CHECK_THAT(load_error(), Contains("truncated or corrupt file: checksum mismatch"));
  }
  SECTION("an in-place edit by another tool is refused until the header is blanked") {
    fs::copy_file(good, p);
    {
      Handle f(H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
      REQUIRE(f);
      Handle g(H5Gopen2(f.id(), "trainer", H5P_DEFAULT), H5Gclose);
      Handle a(H5Aopen(g.id(), "epoch", H5P_DEFAULT), H5Aclose);
      REQUIRE(a);
      const int64_t epoch = 99;
      REQUIRE(H5Awrite(a.id(), H5T_NATIVE_INT64, &epoch) >= 0);
    }
    CHECK_THAT(load_error(), Contains("modified by another tool") && Contains("dd if=/dev/zero"));
    std::string bytes = read_file(p);
    std::fill(bytes.begin(), bytes.begin() + 512, '\0');
    write_file(p, bytes);
    CHECK(std::get<int64_t>(dl::load_checkpoint(p).trainer.at("epoch")) == 99);
  }
  SECTION("unsupported dtypes") {
    {
      RawFile f(p);
      put_root_attrs(f.id());
      Handle m = put_group(f.id(), "model");
      Handle ct(H5Tcreate(H5T_COMPOUND, 8), H5Tclose);
      H5Tinsert(ct.id(), "re", 0, H5T_NATIVE_FLOAT);
      H5Tinsert(ct.id(), "im", 4, H5T_NATIVE_FLOAT);
      hsize_t n = 2;
      Handle s(H5Screate_simple(1, &n, nullptr), H5Sclose);
      Handle d(H5Dcreate2(m.id(), "complex", ct.id(), s.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
      REQUIRE(d);
    }
    CHECK_THAT(load_error(), Contains("/model/complex has unsupported dtype compound"));
    {
      RawFile f(p);
      put_root_attrs(f.id());
      Handle m = put_group(f.id(), "model");
      hsize_t n = 2;
      Handle s(H5Screate_simple(1, &n, nullptr), H5Sclose);
      Handle d(H5Dcreate2(m.id(), "u64", H5T_STD_U64LE, s.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
      REQUIRE(d);
    }
    CHECK_THAT(load_error(), Contains("/model/u64 has unsupported dtype uint64"));
  }
  SECTION("a dataset whose stored size disagrees with its dataspace") {
    // HDF5's oldest object format has no checksums, so a patched dimension goes unnoticed by
    // HDF5 itself: the current dims (4099) are the first occurrence of that u64 in the file.
    {
      RawFile f(p);
      put_root_attrs(f.id());
      Handle m = put_group(f.id(), "model");
      put_f32(m.id(), "w", std::vector<float>(4099, 0.f));
    }
    std::string bytes = read_file(p);
    const std::string dim("\x03\x10\0\0\0\0\0\0", 8), patched("\x04\x10\0\0\0\0\0\0", 8);
    size_t at = bytes.find(dim);
    REQUIRE(at != std::string::npos);
    bytes.replace(at, 8, patched);
    write_file(p, bytes);
    CHECK_THAT(load_error(), Contains("/model/w: stored size 16396 bytes disagrees with its dataspace [4100]"));
  }
  SECTION("nested groups and links under /model") {
    {
      RawFile f(p);
      put_root_attrs(f.id());
      Handle m = put_group(f.id(), "model");
      Handle sub = put_group(m.id(), "conv1");
      put_f32(sub.id(), "weight", {1});
    }
    CHECK_THAT(load_error(), Contains("/model/conv1 is a group, expected a dataset"));
    {
      RawFile f(p);
      put_root_attrs(f.id());
      Handle m = put_group(f.id(), "model");
      REQUIRE(H5Lcreate_external("/etc/other.h5", "/secret", m.id(), "ext", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    }
    CHECK_THAT(load_error(), Contains("/model/ext is a soft or external link"));
  }
}

TEST_CASE("checkpoint: save rejects bad names before touching the disk", "[checkpoint]") {
  TempDir dir;
  const std::string path = dir.file("last.h5");
  const Checkpoint good = make_full();
  dl::save_checkpoint(path, good);
  const std::string before = read_file(path);
  using Catch::Contains;
  auto save_error = [&](const Checkpoint& c) { return error_of([&] { dl::save_checkpoint(path, c); }); };

  Checkpoint c = good;
  SECTION("'/' in a key") {
    c.model.emplace_back("conv1/weight", filled({1}, DType::F32, 1));
    CHECK_THAT(save_error(c), Contains("model key 'conv1/weight' contains '/'") && Contains(path));
  }
  SECTION("'.' and empty keys") {
    c.model.emplace_back(".", filled({1}, DType::F32, 1));
    CHECK_THAT(save_error(c), Contains("'.' is not a valid"));
    c.model.back().first = "";
    CHECK_THAT(save_error(c), Contains("empty model key"));
  }
  SECTION("duplicate keys") {
    c.model.push_back(c.model.front());
    CHECK_THAT(save_error(c), Contains("duplicate model key 'layer2.weight'"));
  }
  SECTION("undefined tensors") {
    c.optimizer->state["layer1.bias"].slots["exp_avg"] = Tensor();
    CHECK_THAT(save_error(c), Contains("optimizer state 'layer1.bias/exp_avg' is an undefined tensor"));
  }
  SECTION("reserved attribute names") {
    c.optimizer->defaults["type"] = 1;
    CHECK_THAT(save_error(c), Contains("clashes with the reserved attribute"));
  }
  SECTION("a scheduler key both scalar and list") {
    c.scheduler->lists["last_epoch"] = {1};
    CHECK_THAT(save_error(c), Contains("both a scalar and a list"));
  }
  CHECK(read_file(path) == before);
  CHECK_FALSE(fs::exists(path + ".tmp"));
}

TEST_CASE("checkpoint: truncated and bit-flipped files load or fail cleanly", "[checkpoint][fuzz]") {
  // Each damaged copy must load or throw CheckpointError: never crash, hang or throw anything
  // else (run under the Sanitize build to catch memory errors too).
  TempDir dir;
  const std::string good = dir.file("good.h5");
  dl::save_checkpoint(good, make_full());
  const std::string bytes = read_file(good);
  std::mt19937 rng(20240501);
  const std::string p = dir.file("damaged.h5");
  int loaded = 0, rejected = 0;
  auto try_load = [&](bool weights_only) {
    try {
      dl::load_checkpoint(p, weights_only);
      ++loaded;
    } catch (const CheckpointError& e) {
      ++rejected;
      CHECK_THAT(e.what(), Catch::Contains(p));
    }
  };
  for (int i = 0; i < 20; ++i) {
    size_t len = rng() % bytes.size();
    if (i < 4) len = std::vector<size_t>{1, 8, 511, 520}[static_cast<size_t>(i)];
    INFO("truncated to " << len << " of " << bytes.size() << " bytes");
    write_file(p, bytes.substr(0, len));
    try_load(i % 2 == 0);
  }
  CHECK(loaded == 0);  // no truncation of a dltool file loads
  for (int i = 0; i < 20; ++i) {
    std::string copy = bytes;
    size_t at = rng() % copy.size();
    copy[at] = static_cast<char>(copy[at] ^ static_cast<char>(1 + rng() % 255));
    INFO("byte " << at << " flipped");
    write_file(p, copy);
    try_load(i % 2 == 0);
  }
  // The same on a foreign (h5py) file, which has no dltool checksum: HDF5's checks only.
  // HDF5 1.10.8 itself is not hardened against every damaged file: a wider run (3000 cases
  // under ASan) still found 2 memory errors inside libhdf5 (enum type decode, compact link
  // table release). That is why dltool's own files carry the CRC header.
  const std::string foreign = read_file(dl::test::source_path("tests/fixtures/checkpoint_torch_ordered.h5"));
  for (int i = 0; i < 20; ++i) {
    std::string copy = foreign;
    if (i % 2) {
      copy.resize(rng() % copy.size());
    } else {
      size_t at = rng() % copy.size();
      copy[at] = static_cast<char>(copy[at] ^ static_cast<char>(1 + rng() % 255));
    }
    write_file(p, copy);
    try_load(true);
  }
  INFO(loaded << " loaded, " << rejected << " rejected");
  CHECK(loaded + rejected == 60);
}

TEST_CASE("checkpoint: CheckpointError always names the file", "[checkpoint]") {
  CHECK(std::string(CheckpointError("runs/a/last.h5", "has no /optimizer state").what()) ==
        "runs/a/last.h5: has no /optimizer state");
  const CheckpointError e("x.h5", "cannot load checkpoint 'x.h5': empty");
  CHECK(std::string(e.what()) == "cannot load checkpoint 'x.h5': empty");
  CHECK(e.path() == "x.h5");
}

TEST_CASE("checkpoint: CRC-32C and the user block header", "[checkpoint]") {
  using namespace dl::ckpt_detail;
  CHECK(crc32c("123456789", 9) == 0xE3069283u);
  CHECK(crc32c("", 0) == 0u);
  CHECK(crc32c("56789", 5, crc32c("1234", 4)) == 0xE3069283u);  // continuation
  const std::string ub = user_block(123456789012ull, 0xDEADBEEFu);
  REQUIRE(ub.size() == kUserBlockBytes);
  UserBlock parsed = parse_user_block(ub.data(), ub.size());
  CHECK(parsed.present);
  CHECK(parsed.valid);
  CHECK(parsed.version == 1);
  CHECK(parsed.payload_bytes == 123456789012ull);
  CHECK(parsed.payload_crc == 0xDEADBEEFu);
  CHECK_FALSE(parse_user_block("\x89HDF\r\n\x1a\n", 8).present);
  std::string broken = ub;
  broken.replace(broken.find("payload_crc32c"), 14, "payload_crc32x");
  CHECK_FALSE(parse_user_block(broken.data(), broken.size()).valid);
}
