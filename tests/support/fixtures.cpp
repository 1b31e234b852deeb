#include "tests/support/fixtures.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#ifndef DLTOOL_SOURCE_DIR
#define DLTOOL_SOURCE_DIR "."
#endif

namespace dl::test {

std::string source_path(const std::string& relative) {
  return std::string(DLTOOL_SOURCE_DIR) + "/" + relative;
}

const std::string& FixtureCase::attr(const std::string& key) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) throw std::out_of_range("fixture case '" + name + "' has no attr '" + key + "'");
  return it->second;
}
double FixtureCase::attr_f(const std::string& key) const { return std::stod(attr(key)); }
int64_t FixtureCase::attr_i(const std::string& key) const { return std::stoll(attr(key)); }
std::vector<int64_t> FixtureCase::attr_ints(const std::string& key) const {
  std::istringstream is(attr(key));
  std::vector<int64_t> v;
  int64_t x;
  while (is >> x) v.push_back(x);
  return v;
}
const Tensor& FixtureCase::t(const std::string& key) const {
  auto it = tensors.find(key);
  if (it == tensors.end()) throw std::out_of_range("fixture case '" + name + "' has no tensor '" + key + "'");
  return it->second;
}

std::vector<FixtureCase> load_fixtures(const std::string& name) {
  std::string path = source_path("tests/fixtures/" + name);
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open fixture file " + path);
  std::vector<FixtureCase> cases;
  FixtureCase cur;
  bool open = false;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    std::string kind;
    is >> kind;
    auto fail = [&](const std::string& why) {
      throw std::runtime_error(path + ":" + std::to_string(lineno) + ": " + why);
    };
    if (kind == "case") {
      if (open) fail("case without end");
      cur = FixtureCase();
      is >> cur.name;
      open = true;
    } else if (kind == "attr") {
      std::string key, rest;
      is >> key;
      std::getline(is, rest);
      size_t p = rest.find_first_not_of(' ');
      cur.attrs[key] = p == std::string::npos ? "" : rest.substr(p);
    } else if (kind == "tensor") {
      std::string key, dt;
      int64_t ndim;
      is >> key >> dt >> ndim;
      Shape shape(static_cast<size_t>(ndim));
      for (auto& d : shape) is >> d;
      int64_t n = shape_numel(shape);
      std::vector<double> v(static_cast<size_t>(n));
      for (auto& x : v) {
        std::string tok;
        if (!(is >> tok)) fail("tensor '" + key + "': too few values");
        x = tok == "nan" ? NAN : tok == "inf" ? INFINITY : tok == "-inf" ? -INFINITY : std::stod(tok);
      }
      DType dtype = dt == "f32" ? DType::F32 : dt == "f64" ? DType::F64 : dt == "i64" ? DType::I64
                  : dt == "bool" ? DType::Bool : DType::U8;
      if (dt != "f32" && dt != "f64" && dt != "i64" && dt != "bool") fail("unknown dtype " + dt);
      cur.tensors[key] = from_vector(v, shape, DType::F64).to(dtype);
    } else if (kind == "end") {
      cases.push_back(cur);
      open = false;
    } else {
      fail("unknown record '" + kind + "'");
    }
  }
  if (open) throw std::runtime_error(path + ": last case has no end");
  return cases;
}

const FixtureCase& find_case(const std::vector<FixtureCase>& cases, const std::string& name) {
  for (const auto& c : cases)
    if (c.name == name) return c;
  throw std::out_of_range("no fixture case named '" + name + "'");
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol, std::string* report) {
  std::ostringstream os;
  if (a.shape() != b.shape()) {
    if (report) *report = "shape mismatch: " + shape_str(a.shape()) + " vs expected " + shape_str(b.shape());
    return false;
  }
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double max_abs = 0, max_rel = 0;
  size_t worst = 0;
  bool ok = true;
  double worst_excess = -1;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) && std::isnan(y[i])) continue;
    double d = std::fabs(x[i] - y[i]);
    if (std::isnan(d)) d = INFINITY;
    max_abs = std::max(max_abs, d);
    if (y[i] != 0) max_rel = std::max(max_rel, d / std::fabs(y[i]));
    double excess = d - (atol + rtol * std::fabs(y[i]));
    if (excess > 0) ok = false;
    if (excess > worst_excess) { worst_excess = excess; worst = i; }
  }
  if (report) {
    os << "shape " << shape_str(a.shape()) << " max_abs=" << max_abs << " max_rel=" << max_rel;
    if (!x.empty()) os << " worst at flat index " << worst << ": got " << x[worst] << " expected " << y[worst];
    *report = os.str();
  }
  return ok;
}

bool have_cuda() { return cuda_available(); }

}  // namespace dl::test
