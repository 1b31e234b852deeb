// Checkpoints: one HDF5 file per checkpoint, readable by h5dump and h5py without dltool.
// The layout is fixed by DESIGN.md ("Checkpoint format (HDF5)"); other tools rely on it:
//
//   /                    attrs: format = "dltool.checkpoint", format_version = 1 (int64),
//                               dltool_version, created_utc ("2024-05-01T12:34:56Z")
//   /config              scalar UTF-8 string dataset: the resolved YAML (omitted when empty)
//   /model/<key>         one dataset per state_dict entry, link name = dotted key
//                        ("conv1.weight"); link creation order tracked + indexed = model order.
//                        float32 params, float64 stays float64, int64 num_batches_tracked,
//                        uint8, bool (h5py's FALSE/TRUE enum), float16 (h5py '<f2');
//                        bfloat16 is widened to float32 (lossless; reads back as float32).
//                        0-dim tensors are scalar dataspaces.
//   /optimizer           attrs: type (string) + each default hyper-parameter (float64)
//   /optimizer/param_groups/<i>   attrs: group hyper-parameters (float64) and `params`, a 1-d
//                        variable-length string attribute (h5py: list(attrs['params']) -> [str])
//   /optimizer/state/<key>/<slot> datasets (momentum_buffer, exp_avg, ...); attr `step` (int64)
//                        on the <key> group
//   /scheduler           attrs: type (string); scalars as float64 (last_epoch, ...); lists as
//                        1-d float64 (base_lrs, ...)
//   /trainer             attrs: int64, float64 or string each (epoch, global_step, ...)
//   /rng/<stream>        1-d uint8 datasets (raw RNG states)
//   /ema/<key>           the weights' exponential moving average (train.ema_decay), like /model
//   /data/classes        1-d variable-length UTF-8 string dataset: the training data's class
//                        names in index order (h5py: [s.decode() for s in f['data/classes']]);
//                        absent when the data names no classes (older files: absent, still valid)
//
// Only the parts that are set are written: a weights-only file is /model plus the root attrs.
// Strings are variable-length UTF-8, as h5py writes Python str: h5py reads attributes back as
// str (`f.attrs['format'] == 'dltool.checkpoint'`) and `params` as a list of str.
// Attributes are kept in compact storage (in the object header), where HDF5 1.10's h5copy can
// copy variable-length strings; it crashes on them in dense storage, which HDF5 still forces for
// a single attribute over 64 KiB (a `params` list of more than ~4000 keys in one group).
// Files use the HDF5 1.8 object format (checksummed metadata; readable by HDF5 >= 1.8), and
// start with a 512-byte dltool header in the HDF5 user block holding the size and a CRC-32C
// of the rest (exporters/checkpoint_userblock.h). h5py and h5dump ignore it; the loader
// checks it first, so truncation and any flipped byte are reported before HDF5 parses a thing.
//
// h5py users: `list(f['model'])` is in creation (= model) order — h5py follows a group's
// creation-order index (h5dump sorts by name unless given `--sort_by=creation_order`). To write
// a weights-only file that keeps model order, create the group with
// `f.create_group('model', track_order=True)`; without it keys come back sorted by name, which
// is fine for loading (modules match keys by name) but loses the listing order.
//
// Loading validates everything and throws CheckpointError naming the file and the problem:
// missing / empty / not a regular file / not HDF5 / truncated or corrupt (size or checksum
// mismatch, HDF5 failures) / not a dltool checkpoint / written by a newer dltool / unsupported
// dtype / stored size disagreeing with the dataspace / soft or external links (never followed).
// Our own files cannot crash the reader; foreign files without the dltool header rely on
// HDF5's own checks (fuzzed in the tests, but HDF5 1.10 is not hardened against every hostile
// file).
//
// Foreign weights-only files: a file with /model but no root `format` attribute (e.g. a
// PyTorch state_dict dumped with h5py) is accepted by load_checkpoint(path, true) and
// rejected, with a hint, by a full load. Their dtypes are read as: float16/32/64 (any byte
// order), bfloat16 (a 2-byte HDF5 float with bfloat16's bit fields, HDF5 2.0's
// H5T_FLOAT_BFLOAT16LE), bool (h5py's enum), uint8, other integers up to 64 bits widened to
// int64 (not uint64). Layouts: contiguous, compact, or chunked with HDF5's built-in filters
// (gzip). Tensors come back in the stored dtype (`inspect` shows it); a model converts them to
// its own dtype when it loads them (Module::load_state_dict, Optimizer::load_state_dict: a
// half-precision PyTorch state_dict loads into a float32 model).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "engine/optim/optimizer.h"
#include "engine/sched/scheduler.h"
#include "engine/tensor/tensor.h"

