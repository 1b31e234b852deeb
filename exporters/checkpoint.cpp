// Checkpoint writer (save_checkpoint). The reader is exporters/checkpoint_load.cpp; the layout
// is documented in exporters/checkpoint.h.
#include "exporters/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <new>
#include <set>

#include "exporters/atomic_file.h"
#include "exporters/checkpoint_userblock.h"
#include "exporters/hdf5_util.h"

#ifndef DLTOOL_VERSION
#define DLTOOL_VERSION "unknown"
#endif

// Memory types below are the little-endian file types themselves (f16, bool enum).
static_assert(std::endian::native == std::endian::little, "checkpoint I/O assumes a little-endian host");

namespace dl {

CheckpointError::CheckpointError(const std::string& path, const std::string& message)
    : std::runtime_error(message.find(path) == std::string::npos ? path + ": " + message : message),
      path_(path) {}

namespace {

using h5::Handle;

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm g{};
  gmtime_r(&t, &g);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &g);
  return buf;
}

// ---------------------------------------------------------------------------
// Validation before anything touches the disk
// ---------------------------------------------------------------------------
struct Validator {
  const std::string& path;

  [[noreturn]] void fail(const std::string& msg) const {
    throw CheckpointError(path, "cannot save checkpoint '" + path + "': " + msg);
  }
  // An HDF5 link name: non-empty, no '/' (HDF5's path separator), not "." (the group itself).
  void link(const std::string& what, const std::string& name) const {
    if (name.empty()) fail("empty " + what + " name");
    if (name.find('/') != std::string::npos)
      fail(what + " '" + name + "' contains '/', which HDF5 uses as its path separator");
    if (name == ".") fail(what + " '.' is not a valid HDF5 name");
    if (name.find('\0') != std::string::npos) fail(what + " name contains a NUL byte");
  }
  void attr(const std::string& what, const std::string& name, const std::set<std::string>& reserved) const {
    if (name.empty()) fail("empty " + what + " name");
    if (name.find('\0') != std::string::npos) fail(what + " name contains a NUL byte");
    if (reserved.count(name)) fail(what + " '" + name + "' clashes with the reserved attribute of that name");
  }
  void tensor(const std::string& where, const Tensor& t) const {
    if (!t.defined()) fail(where + " is an undefined tensor");
  }
};

void validate(const std::string& path, const Checkpoint& c) {
  Validator v{path};
  auto state_dict_keys = [&](const StateDict& sd, const std::string& what) {
    std::set<std::string> seen;
    for (const auto& [key, t] : sd) {
      v.link(what + " key", key);
      if (!seen.insert(key).second) v.fail("duplicate " + what + " key '" + key + "'");
      v.tensor(what + " key '" + key + "'", t);
    }
  };
  state_dict_keys(c.model, "model");
  state_dict_keys(c.ema, "ema");
  if (c.optimizer) {
    const OptimizerState& o = *c.optimizer;
    for (const auto& [k, _] : o.defaults) v.attr("optimizer hyper-parameter", k, {"type"});
    for (const auto& g : o.param_groups)
      for (const auto& [k, _] : g.options) v.attr("param group hyper-parameter", k, {"params"});
    for (const auto& [key, ps] : o.state) {
      v.link("optimizer state key", key);
      for (const auto& [slot, t] : ps.slots) {
        v.link("optimizer slot", slot);
        v.tensor("optimizer state '" + key + "/" + slot + "'", t);
      }
    }
  }
  if (c.scheduler) {
    for (const auto& [k, _] : c.scheduler->scalars) v.attr("scheduler scalar", k, {"type"});
    for (const auto& [k, _] : c.scheduler->lists) {
      v.attr("scheduler list", k, {"type"});
      if (c.scheduler->scalars.count(k)) v.fail("scheduler key '" + k + "' is both a scalar and a list");
    }
    for (const auto& [k, _] : c.scheduler->strings) {
      v.attr("scheduler string", k, {"type"});
      if (c.scheduler->scalars.count(k) || c.scheduler->lists.count(k))
        v.fail("scheduler key '" + k + "' is both a string and a number");
    }
  }
  for (const auto& [k, _] : c.trainer) v.attr("trainer attribute", k, {});
  for (const auto& [k, _] : c.rng) v.link("rng stream", k);
  if (c.config_yaml.find('\0') != std::string::npos) v.fail("config text contains a NUL byte");
  for (const std::string& name : c.class_names)
    if (name.find('\0') != std::string::npos) v.fail("class name contains a NUL byte");
}

