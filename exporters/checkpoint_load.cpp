// Checkpoint reader (load_checkpoint): validates before it trusts anything. The layout is
// documented in exporters/checkpoint.h.
//
// Order of checks: the OS view of the file (exists, regular, non-empty, readable) -> the HDF5
// signature -> HDF5 opens it (it verifies the superblock checksum and compares the stored end
// of file with the real size: "truncated file") -> our root attributes -> each object. Every
// dataset's type, dataspace and stored size are checked before memory is allocated for it.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "exporters/checkpoint.h"
#include "exporters/checkpoint_userblock.h"
#include "exporters/hdf5_util.h"

namespace dl {
namespace {

using h5::Handle;

// Refuse single objects beyond this size: only a corrupt header asks for more. (A contiguous
// dataset is also bounded by the file size; this bounds compressed chunked ones.)
constexpr uint64_t kMaxObjectBytes = uint64_t{1} << 40;
constexpr uint64_t kMaxAttrElements = uint64_t{1} << 24;

// What an attribute (or small dataset) holds, converted to one of three C++ kinds.
struct Values {
  enum Kind { Int, Float, String } kind = Int;
  int rank = 0;  // 0: scalar dataspace
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strs;
  size_t size() const { return kind == Int ? ints.size() : kind == Float ? floats.size() : strs.size(); }
};

// Uniform access to attributes and datasets for Values.
struct Source {
  hid_t id;
  bool is_attr;
  hid_t type() const { return is_attr ? H5Aget_type(id) : H5Dget_type(id); }
  hid_t space() const { return is_attr ? H5Aget_space(id) : H5Dget_space(id); }
  herr_t read(hid_t mtype, void* buf) const {
    return is_attr ? H5Aread(id, mtype, buf) : H5Dread(id, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  }
};

class Reader {
 public:
  Reader(const std::string& path, uint64_t file_size) : path_(path), file_size_(file_size) {}

  // A problem with the content (not an HDF5 failure).
  [[noreturn]] void invalid(const std::string& msg) const {
    throw CheckpointError(path_, "cannot load checkpoint '" + path_ + "': " + msg);
  }
  // An HDF5 call failed: the file is damaged (or uses a feature this HDF5 lacks).
  [[noreturn]] void corrupt(const std::string& doing) const {
    h5::Error e = h5::last_error();
    invalid("truncated or corrupt file: cannot " + doing + " (HDF5: " + e.plain() + ")");
  }
  Handle checked(hid_t id, Handle::Closer closer, const std::string& doing) const {
    if (id < 0) corrupt(doing);
    return Handle(id, closer);
  }
  void check(herr_t st, const std::string& doing) const {
    if (st < 0) corrupt(doing);
  }

  bool exists(hid_t loc, const std::string& name, const std::string& where) const {
    htri_t r = H5Lexists(loc, name.c_str(), H5P_DEFAULT);
    if (r < 0) corrupt("look up " + where);
    return r > 0;
  }
  bool has_attr(hid_t obj, const std::string& name, const std::string& where) const {
    htri_t r = H5Aexists(obj, name.c_str());
    if (r < 0) corrupt("look up attribute '" + name + "' of " + where);
    return r > 0;
  }

  // Opens `loc/name` as an object of `want` type (group or dataset); hard links only, so an
  // external link can never make us read another file.
  Handle open(hid_t loc, const std::string& name, H5I_type_t want, const std::string& where) const {
    H5L_info_t info;
    check(H5Lget_info(loc, name.c_str(), &info, H5P_DEFAULT), "look up " + where);
    if (info.type != H5L_TYPE_HARD) invalid(where + " is a soft or external link; only plain objects are read");
    Handle obj = checked(H5Oopen(loc, name.c_str(), H5P_DEFAULT), H5Oclose, "open " + where);
    H5I_type_t t = H5Iget_type(obj.id());
    if (t != want)
      invalid(where + " is " + (t == H5I_GROUP ? "a group" : t == H5I_DATASET ? "a dataset" : "not a dataset or group") +
              ", expected " + (want == H5I_GROUP ? "a group" : "a dataset"));
    return obj;
  }

  std::vector<h5::Link> links(hid_t group, const std::string& where) const {
    std::vector<h5::Link> out;
    if (!h5::list_links(group, out)) corrupt("list the members of " + where);
    for (const auto& l : out)
      if (!l.hard) invalid(where + "/" + l.name + " is a soft or external link; only plain objects are read");
    return out;
  }
  std::vector<std::string> attrs(hid_t obj, const std::string& where) const {
    std::vector<std::string> out;
    if (!h5::attr_names(obj, out)) corrupt("list the attributes of " + where);
    return out;
  }

