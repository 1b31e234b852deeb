// Thin helpers over the HDF5 C API, used by the checkpoint reader/writer (exporters/checkpoint.*).
//
// Why the C API: every call returns a status we check ourselves, so HDF5 failures become our
// exceptions with a plain-words reason, and HDF5's own stderr dumps are switched off
// (QuietErrors). Handles are RAII (Handle); nothing here throws except where stated.
//
//   h5::QuietErrors quiet;                       // no HDF5 stack dumps on stderr in this scope
//   h5::Handle f(H5Fopen(...), H5Fclose);
//   if (!f) throw MyError(h5::last_error().text);
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dl::h5 {

// An owned hid_t, closed with its H5*close function on destruction.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { close(); }
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      close();
      id_ = o.id_;
      closer_ = o.closer_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t id() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }
  // Closes now and returns the close status (H5Fclose's status matters when writing).
  herr_t close() {
    herr_t st = 0;
    if (id_ >= 0 && closer_) st = closer_(id_);
    id_ = -1;
    return st;
  }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// Silences HDF5's automatic error printing on this thread for the scope; restores it after.
class QuietErrors {
 public:
  QuietErrors();
  ~QuietErrors();
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// The reason for the most recent HDF5 failure on this thread, taken from the error stack (which
// is then cleared). `text` is the innermost HDF5 message; `err_no` is the OS errno the file
// driver recorded in it (0 if none), e.g. ENOSPC from a failed write(2).
struct Error {
  std::string text;
  int err_no = 0;
  // "no space left on device" when err_no is set, else `text` (or "unknown HDF5 error").
  std::string plain() const;
};
Error last_error();

// strerror() with a lower-case first letter: "no space left on device", "permission denied".
std::string errno_text(int err_no);

// File-access properties for checkpoints: file locking that is skipped where the file system
// has none (cluster file systems); for writing also H5Fclose closing everything (STRONG) and
// the HDF5 1.8 object format: checksummed metadata, readable by HDF5 >= 1.8.
// Caller owns the id; negative on failure.
hid_t file_access_plist(bool for_write);

// File-access properties for writing a new file that HDF5 always closes cleanly, whatever the
// disk does. HDF5 1.10 mishandles failing writes: when the flush inside H5Fclose fails (disk
// full, file too large, I/O error) it frees the file but keeps its ID, and H5close at exit
// closes that freed file again (a segfault at exit, after the right error was printed). These
// properties (file_access_plist(true) plus dltool's own POSIX file driver instead of sec2)
// never let HDF5 see an I/O failure: the first failing write or truncate stores its errno in
// `*io_errno` and every later one is skipped, while HDF5 is told they succeeded. The caller
// checks `*io_errno` while writing and after H5Fclose, reports the failure itself and removes
// the (incomplete) file. `io_errno` must outlive the file. Caller owns the id; negative on failure.
hid_t write_access_plist(int* io_errno);

struct Link {
  std::string name;
  bool hard = true;  // false: a soft or external link (never followed by our reader)
};
// The links of a group, in creation order when the group tracks it, else by name.
// Returns false on an HDF5 failure.
bool list_links(hid_t group, std::vector<Link>& links);
// Names of the attributes of an object, by name. Returns false on failure.
bool attr_names(hid_t obj, std::vector<std::string>& names);

// ---- file types (little-endian, as written on every platform) ----
// Variable-length UTF-8 string type (what h5py writes for Python str). Caller owns it.
hid_t vlen_str_type();
// IEEE binary16 laid out as numpy/h5py '<f2'. Caller owns it.
hid_t f16_le_type();
// bfloat16 (the upper half of a float32), as HDF5 2.0 predefines H5T_FLOAT_BFLOAT16LE. Caller owns it.
hid_t bf16_le_type();
// True when `type` is the float `expected` describes (size, bit fields, bias; any byte order).
bool same_float_layout(hid_t type, hid_t expected);
// h5py's bool: enum of int8 {FALSE = 0, TRUE = 1}. Caller owns it.
hid_t h5py_bool_type();
// A one-line description of a file datatype for error messages: "float32", "string",
// "compound", "int16", "big-endian float32"...
std::string describe_type(hid_t type);

}  // namespace dl::h5