// ---------------------------------------------------------------------------
// HDF5 writing
// ---------------------------------------------------------------------------
class Writer {
 public:
  explicit Writer(const std::string& path) : path_(path) {
    lcpl_ = Handle(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    if (!lcpl_ || H5Pset_char_encoding(lcpl_.id(), H5T_CSET_UTF8) < 0) fail("creating property lists");
    str_type_ = Handle(h5::vlen_str_type(), H5Tclose);
    if (!str_type_) fail("creating the string type");
  }

  // Throws with the reason: a failed write to the file (the driver's errno: HDF5 never sees
  // it, see h5::write_access_plist), else this thread's HDF5 error stack.
  [[noreturn]] void fail(const std::string& doing) const {
    h5::Error e = h5::last_error();
    const std::string why = io_errno_ != 0 ? h5::errno_text(io_errno_) : e.plain();
    throw CheckpointError(path_, "cannot save checkpoint '" + path_ + "': " + why + " (while " + doing + ")");
  }
  // After every HDF5 call: its status, and whether a write to the file has failed meanwhile.
  void check(herr_t st, const std::string& doing) const {
    if (st < 0 || io_errno_ != 0) fail(doing);
  }
  Handle checked(hid_t id, Handle::Closer closer, const std::string& doing) const {
    Handle h(id, closer);  // owned from here, so a failure below still closes it
    check(id < 0 ? -1 : 0, doing);
    return h;
  }

  Handle group(hid_t loc, const std::string& name, const std::string& where, bool track_order = false) {
    Handle gcpl = checked(H5Pcreate(H5P_GROUP_CREATE), H5Pclose, "creating " + where);
    compact_attributes(gcpl.id(), where);
    if (track_order)
      check(H5Pset_link_creation_order(gcpl.id(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED),
            "creating " + where);
    return checked(H5Gcreate2(loc, name.c_str(), lcpl_.id(), gcpl.id(), H5P_DEFAULT), H5Gclose,
                   "creating " + where);
  }

  // Keeps every attribute of the object in its header (compact storage), never in HDF5's
  // "dense" attribute heap that the 1.8 format switches to beyond 8 attributes: HDF5 1.10's
  // object copy crashes on a variable-length string attribute in dense storage (h5copy of
  // /trainer segfaulted). `plist`: a group (or file) creation property list.
  void compact_attributes(hid_t plist, const std::string& where) const {
    check(H5Pset_attr_phase_change(plist, kMaxCompactAttributes, 0), "creating " + where);
  }
  static constexpr unsigned kMaxCompactAttributes = 65535;  // HDF5's limit

  // ---- attributes ----
  void attr_raw(hid_t obj, const std::string& name, hid_t ftype, hid_t mtype, const Shape* dims1,
                const void* data, const std::string& where) {
    std::string doing = "writing attribute '" + name + "' of " + where;
    Handle space;
    if (dims1) {
      hsize_t n = static_cast<hsize_t>((*dims1)[0]);
      space = checked(H5Screate_simple(1, &n, nullptr), H5Sclose, doing);
    } else {
      space = checked(H5Screate(H5S_SCALAR), H5Sclose, doing);
    }
    Handle a = checked(H5Acreate2(obj, name.c_str(), ftype, space.id(), H5P_DEFAULT, H5P_DEFAULT),
                       H5Aclose, doing);
    check(H5Awrite(a.id(), mtype, data), doing);
  }
  void attr(hid_t obj, const std::string& name, const std::string& value, const std::string& where) {
    const char* p = value.c_str();
    attr_raw(obj, name, str_type_.id(), str_type_.id(), nullptr, &p, where);
  }
  void attr(hid_t obj, const std::string& name, int64_t value, const std::string& where) {
    attr_raw(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, nullptr, &value, where);
  }
  void attr(hid_t obj, const std::string& name, double value, const std::string& where) {
    attr_raw(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, nullptr, &value, where);
  }
  void attr(hid_t obj, const std::string& name, const std::vector<double>& values, const std::string& where) {
    Shape n{static_cast<int64_t>(values.size())};
    static const double dummy = 0;  // HDF5 wants a non-null buffer even for 0 elements
    attr_raw(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &n, values.empty() ? &dummy : values.data(), where);
  }
  void attr(hid_t obj, const std::string& name, const std::vector<std::string>& values, const std::string& where) {
    std::vector<const char*> ptrs;
    for (const auto& v : values) ptrs.push_back(v.c_str());
    static const char* const dummy = "";
    Shape n{static_cast<int64_t>(values.size())};
    attr_raw(obj, name, str_type_.id(), str_type_.id(), &n, ptrs.empty() ? &dummy : ptrs.data(), where);
  }

  // ---- datasets ----
  void string_dataset(hid_t loc, const std::string& name, const std::string& value, const std::string& where) {
    std::string doing = "writing " + where;
    Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, doing);
    Handle d = checked(H5Dcreate2(loc, name.c_str(), str_type_.id(), space.id(), lcpl_.id(), H5P_DEFAULT,
                                  H5P_DEFAULT), H5Dclose, doing);
    const char* p = value.c_str();
    check(H5Dwrite(d.id(), str_type_.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p), doing);
  }

  void string_list_dataset(hid_t loc, const std::string& name, const std::vector<std::string>& values,
                           const std::string& where) {
    std::string doing = "writing " + where;
    std::vector<const char*> ptrs;
    for (const auto& v : values) ptrs.push_back(v.c_str());
    hsize_t n = ptrs.size();
    Handle space = checked(H5Screate_simple(1, &n, nullptr), H5Sclose, doing);
    Handle d = checked(H5Dcreate2(loc, name.c_str(), str_type_.id(), space.id(), lcpl_.id(), H5P_DEFAULT,
                                  H5P_DEFAULT), H5Dclose, doing);
    if (n > 0) check(H5Dwrite(d.id(), str_type_.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), doing);
  }

  void tensor(hid_t loc, const std::string& name, const Tensor& t, const std::string& where) {
    std::string doing = "writing " + where;
    // One tensor at a time on the host: a CUDA model never needs two host copies of itself.
    Tensor c = t.detach().cpu().contiguous();
    // bfloat16 is the top half of a float32: widening is exact (and h5py has no bfloat16).
    if (c.dtype() == DType::BF16) c = c.to(DType::F32);
    const void* data = c.raw_data();
    hid_t ftype = -1, mtype = -1;
    Handle owned;
    switch (c.dtype()) {
      case DType::F32: ftype = H5T_IEEE_F32LE; mtype = H5T_NATIVE_FLOAT; break;
      case DType::F64: ftype = H5T_IEEE_F64LE; mtype = H5T_NATIVE_DOUBLE; break;
      case DType::I64: ftype = H5T_STD_I64LE; mtype = H5T_NATIVE_INT64; break;
      case DType::U8: ftype = H5T_STD_U8LE; mtype = H5T_NATIVE_UINT8; break;
      case DType::Bool:
        owned = checked(h5::h5py_bool_type(), H5Tclose, doing);
        ftype = mtype = owned.id();
        break;
      case DType::F16:
        owned = checked(h5::f16_le_type(), H5Tclose, doing);
        ftype = mtype = owned.id();
        break;
      case DType::BF16: break;  // widened above
    }
    Handle space;
    if (c.dim() == 0) {
      space = checked(H5Screate(H5S_SCALAR), H5Sclose, doing);
    } else {
      std::vector<hsize_t> dims(c.shape().begin(), c.shape().end());
      space = checked(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose, doing);
    }
    Handle d = checked(H5Dcreate2(loc, name.c_str(), ftype, space.id(), lcpl_.id(), H5P_DEFAULT, H5P_DEFAULT),
                       H5Dclose, doing);
    if (c.numel() > 0) check(H5Dwrite(d.id(), mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), doing);
  }

  // The whole file. Everything is closed (and so written) when this returns.
  void write(const std::string& file_path, const Checkpoint& c) {
    Handle fapl = checked(h5::write_access_plist(&io_errno_), H5Pclose, "creating property lists");
    Handle fcpl = checked(H5Pcreate(H5P_FILE_CREATE), H5Pclose, "creating property lists");
    check(H5Pset_userblock(fcpl.id(), ckpt_detail::kUserBlockBytes), "creating property lists");
    compact_attributes(fcpl.id(), "/");
    Handle file = checked(H5Fcreate(file_path.c_str(), H5F_ACC_TRUNC, fcpl.id(), fapl.id()), H5Fclose,
                          "creating '" + file_path + "'");
    {
      Handle root = checked(H5Gopen2(file.id(), "/", H5P_DEFAULT), H5Gclose, "opening /");
      attr(root.id(), "format", std::string(kCheckpointFormat), "/");
      attr(root.id(), "format_version", kCheckpointFormatVersion, "/");
      attr(root.id(), "dltool_version", std::string(DLTOOL_VERSION), "/");
      attr(root.id(), "created_utc", utc_now(), "/");
      if (!c.config_yaml.empty()) string_dataset(file.id(), "config", c.config_yaml, "/config");

      Handle model = group(file.id(), "model", "/model", /*track_order=*/true);
      for (const auto& [key, t] : c.model) tensor(model.id(), key, t, "/model/" + key);

      if (!c.ema.empty()) {
        Handle ema = group(file.id(), "ema", "/ema", /*track_order=*/true);
        for (const auto& [key, t] : c.ema) tensor(ema.id(), key, t, "/ema/" + key);
      }
      if (c.optimizer) write_optimizer(file.id(), *c.optimizer);
      if (!c.class_names.empty()) {
        Handle g = group(file.id(), "data", "/data");
        string_list_dataset(g.id(), "classes", c.class_names, "/data/classes");
      }
      if (c.scheduler) {
        Handle g = group(file.id(), "scheduler", "/scheduler");
        attr(g.id(), "type", c.scheduler->type, "/scheduler");
        for (const auto& [k, v] : c.scheduler->scalars) attr(g.id(), k, v, "/scheduler");
        for (const auto& [k, v] : c.scheduler->lists) attr(g.id(), k, v, "/scheduler");
        for (const auto& [k, v] : c.scheduler->strings) attr(g.id(), k, v, "/scheduler");
      }
      if (!c.trainer.empty()) {
        Handle g = group(file.id(), "trainer", "/trainer");
        for (const auto& [k, v] : c.trainer) {
          const std::string& key = k;  // clang 14 (the fuzz build) cannot capture a structured binding
          std::visit([&](const auto& x) { attr(g.id(), key, x, "/trainer"); }, v);
        }
      }
      if (!c.rng.empty()) {
        Handle g = group(file.id(), "rng", "/rng");
        for (const auto& [k, bytes] : c.rng) {
          std::string doing = "writing /rng/" + k;
          hsize_t n = bytes.size();
          Handle space = checked(H5Screate_simple(1, &n, nullptr), H5Sclose, doing);
          Handle d = checked(H5Dcreate2(g.id(), k.c_str(), H5T_STD_U8LE, space.id(), lcpl_.id(), H5P_DEFAULT,
                                        H5P_DEFAULT), H5Dclose, doing);
          if (n > 0) check(H5Dwrite(d.id(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()), doing);
        }
      }
    }
    check(H5Fflush(file.id(), H5F_SCOPE_GLOBAL), "flushing '" + file_path + "'");
    check(file.close(), "writing '" + file_path + "'");  // the last writes happen in the close
  }

 private:
  void write_optimizer(hid_t file, const OptimizerState& o) {
    Handle g = group(file, "optimizer", "/optimizer");
    attr(g.id(), "type", o.type, "/optimizer");
    for (const auto& [k, v] : o.defaults) attr(g.id(), k, v, "/optimizer");
    Handle groups = group(g.id(), "param_groups", "/optimizer/param_groups", /*track_order=*/true);
    for (size_t i = 0; i < o.param_groups.size(); ++i) {
      std::string name = std::to_string(i), where = "/optimizer/param_groups/" + name;
      Handle pg = group(groups.id(), name, where);
      for (const auto& [k, v] : o.param_groups[i].options) attr(pg.id(), k, v, where);
      attr(pg.id(), "params", o.param_groups[i].names, where);
    }
    Handle state = group(g.id(), "state", "/optimizer/state", /*track_order=*/true);
    for (const auto& [key, ps] : o.state) {
      std::string where = "/optimizer/state/" + key;
      Handle kg = group(state.id(), key, where);
      attr(kg.id(), "step", ps.step, where);
      for (const auto& [slot, t] : ps.slots) tensor(kg.id(), slot, t, where + "/" + slot);
    }
  }

  std::string path_;  // the final path, for messages
  int io_errno_ = 0;  // the first failed write to the file (set by the write driver)
  Handle lcpl_;       // link creation: UTF-8 names
  Handle str_type_;   // variable-length UTF-8 string
};

// ---------------------------------------------------------------------------
// File-system steps of the atomic save
// ---------------------------------------------------------------------------
[[noreturn]] void os_fail(const std::string& path, const std::string& doing, int err) {
  throw CheckpointError(path, "cannot save checkpoint '" + path + "': " + h5::errno_text(err) + " (while " +
                                  doing + ")");
}

// Removes the temporary file unless released (after the rename).
struct TmpFile {
  std::string path;
  bool armed = true;
  ~TmpFile() {
    if (armed) ::unlink(path.c_str());
  }
};

// Fills the user block with the dltool header (size + CRC-32C of the HDF5 bytes after it) and
// syncs the file to disk.
void seal(const std::string& final_path, const std::string& p) {
  int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) os_fail(final_path, "reopening '" + p + "'", errno);
  auto bail = [&](const std::string& doing, int e) {
    ::close(fd);
    os_fail(final_path, doing, e);
  };
  uint32_t crc = 0;
  uint64_t n = 0;
  if (int e = ckpt_detail::crc_of_file(fd, ckpt_detail::kUserBlockBytes, crc, n)) bail("reading back '" + p + "'", e);
  const std::string header = ckpt_detail::user_block(n, crc);
  ssize_t put = ::pwrite(fd, header.data(), header.size(), 0);
  if (put != static_cast<ssize_t>(header.size())) bail("writing the header of '" + p + "'", put < 0 ? errno : EIO);
  if (::fsync(fd) != 0) bail("syncing '" + p + "' to disk", errno);
  if (::close(fd) != 0) os_fail(final_path, "closing '" + p + "'", errno);
}

}  // namespace