  // Number of elements of a dataspace and its dims ({} for scalar). Rejects null dataspaces.
  uint64_t extent(hid_t space, Shape& dims, const std::string& where) const {
    H5S_class_t cls = H5Sget_simple_extent_type(space);
    if (cls == H5S_SCALAR) {
      dims.clear();
      return 1;
    }
    if (cls != H5S_SIMPLE) {
      if (cls == H5S_NULL) invalid(where + " has a null dataspace (holds no value)");
      corrupt("read the dataspace of " + where);
    }
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank < 0 || rank > H5S_MAX_RANK) corrupt("read the dataspace of " + where);
    std::vector<hsize_t> d(static_cast<size_t>(rank));
    if (H5Sget_simple_extent_dims(space, d.data(), nullptr) < 0) corrupt("read the dataspace of " + where);
    uint64_t n = 1;
    dims.assign(d.size(), 0);
    for (size_t i = 0; i < d.size(); ++i) {
      if (d[i] > kMaxObjectBytes) invalid(where + " has an implausible dimension " + std::to_string(d[i]));
      dims[i] = static_cast<int64_t>(d[i]);
      if (d[i] != 0 && n > kMaxObjectBytes / d[i]) invalid(where + " has an implausible shape " + shape_str(dims));
      n *= d[i];
    }
    return n;
  }

  // ---- attributes / string datasets ----
  Values values(const Source& src, const std::string& where) const {
    Handle type = checked(src.type(), H5Tclose, "read the type of " + where);
    Handle space = checked(src.space(), H5Sclose, "read the dataspace of " + where);
    Shape dims;
    uint64_t n = extent(space.id(), dims, where);
    if (n > kMaxAttrElements) invalid(where + " has an implausible " + std::to_string(n) + " elements");
    Values v;
    v.rank = static_cast<int>(dims.size());
    H5T_class_t cls = H5Tget_class(type.id());
    if (n == 0 && (cls == H5T_INTEGER || cls == H5T_ENUM || cls == H5T_FLOAT || cls == H5T_STRING)) {
      // An empty list: nothing to read (HDF5 refuses a null buffer).
      v.kind = cls == H5T_FLOAT ? Values::Float : cls == H5T_STRING ? Values::String : Values::Int;
      return v;
    }
    if (cls == H5T_INTEGER) {
      v.kind = Values::Int;
      v.ints.resize(n);
      if (H5Tget_sign(type.id()) == H5T_SGN_NONE && H5Tget_size(type.id()) >= 8) {
        // HDF5 would clamp values beyond int64 to its maximum without a word: refuse them.
        std::vector<uint64_t> u(n);
        check(src.read(H5T_NATIVE_UINT64, u.data()), "read " + where);
        for (uint64_t i = 0; i < n; ++i) {
          if (u[i] > static_cast<uint64_t>(INT64_MAX))
            invalid(where + " holds " + std::to_string(u[i]) + ", beyond the int64 range dltool reads");
          v.ints[i] = static_cast<int64_t>(u[i]);
        }
        return v;
      }
      check(src.read(H5T_NATIVE_INT64, v.ints.data()), "read " + where);
    } else if (cls == H5T_ENUM) {
      // h5py's bool (and other integer enums): read the raw base integers.
      size_t sz = H5Tget_size(type.id());
      Handle super = checked(H5Tget_super(type.id()), H5Tclose, "read the type of " + where);
      if (sz < 1 || sz > 8 || H5Tget_class(super.id()) != H5T_INTEGER) invalid(where + " has an unsupported enum type");
      Handle mt = checked(H5Tget_native_type(type.id(), H5T_DIR_ASCEND), H5Tclose, "read the type of " + where);
      std::vector<unsigned char> raw(n * sz);
      check(src.read(mt.id(), raw.data()), "read " + where);
      bool is_signed = H5Tget_sign(super.id()) != H5T_SGN_NONE;
      v.kind = Values::Int;
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t u = 0;
        std::memcpy(&u, raw.data() + i * sz, sz);  // little-endian host
        if (is_signed && sz < 8 && (u >> (sz * 8 - 1)) & 1) u |= ~uint64_t{0} << (sz * 8);
        v.ints.push_back(static_cast<int64_t>(u));
      }
    } else if (cls == H5T_FLOAT) {
      v.kind = Values::Float;
      v.floats.resize(n);
      check(src.read(H5T_NATIVE_DOUBLE, v.floats.data()), "read " + where);
    } else if (cls == H5T_STRING) {
      v.kind = Values::String;
      H5T_cset_t cset = H5Tget_cset(type.id());
      Handle mt = checked(H5Tcopy(H5T_C_S1), H5Tclose, "read " + where);
      if (H5Tis_variable_str(type.id()) > 0) {
        if (!src.is_attr) check_string_lengths(src.id, n, where);
        check(H5Tset_size(mt.id(), H5T_VARIABLE), "read " + where);
        check(H5Tset_cset(mt.id(), cset), "read " + where);
        std::vector<char*> ptrs(n, nullptr);
        check(src.read(mt.id(), ptrs.data()), "read " + where);
        for (char* p : ptrs) v.strs.emplace_back(p ? p : "");
        H5Dvlen_reclaim(mt.id(), space.id(), H5P_DEFAULT, ptrs.data());
      } else {
        size_t sz = H5Tget_size(type.id());
        if (sz == 0 || sz > (uint64_t{1} << 30) || n * sz > (uint64_t{1} << 31))
          invalid(where + " has an implausible string size");
        check(H5Tset_size(mt.id(), sz), "read " + where);
        check(H5Tset_cset(mt.id(), cset), "read " + where);
        H5T_str_t pad = H5Tget_strpad(type.id());
        check(H5Tset_strpad(mt.id(), pad == H5T_STR_NULLTERM ? H5T_STR_NULLPAD : pad), "read " + where);
        std::vector<char> buf(n * sz);
        check(src.read(mt.id(), buf.data()), "read " + where);
        for (uint64_t i = 0; i < n; ++i) {
          const char* p = buf.data() + i * sz;
          std::string s(p, strnlen(p, sz));
          if (pad == H5T_STR_SPACEPAD) s.erase(s.find_last_not_of(' ') + 1);
          v.strs.push_back(std::move(s));
        }
      }
    } else {
      invalid(where + " has unsupported type " + h5::describe_type(type.id()) +
              " (expected a number or a string)");
    }
    return v;
  }