namespace dl {

using StateDict = std::vector<std::pair<std::string, Tensor>>;  // ordered, like PyTorch's

// The optimizer's and scheduler's own state types (one definition, in the engine): a
// checkpoint stores exactly what Optimizer::state_dict() / LRScheduler::state_dict() return.
using OptimizerState = optim::OptimizerState;  // type, defaults, param_groups {names, options}, state
using OptimizerGroupState = optim::OptimizerState::Group;
using OptimizerParamState = optim::ParamState;  // step, slots (momentum_buffer, exp_avg, ...)
using SchedulerState = sched::SchedulerState;   // type, scalars, lists, strings

using AttrScalar = std::variant<int64_t, double, std::string>;

struct Checkpoint {
  std::string config_yaml;                          // /config (empty for weights-only)
  StateDict model;                                  // /model, in model order
  // /ema: the exponential moving average of the weights (train.ema_decay), keys as /model;
  // empty when the run keeps none. Its update count is the /trainer attribute ema_updates.
  StateDict ema;
  std::optional<OptimizerState> optimizer;          // /optimizer
  std::optional<SchedulerState> scheduler;          // /scheduler
  std::map<std::string, AttrScalar> trainer;        // /trainer attrs
  std::map<std::string, std::vector<uint8_t>> rng;  // /rng/<stream>
  std::vector<std::string> class_names;             // /data/classes (empty: not written)
  // Filled by load_checkpoint from the root attrs (empty for foreign files); save_checkpoint
  // ignores them and writes this build's version and the current time.
  std::string dltool_version, created_utc;
  int64_t format_version = 0;  // on read: 1, or 0 for a foreign weights-only file
};

// Every failure to save or load a checkpoint. what() names the file and the reason in plain
// words, e.g. "cannot save checkpoint 'runs/a/last.h5': no space left on device". A `message`
// that does not mention `path` is prefixed with it:
//   CheckpointError("a.h5", "has no /optimizer state").what() == "a.h5: has no /optimizer state"
class CheckpointError : public std::runtime_error {
 public:
  CheckpointError(const std::string& path, const std::string& message);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline constexpr const char* kCheckpointFormat = "dltool.checkpoint";
inline constexpr int64_t kCheckpointFormatVersion = 1;

// Writes `ckpt` atomically: `<path>.tmp` in the same directory is written, flushed and
// fsync'ed, renamed over `path`, and the directory is fsync'ed. On any failure the .tmp is
// removed, a previous `path` is left untouched, and CheckpointError is thrown (keys are
// validated before anything is written). Tensors may live on any device and have any layout;
// they are copied to the CPU and made contiguous one at a time. The parent directory must exist.
// One writer per path at a time (two processes saving the same path share the .tmp name).
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);

// A class name as one line of text (classes.txt, terminal output): backslash and control
// characters C-escaped ("\\", "\n", "\r", "\t", "\x01"), so text vocabularies (whose
// classes include "\n") keep one name per line and the names can be read back exactly.
std::string class_name_text(const std::string& name);

// Reads and validates a checkpoint; tensors come back as contiguous CPU tensors.
// weights_only: read only /model (+ /config, /data/classes and the root attrs) and accept foreign
// weights-only files (no root `format` attribute, see above).
Checkpoint load_checkpoint(const std::string& path, bool weights_only = false);

}  // namespace dl