std::string class_name_text(const std::string& name) {
  std::string out;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += "\\x" + std::string{"0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]};
    else out += ch;
  }
  return out;
}

void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  validate(path, ckpt);
  namespace fs = std::filesystem;
  const std::string tmp = path + ".tmp";
  std::string dir = fs::path(path).parent_path().string();
  if (dir.empty()) dir = ".";

  // Create the temporary file ourselves first: a clean errno for the common failures
  // (missing directory, permission denied, read-only file system). A stale .tmp from a killed
  // writer is simply truncated.
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) os_fail(path, "creating '" + tmp + "'", errno);
  ::close(fd);
  TmpFile guard{tmp};

  try {
    h5::QuietErrors quiet;
    Writer w(path);
    w.write(tmp, ckpt);
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw CheckpointError(path, "cannot save checkpoint '" + path + "': out of memory");
  } catch (const std::exception& e) {  // e.g. copying a tensor off its device failed
    throw CheckpointError(path, "cannot save checkpoint '" + path + "': " + e.what());
  }
  seal(path, tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) os_fail(path, "renaming '" + tmp + "' over it", errno);
  guard.armed = false;
  // Make the rename itself durable. Some file systems refuse to fsync a directory (EINVAL);
  // the new checkpoint is complete and in place either way, so only a real I/O error counts.
  if (sync_directory(dir) == EIO) os_fail(path, "syncing directory '" + dir + "'", EIO);
}

}  // namespace dl