  // HDF5 1.10 converts a variable-length string by first allocating (and filling) a buffer of
  // the length the file stores for it, and only then reading the string from the file's heap: a
  // corrupt length (up to 4 GiB per string) costs that much memory before the read fails (found
  // by fuzz_checkpoint: tests/fuzz/checkpoint/vlen_string_length). A contiguous dataset's
  // elements are (uint32 length, heap id) records at a known place in the file: check every
  // length against the file size first. (A compact dataset lives in the object header, at most
  // 64 KiB, and is left to HDF5; attributes too.)
  void check_string_lengths(hid_t dset, uint64_t n, const std::string& where) const {
    Handle dcpl = checked(H5Dget_create_plist(dset), H5Pclose, "read the layout of " + where);
    if (H5Pget_layout(dcpl.id()) != H5D_CONTIGUOUS) return;
    const haddr_t off = H5Dget_offset(dset);
    const hsize_t stored = H5Dget_storage_size(dset);
    if (off == HADDR_UNDEF || stored == 0) return;  // never written: HDF5 reads the fill value
    if (off > file_size_ || stored > file_size_ - off || stored % n != 0 || stored / n < 4)
      invalid(where + ": its variable-length strings (bytes " + std::to_string(off) + "..+" + std::to_string(stored) +
              ") do not fit the file (" + std::to_string(file_size_) + " bytes): the file is truncated or corrupt");
    std::string raw(stored, '\0');
    std::FILE* f = std::fopen(path_.c_str(), "rb");
    if (!f) invalid("cannot reopen the file to check " + where + ": " + std::strerror(errno));
    const bool ok = fseeko(f, static_cast<off_t>(off), SEEK_SET) == 0 && std::fread(raw.data(), 1, stored, f) == stored;
    std::fclose(f);
    if (!ok) invalid(where + ": cannot read its variable-length strings: the file is truncated or corrupt");
    const uint64_t record = stored / n;
    for (uint64_t i = 0; i < n; ++i) {
      const auto* b = reinterpret_cast<const unsigned char*>(raw.data() + i * record);
      const uint64_t len = uint64_t{b[0]} | uint64_t{b[1]} << 8 | uint64_t{b[2]} << 16 | uint64_t{b[3]} << 24;
      if (len > file_size_)
        invalid(where + ": string " + std::to_string(i) + " claims " + std::to_string(len) +
                " bytes, more than the whole file (" + std::to_string(file_size_) + " bytes): the file is corrupt");
    }
  }

  Values attr(hid_t obj, const std::string& name, const std::string& where) const {
    std::string w = "attribute '" + name + "' of " + where;
    Handle a = checked(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose, "open " + w);
    return values(Source{a.id(), true}, w);
  }

  // A single value: a scalar dataspace, or a 1-d one with one element (h5py users write both).
  AttrScalar scalar(const Values& v, const std::string& what) const {
    if (v.size() != 1 || v.rank > 1) invalid(what + " should hold one value, found " + std::to_string(v.size()));
    if (v.kind == Values::Int) return v.ints[0];
    if (v.kind == Values::Float) return v.floats[0];
    return v.strs[0];
  }
  std::string str_attr(hid_t obj, const std::string& name, const std::string& where) const {
    std::string what = "attribute '" + name + "' of " + where;
    AttrScalar s = scalar(attr(obj, name, where), what);
    if (!std::holds_alternative<std::string>(s)) invalid(what + " should be a string");
    return std::get<std::string>(s);
  }
  double num_attr(hid_t obj, const std::string& name, const std::string& where) const {
    std::string what = "attribute '" + name + "' of " + where;
    AttrScalar s = scalar(attr(obj, name, where), what);
    if (auto* i = std::get_if<int64_t>(&s)) return static_cast<double>(*i);
    if (auto* d = std::get_if<double>(&s)) return *d;
    invalid(what + " should be a number, found a string");
  }
  int64_t int_attr(hid_t obj, const std::string& name, const std::string& where) const {
    std::string what = "attribute '" + name + "' of " + where;
    AttrScalar s = scalar(attr(obj, name, where), what);
    if (auto* i = std::get_if<int64_t>(&s)) return *i;
    if (auto* d = std::get_if<double>(&s))
      if (*d == static_cast<double>(static_cast<int64_t>(*d))) return static_cast<int64_t>(*d);
    invalid(what + " should be an integer");
  }

  // ---- tensors ----
  Tensor tensor(hid_t dset, const std::string& where) const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  uint64_t file_size_;
};

// The engine dtype for a file type and the memory type to read it with (HDF5 converts byte
// order and integer widths). Returns false for types we do not read.
bool choose_dtype(hid_t ftype, DType& dt, Handle& mtype) {
  H5T_class_t cls = H5Tget_class(ftype);
  size_t size = H5Tget_size(ftype);
  auto predefined = [&](hid_t t) { mtype = Handle(t, nullptr); };  // library constants: never closed
  if (cls == H5T_FLOAT) {
    if (size == 4) { dt = DType::F32; predefined(H5T_NATIVE_FLOAT); return true; }
    if (size == 8) { dt = DType::F64; predefined(H5T_NATIVE_DOUBLE); return true; }
    if (size == 2) {
      // IEEE binary16 (numpy float16) or bfloat16 (HDF5 2.0's H5T_FLOAT_BFLOAT16LE layout);
      // other 2-byte float layouts are refused.
      for (auto [half, make] : {std::pair{DType::F16, &h5::f16_le_type}, std::pair{DType::BF16, &h5::bf16_le_type}}) {
        Handle t(make(), H5Tclose);
        if (t && h5::same_float_layout(ftype, t.id())) {
          dt = half;
          mtype = std::move(t);
          return true;
        }
      }
    }
    return false;
  }
  if (cls == H5T_INTEGER) {
    bool is_signed = H5Tget_sign(ftype) != H5T_SGN_NONE;
    if (size == 1 && !is_signed) { dt = DType::U8; predefined(H5T_NATIVE_UINT8); return true; }
    if (size > 8 || (size == 8 && !is_signed)) return false;  // uint64 does not fit int64
    dt = DType::I64;  // int8/16/32/64, uint16/32: widened by HDF5
    predefined(H5T_NATIVE_INT64);
    return true;
  }
  if (cls == H5T_ENUM && size == 1 && H5Tget_nmembers(ftype) == 2) {
    // h5py's bool: {FALSE = 0, TRUE = 1}.
    int8_t f = -1, t = -1;
    char* n0 = H5Tget_member_name(ftype, 0);
    char* n1 = H5Tget_member_name(ftype, 1);
    bool names_ok = n0 && n1 && std::strcmp(n0, "FALSE") == 0 && std::strcmp(n1, "TRUE") == 0;
    H5free_memory(n0);
    H5free_memory(n1);
    if (!names_ok || H5Tget_member_value(ftype, 0, &f) < 0 || H5Tget_member_value(ftype, 1, &t) < 0 || f != 0 ||
        t != 1)
      return false;
    dt = DType::Bool;
    mtype = Handle(H5Tget_native_type(ftype, H5T_DIR_ASCEND), H5Tclose);
    return static_cast<bool>(mtype);
  }
  return false;
}

Tensor Reader::tensor(hid_t dset, const std::string& where) const {
  Handle ftype = checked(H5Dget_type(dset), H5Tclose, "read the type of " + where);
  DType dt{};
  Handle mtype;
  if (!choose_dtype(ftype.id(), dt, mtype)) {
    H5Eclear2(H5E_DEFAULT);
    invalid(where + " has unsupported dtype " + h5::describe_type(ftype.id()) +
            " (supported: float16/32/64, bfloat16, int8/16/32/64, uint8/16/32, bool)");
  }
  Handle space = checked(H5Dget_space(dset), H5Sclose, "read the dataspace of " + where);
  Shape dims;
  uint64_t n = extent(space.id(), dims, where);
  uint64_t fsize = H5Tget_size(ftype.id());
  if (n > kMaxObjectBytes / std::max<uint64_t>(fsize, 8)) invalid(where + " has an implausible shape " + shape_str(dims));
  uint64_t want = n * fsize;

  // The stored size must match the dataspace (contiguous and compact layouts store raw bytes;
  // chunked ones may be compressed and are checked by HDF5 chunk by chunk).
  Handle dcpl = checked(H5Dget_create_plist(dset), H5Pclose, "read the layout of " + where);
  H5D_layout_t layout = H5Pget_layout(dcpl.id());
  if (layout == H5D_CONTIGUOUS || layout == H5D_COMPACT) {
    hsize_t stored = H5Dget_storage_size(dset);
    // Contiguous data never written reads as the fill value (stored 0), but compact data lives
    // in the object header and must be all there: HDF5 1.10 copies from a null buffer when a
    // corrupt header says 0 bytes (found by fuzz_checkpoint: tests/fuzz/checkpoint/compact_size_0).
    if ((stored != 0 || layout == H5D_COMPACT) && stored != want)
      invalid(where + ": stored size " + std::to_string(stored) + " bytes disagrees with its dataspace " +
              shape_str(dims) + " of " + h5::describe_type(ftype.id()) + " (" + std::to_string(want) +
              " bytes): the file is corrupt");
    if (layout == H5D_CONTIGUOUS && stored != 0) {
      haddr_t off = H5Dget_offset(dset);
      if (off != HADDR_UNDEF && (off > file_size_ || stored > file_size_ - off))
        invalid(where + ": its data (bytes " + std::to_string(off) + "..+" + std::to_string(stored) +
                ") lies past the end of the file (" + std::to_string(file_size_) +
                " bytes): the file is truncated or corrupt");
    }
  } else if (layout != H5D_CHUNKED) {
    invalid(where + " has an unsupported storage layout (virtual or unknown)");
  }
  H5Eclear2(H5E_DEFAULT);

  Tensor t = empty(dims, dt);
  if (n > 0) check(H5Dread(dset, mtype.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()), "read " + where);
  if (dt == DType::Bool) {
    auto* p = static_cast<uint8_t*>(t.raw_data());
    for (uint64_t i = 0; i < n; ++i) p[i] = p[i] != 0;  // any byte but 0/1 would be UB as bool
  }
  return t;
}

// ---------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------
// /model, or /ema (the same layout).
StateDict read_model(const Reader& r, hid_t file, const std::string& name = "model") {
  Handle g = r.open(file, name, H5I_GROUP, "/" + name);
  StateDict out;
  for (const auto& l : r.links(g.id(), "/" + name)) {
    std::string where = "/" + name + "/" + l.name;
    Handle obj = r.open(g.id(), l.name, H5I_DATASET, where);
    out.emplace_back(l.name, r.tensor(obj.id(), where));
  }
  return out;
}

OptimizerState read_optimizer(const Reader& r, hid_t file) {
  OptimizerState o;
  Handle g = r.open(file, "optimizer", H5I_GROUP, "/optimizer");
  if (!r.has_attr(g.id(), "type", "/optimizer")) r.invalid("/optimizer has no attribute 'type'");
  for (const auto& a : r.attrs(g.id(), "/optimizer")) {
    if (a == "type") o.type = r.str_attr(g.id(), a, "/optimizer");
    else o.defaults[a] = r.num_attr(g.id(), a, "/optimizer");
  }
  if (r.exists(g.id(), "param_groups", "/optimizer/param_groups")) {
    Handle pgs = r.open(g.id(), "param_groups", H5I_GROUP, "/optimizer/param_groups");
    std::vector<std::string> names;
    for (const auto& l : r.links(pgs.id(), "/optimizer/param_groups")) names.push_back(l.name);
    // Groups are named 0..N-1; read them in numeric order whatever the link order.
    for (size_t i = 0; i < names.size(); ++i) {
      std::string name = std::to_string(i), where = "/optimizer/param_groups/" + name;
      if (std::find(names.begin(), names.end(), name) == names.end())
        r.invalid("/optimizer/param_groups should hold groups named 0.." + std::to_string(names.size() - 1) +
                  ", but '" + name + "' is missing");
      Handle pg = r.open(pgs.id(), name, H5I_GROUP, where);
      OptimizerGroupState gs;
      for (const auto& a : r.attrs(pg.id(), where)) {
        if (a == "params") {
          Values v = r.attr(pg.id(), a, where);
          if (v.kind != Values::String || v.rank > 1)
            r.invalid("attribute 'params' of " + where + " should be a list of strings");
          gs.names = v.strs;
        } else {
          gs.options[a] = r.num_attr(pg.id(), a, where);
        }
      }
      o.param_groups.push_back(std::move(gs));
    }
  }
  if (r.exists(g.id(), "state", "/optimizer/state")) {
    Handle st = r.open(g.id(), "state", H5I_GROUP, "/optimizer/state");
    for (const auto& l : r.links(st.id(), "/optimizer/state")) {
      std::string where = "/optimizer/state/" + l.name;
      Handle kg = r.open(st.id(), l.name, H5I_GROUP, where);
      OptimizerParamState ps;
      if (r.has_attr(kg.id(), "step", where)) ps.step = r.int_attr(kg.id(), "step", where);
      for (const auto& s : r.links(kg.id(), where)) {
        Handle d = r.open(kg.id(), s.name, H5I_DATASET, where + "/" + s.name);
        ps.slots[s.name] = r.tensor(d.id(), where + "/" + s.name);
      }
      o.state[l.name] = std::move(ps);
    }
  }
  return o;
}

SchedulerState read_scheduler(const Reader& r, hid_t file) {
  SchedulerState s;
  Handle g = r.open(file, "scheduler", H5I_GROUP, "/scheduler");
  if (!r.has_attr(g.id(), "type", "/scheduler")) r.invalid("/scheduler has no attribute 'type'");
  for (const auto& a : r.attrs(g.id(), "/scheduler")) {
    if (a == "type") {
      s.type = r.str_attr(g.id(), a, "/scheduler");
      continue;
    }
    Values v = r.attr(g.id(), a, "/scheduler");
    std::string what = "attribute '" + a + "' of /scheduler";
    if (v.kind == Values::String) {  // a scheduler's string state (mode, anneal_strategy, ...)
      if (v.rank != 0 || v.strs.size() != 1) r.invalid(what + " should be a single string");
      s.strings[a] = v.strs[0];
      continue;
    }
    if (v.rank == 0) {
      s.scalars[a] = v.kind == Values::Int ? static_cast<double>(v.ints[0]) : v.floats[0];
    } else if (v.rank == 1) {
      auto& list = s.lists[a];
      if (v.kind == Values::Int) for (int64_t x : v.ints) list.push_back(static_cast<double>(x));
      else list = v.floats;
    } else {
      r.invalid(what + " should be a scalar or a 1-d list");
    }
  }
  return s;
}

std::map<std::string, AttrScalar> read_trainer(const Reader& r, hid_t file) {
  std::map<std::string, AttrScalar> out;
  Handle g = r.open(file, "trainer", H5I_GROUP, "/trainer");
  for (const auto& a : r.attrs(g.id(), "/trainer"))
    out[a] = r.scalar(r.attr(g.id(), a, "/trainer"), "attribute '" + a + "' of /trainer");
  return out;
}

std::map<std::string, std::vector<uint8_t>> read_rng(const Reader& r, hid_t file) {
  std::map<std::string, std::vector<uint8_t>> out;
  Handle g = r.open(file, "rng", H5I_GROUP, "/rng");
  for (const auto& l : r.links(g.id(), "/rng")) {
    std::string where = "/rng/" + l.name;
    Handle d = r.open(g.id(), l.name, H5I_DATASET, where);
    Tensor t = r.tensor(d.id(), where);
    if (t.dtype() != DType::U8) r.invalid(where + " should be uint8 bytes, found " + dtype_name(t.dtype()));
    const auto* p = static_cast<const uint8_t*>(t.raw_data());
    out[l.name].assign(p, p + t.numel());
  }
  return out;
}

// ---------------------------------------------------------------------------
// Before HDF5 sees the file
// ---------------------------------------------------------------------------
[[noreturn]] void fail(const std::string& path, const std::string& msg) {
  throw CheckpointError(path, "cannot load checkpoint '" + path + "': " + msg);
}

// Checks what the OS can tell (exists, regular, readable, non-empty, HDF5 signature) and
// returns the file size.
// HDF5 1.10 allocates a group's local heap with the size the file states and, when malloc
// refuses (a corrupt size near 2^61), copies into the null buffer anyway (SIGSEGV in
// H5C_protect; found by fuzz_checkpoint: tests/fuzz/checkpoint/local_heap_size,
// local_heap_segv). So before HDF5 opens the file, every local heap prefix in it ("HEAP",
// version 0, 3 reserved zero bytes, then the data segment's size in the superblock's "size of
// lengths") must claim no more bytes than the file has. The 8-byte pattern cannot occur by
// chance in practice (raw tensor data would need the float 1.3e10 followed by 0.0f exactly there).
// Returns an error message, or "" when the file passes.
std::string check_local_heaps(int fd, uint64_t size, uint64_t superblock) {
  unsigned char sb[16] = {};
  if (::pread(fd, sb, sizeof sb, static_cast<off_t>(superblock)) != static_cast<ssize_t>(sizeof sb)) return "";
  const int version = sb[8];
  const int lengths = version <= 1 ? sb[14] : sb[10];
  if (lengths != 2 && lengths != 4 && lengths != 8) return "";  // HDF5 refuses the superblock itself
  static const unsigned char kHeap[8] = {'H', 'E', 'A', 'P', 0, 0, 0, 0};
  constexpr size_t kBuf = size_t{1} << 20, kOverlap = 16;  // pattern + the size field
  std::vector<unsigned char> buf(kBuf + kOverlap);
  uint64_t pos = 0;  // file offset of buf[0]
  size_t have = 0;
  for (;;) {
    ssize_t got = ::pread(fd, buf.data() + have, kBuf, static_cast<off_t>(pos + have));
    if (got < 0) return h5::errno_text(errno);
    have += static_cast<size_t>(got);
    const bool last = got == 0 || pos + have >= size;
    const size_t scan_end = last ? have : have - std::min(have, kOverlap);
    for (size_t i = 0; i + sizeof kHeap <= scan_end; ++i) {
      const void* hit = std::memchr(buf.data() + i, 'H', scan_end - i);
      if (!hit) break;
      i = static_cast<size_t>(static_cast<const unsigned char*>(hit) - buf.data());
      if (i + 8 + static_cast<size_t>(lengths) > have || std::memcmp(buf.data() + i, kHeap, sizeof kHeap) != 0) continue;
      uint64_t claimed = 0;
      for (int b = lengths - 1; b >= 0; --b) claimed = claimed << 8 | buf[i + 8 + static_cast<size_t>(b)];
      if (claimed > size)
        return "truncated or corrupt HDF5 file: the local heap at byte " + std::to_string(pos + i) + " claims " +
               std::to_string(claimed) + " bytes, more than the whole file (" + std::to_string(size) + " bytes)";
    }
    if (last) return "";
    std::memmove(buf.data(), buf.data() + scan_end, have - scan_end);
    pos += scan_end;
    have -= scan_end;
  }
}

uint64_t precheck(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) fail(path, "no such file");
    fail(path, h5::errno_text(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail(path, h5::errno_text(e));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail(path, "is a directory, not a checkpoint file");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    fail(path, "the file is empty (0 bytes)");
  }
  char head[ckpt_detail::kUserBlockBytes] = {};
  ssize_t got = ::pread(fd, head, sizeof head, 0);
  if (got < 0) {
    int e = errno;
    ::close(fd);
    fail(path, h5::errno_text(e));
  }
  static const char kSig[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};

  // Our own files: verify size and checksum before HDF5 reads anything.
  ckpt_detail::UserBlock ub = ckpt_detail::parse_user_block(head, static_cast<size_t>(got));
  if (ub.present) {
    auto bail = [&](const std::string& msg) {
      ::close(fd);
      fail(path, msg);
    };
    if (!ub.valid) bail("truncated or corrupt file: its dltool header (the first 512 bytes) is damaged");
    if (ub.version > ckpt_detail::kUserBlockVersion)
      bail("written by a newer dltool (header version " + std::to_string(ub.version) + "): upgrade dltool");
    if (ub.version < 1)
      bail("truncated or corrupt file: its dltool header (the first 512 bytes) has version " +
           std::to_string(ub.version) + ", but dltool writes versions 1.." + std::to_string(ckpt_detail::kUserBlockVersion));
    // An edit with h5py leaves our header in place, so say how to accept one deliberately.
    const std::string edited = "; it was damaged, or modified by another tool after dltool wrote it (to accept a "
                               "deliberate edit, blank the 512-byte dltool header: dd if=/dev/zero of=FILE bs=512 "
                               "count=1 conv=notrunc)";
    const uint64_t expect = ckpt_detail::kUserBlockBytes + ub.payload_bytes;
    if (size != expect)
      bail("truncated or corrupt file: it has " + std::to_string(size) + " bytes, but dltool wrote " +
           std::to_string(expect) + (size > expect ? edited : ""));
    uint32_t crc = 0;
    uint64_t n = 0;
    if (int e = ckpt_detail::crc_of_file(fd, ckpt_detail::kUserBlockBytes, crc, n)) bail(h5::errno_text(e));
    if (n != ub.payload_bytes) bail("truncated or corrupt file: it changed while being read");
    if (crc != ub.payload_crc) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "checksum mismatch (CRC-32C 0x%08x, header says 0x%08x)", crc, ub.payload_crc);
      bail(std::string("truncated or corrupt file: ") + msg + edited);
    }
    char sig[8] = {};
    if (::pread(fd, sig, 8, static_cast<off_t>(ckpt_detail::kUserBlockBytes)) != 8 || std::memcmp(sig, kSig, 8) != 0)
      bail("truncated or corrupt file: no HDF5 superblock after the dltool header");
    if (std::string heaps = check_local_heaps(fd, size, ckpt_detail::kUserBlockBytes); !heaps.empty()) bail(heaps);
    ::close(fd);
    return size;
  }
  // A foreign HDF5 file: its superblock at 0 or after a user block (512, 1024, 2048, ...).
  uint64_t superblock = UINT64_MAX;
  for (uint64_t at = 0; at + 8 <= size && superblock == UINT64_MAX; at = at == 0 ? 512 : at * 2) {
    char sig[8] = {};
    if (::pread(fd, sig, 8, static_cast<off_t>(at)) == 8 && std::memcmp(sig, kSig, 8) == 0) superblock = at;
  }
  if (superblock != UINT64_MAX) {
    std::string heaps = check_local_heaps(fd, size, superblock);
    ::close(fd);
    if (!heaps.empty()) fail(path, heaps);
    return size;
  }
  ::close(fd);
  std::string hint;
  if (got >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0)
    hint = "; it looks like a zip archive, e.g. a PyTorch torch.save() file: write the state_dict to HDF5 "
           "with h5py instead (one dataset per key under /model)";
  else if (got >= 1 && static_cast<unsigned char>(head[0]) == 0x80)
    hint = "; it looks like a Python pickle (a legacy torch.save() file?): write the state_dict to HDF5 "
           "with h5py instead (one dataset per key under /model)";
  fail(path, "not an HDF5 file (no HDF5 signature" + std::string(size < 8 ? ", only " + std::to_string(size) + " bytes" : "") +
                 ")" + hint);
}

// HDF5 1.10 can loop forever on a crafted file: its global heap is not checksummed
// (tests/fuzz/hdf5_known/), and an HDF5 call cannot be cancelled. A read still running after a
// generous limit (60 s + 20 MB/s of file, or DLTOOL_CHECKPOINT_READ_TIMEOUT seconds) ends the
// process with exit 1 and an error naming the file, instead of hanging a batch job forever.
class ReadWatchdog {
 public:
  ReadWatchdog(const std::string& path, uint64_t bytes) {
    const double limit_s = limit_seconds(bytes);
    // The thread takes no signals: the stop handlers run on the main thread's alternate stack.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    thread_ = std::thread([this, path, limit_s] {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, std::chrono::duration<double>(limit_s), [this] { return done_; })) return;
      std::fprintf(stderr,
                   "error: cannot load checkpoint '%s': reading it did not finish in %.0f s, so the file is "
                   "corrupt in a way the HDF5 library loops on (if it is only very large on a slow disk, "
                   "set DLTOOL_CHECKPOINT_READ_TIMEOUT=SECONDS)\n",
                   path.c_str(), limit_s);
      std::fflush(stderr);
      std::_Exit(1);
    });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  ~ReadWatchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  ReadWatchdog(const ReadWatchdog&) = delete;
  ReadWatchdog& operator=(const ReadWatchdog&) = delete;

 private:
  static double limit_seconds(uint64_t bytes) {
    if (const char* env = std::getenv("DLTOOL_CHECKPOINT_READ_TIMEOUT")) {
      char* end = nullptr;
      double v = std::strtod(env, &end);
      if (end != env && *end == '\0' && v > 0 && std::isfinite(v)) return v;
      std::fprintf(stderr, "warning: DLTOOL_CHECKPOINT_READ_TIMEOUT='%s' is not a positive number of "
                           "seconds; using the default\n", env);
    }
    return 60.0 + static_cast<double>(bytes) / 20e6;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

Checkpoint load_checkpoint(const std::string& path, bool weights_only) {
  uint64_t size = precheck(path);
  ReadWatchdog watchdog(path, size);
  h5::QuietErrors quiet;
  Reader r(path, size);
  Checkpoint c;
  try {
    Handle fapl = r.checked(h5::file_access_plist(false), H5Pclose, "create property lists");
    hid_t fid = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.id());
    if (fid < 0) {
      h5::Error e = h5::last_error();
      if (e.err_no != 0 && e.err_no != EINVAL) fail(path, h5::errno_text(e.err_no) + " (HDF5: " + e.text + ")");
      fail(path, "truncated or corrupt HDF5 file (HDF5: " + e.plain() + ")");
    }
    Handle file(fid, H5Fclose);
    Handle root = r.checked(H5Gopen2(file.id(), "/", H5P_DEFAULT), H5Gclose, "open the root group");

    bool has_model = r.exists(file.id(), "model", "/model");
    if (!r.has_attr(root.id(), "format", "/")) {
      if (!has_model) {
        std::string msg = "not a dltool checkpoint: no root attribute 'format' (weights-only files need at least /model)";
        H5G_info_t info{};
        r.check(H5Gget_info(root.id(), &info), "read the root group");
        const hsize_t n_root = info.nlinks;
        if (n_root > 0)
          msg += "; the file holds " + std::to_string(n_root) + " other object(s) at its root: put the state_dict under /model";
        r.invalid(msg);
      }
      if (!weights_only)
        r.invalid("not a dltool checkpoint: no root attribute 'format'. It has /model, so it looks like a "
                  "weights-only file (e.g. a PyTorch state_dict written with h5py): load it as weights only "
                  "(--init-from)");
      c.format_version = 0;  // foreign weights-only file
    } else {
      std::string format = r.str_attr(root.id(), "format", "/");
      if (format != kCheckpointFormat)
        r.invalid("not a dltool checkpoint: root attribute format = '" + format + "' (expected '" +
                  kCheckpointFormat + "')");
      if (!r.has_attr(root.id(), "format_version", "/")) r.invalid("no root attribute 'format_version'");
      c.format_version = r.int_attr(root.id(), "format_version", "/");
      if (r.has_attr(root.id(), "dltool_version", "/")) c.dltool_version = r.str_attr(root.id(), "dltool_version", "/");
      if (r.has_attr(root.id(), "created_utc", "/")) c.created_utc = r.str_attr(root.id(), "created_utc", "/");
      if (c.format_version > kCheckpointFormatVersion)
        r.invalid("written by a newer dltool (format_version " + std::to_string(c.format_version) +
                  (c.dltool_version.empty() ? "" : ", dltool " + c.dltool_version) + "); this dltool reads format_version " +
                  std::to_string(kCheckpointFormatVersion) + ": upgrade dltool");
      if (c.format_version < 1) r.invalid("invalid format_version " + std::to_string(c.format_version));
      if (!has_model) r.invalid("no /model group");
    }

    if (r.exists(file.id(), "config", "/config")) {
      Handle d = r.open(file.id(), "config", H5I_DATASET, "/config");
      Values v = r.values(Source{d.id(), false}, "/config");
      if (v.kind != Values::String || v.size() != 1) r.invalid("/config should be a single string");
      c.config_yaml = v.strs[0];
    }
    c.model = read_model(r, file.id());
    if (r.exists(file.id(), "data", "/data")) {
      Handle g = r.open(file.id(), "data", H5I_GROUP, "/data");
      if (r.exists(g.id(), "classes", "/data/classes")) {
        Handle d = r.open(g.id(), "classes", H5I_DATASET, "/data/classes");
        Values v = r.values(Source{d.id(), false}, "/data/classes");
        if (v.size() > 0 && (v.kind != Values::String || v.rank != 1))
          r.invalid("/data/classes should be a 1-d list of strings");
        c.class_names = v.strs;
      }
    }
    if (!weights_only) {
      if (r.exists(file.id(), "ema", "/ema")) c.ema = read_model(r, file.id(), "ema");
      if (r.exists(file.id(), "optimizer", "/optimizer")) c.optimizer = read_optimizer(r, file.id());
      if (r.exists(file.id(), "scheduler", "/scheduler")) c.scheduler = read_scheduler(r, file.id());
      if (r.exists(file.id(), "trainer", "/trainer")) c.trainer = read_trainer(r, file.id());
      if (r.exists(file.id(), "rng", "/rng")) c.rng = read_rng(r, file.id());
    }
    r.check(file.close(), "close the file");
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::bad_alloc& e) {  // an OutOfMemoryError names the tensor
    fail(path, std::string("out of memory while reading (a corrupt file can claim huge sizes): ") + e.what());
  } catch (const std::exception& e) {
    fail(path, std::string("truncated or corrupt file: ") + e.what());
  }
  return c;
}

}  // namespace dl
