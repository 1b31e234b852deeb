// TensorBoard event files, written without TensorFlow.
//
// File: <logdir>/events.out.tfevents.<unix_secs, 10 digits>.<hostname>[.<n>]
// (".<n>" only when that name already exists, e.g. two writers started in the same second).
// Content: TFRecord framing, one serialized Event proto per record:
//   uint64 length (little endian) | uint32 masked_crc32c(length bytes) |
//   data[length]                  | uint32 masked_crc32c(data)
// First record: Event{wall_time, file_version: "brain.Event:2"}.
// Scalars:      Event{wall_time, step, summary{value{tag, simple_value}}}  (float32 value)
// Histograms:   Event{..., summary{value{tag, histo: HistogramProto}}}
// Images:       Event{..., summary{value{tag, image: Summary.Image (PNG)}}}
// HParams:      three Events whose value carries metadata.plugin_data{"hparams",
//               HParamsPluginData} (experiment, session_start_info, session_end_info),
//               plus the metric scalars -- what torch.utils.tensorboard's add_hparams writes.
// The proto (exporters/tensorboard.proto) uses TensorBoard's own field numbers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace dl {
class Tensor;
}

namespace dl::exporters {

// One hyperparameter value for add_hparams: a number, a string or a bool (the kinds of
// google.protobuf.Value TensorBoard's HParams tab shows). Integers are stored as numbers.
class HParamValue {
 public:
  HParamValue(std::string v) : value_(std::move(v)) {}
  HParamValue(const char* v) : value_(std::string(v)) {}
  template <class T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
  HParamValue(T v) {
    if constexpr (std::is_same_v<T, bool>)
      value_ = v;
    else
      value_ = static_cast<double>(v);
  }
  const std::variant<double, std::string, bool>& value() const { return value_; }

 private:
  std::variant<double, std::string, bool> value_;
};
using HParams = std::vector<std::pair<std::string, HParamValue>>;  // in display order

namespace tfrecord {
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table driven.
// crc32c("123456789") == 0xE3069283. `crc` continues a previous result.
std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0);
inline std::uint32_t crc32c(std::string_view s) { return crc32c(s.data(), s.size()); }
// TFRecord's masking: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
std::uint32_t mask_crc(std::uint32_t crc);
std::uint32_t unmask_crc(std::uint32_t masked);
// One framed record (header + data + footer) for `data`.
std::string frame(std::string_view data);
}  // namespace tfrecord

// A batch of images tiled into one image as torchvision.utils.make_grid(batch[:max_images],
// nrow, padding, normalize=True, scale_each=False, pad_value=0) builds it: min-max scaled over
// the whole batch, 1-channel images repeated to RGB, `nrow` images per row, `padding` pixels
// of 0 around each; then made 8-bit as torch.utils.tensorboard's add_image does (x * 255,
// clipped, truncated). `nchw`: [B, C, H, W] of any dtype with C 1 or 3 (else
// std::invalid_argument). Result: rows of width * 3 bytes, RGB.
struct ImageGrid {
  std::vector<std::uint8_t> hwc;
  int height = 0, width = 0, channels = 3;
};
ImageGrid make_image_grid(const Tensor& nchw, int nrow = 8, int padding = 2, int max_images = 64);

class TensorBoardWriter {
 public:
  // Creates `logdir` (and parents) and a new event file in it, and writes the
  // file_version record. Throws std::runtime_error naming the path on failure.
  explicit TensorBoardWriter(const std::string& logdir);
  ~TensorBoardWriter();  // flushes; never throws
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One scalar at `step` (stored as float32, as TensorBoard does).
  void add_scalar(const std::string& tag, double value, std::int64_t step);
  // Several scalars of the same step in one Event (one record, one write).
  void add_scalars(const std::vector<std::pair<std::string, double>>& values, std::int64_t step);
  // SessionLog START at `step`: call when a run resumes from a checkpoint taken at `step`.
  // TensorBoard's Python event loader (EventAccumulator, purge_orphaned_data) then drops the
  // events with step >= `step` that the interrupted run wrote after that checkpoint.
  void add_session_start(std::int64_t step);

  // Histogram of `values` at `step`, as torch.utils.tensorboard's add_histogram(bins=
  // "tensorflow"): fixed buckets with edges 0, ±1e-12 * 1.1^k (k = 0.. while < 1e20), numpy's
  // counting (each bucket [left, right), the last one closed), trimmed to the buckets from just
  // before the first non-empty one to the last non-empty one. min/max/num/sum/sum_squares cover
  // every value (so a NaN makes them NaN); NaN, ±inf and |x| beyond the outermost edge are in
  // no bucket. Throws std::invalid_argument (naming the tag) when `values` is empty or no value
  // falls in a bucket, as torch raises ValueError. One pass over the values plus a binary
  // search per value. A Tensor (any dtype, device, layout) is copied to the host first.
  void add_histogram(const std::string& tag, std::span<const float> values, std::int64_t step);
  void add_histogram(const std::string& tag, std::span<const double> values, std::int64_t step);
  void add_histogram(const std::string& tag, const Tensor& values, std::int64_t step);

  // An image at `step`. add_image_png takes encoded PNG bytes as they are (height, width and
  // colorspace are read from the PNG header). add_image encodes an 8-bit HxWxC image (rows of
  // width*channels bytes; channels 1 = gray, 3 = RGB, 4 = RGBA, in that order, like torch's
  // add_image(dataformats="HWC")) to PNG with OpenCV; the Tensor form takes a uint8 [H, W, C]
  // tensor. std::invalid_argument for bad bytes, shapes or channel counts.
  void add_image_png(const std::string& tag, std::string_view png, std::int64_t step);
  void add_image(const std::string& tag, const std::uint8_t* hwc, int height, int width,
                 int channels, std::int64_t step);
  void add_image(const std::string& tag, const Tensor& hwc, std::int64_t step);
  // make_image_grid(nchw) as an image (torch: add_image(tag, make_grid(..., normalize=True))).
  void add_image_grid(const std::string& tag, const Tensor& nchw, std::int64_t step);

  // Hyperparameters and final metrics of this run for TensorBoard's HParams tab, all at
  // `step` in this writer's file: the experiment (hparam names and types, metric tags),
  // session_start_info (the values), session_end_info (STATUS_SUCCESS) and one scalar per
  // metric. The run is the session; its metric columns show the last value logged under each
  // metric tag, so tags already logged as scalars (e.g. "val/accuracy") work too.
  // Bools are written as bool values (DATA_TYPE_BOOL), as TensorBoard's own hparams API does;
  // torch 1.13 writes them as numbers 0/1. std::invalid_argument for a repeated name.
  void add_hparams(const HParams& hparams,
                   const std::vector<std::pair<std::string, double>>& metrics, std::int64_t step);
  // torch's SummaryWriter.add_hparams(..., run_name): the same records at step 0 in a new
  // event file in <logdir>/<run_name>, so each call is its own run (session).
  void add_hparams_run(const std::string& run_name, const HParams& hparams,
                       const std::vector<std::pair<std::string, double>>& metrics);

  // Records are handed to the OS after every add_* (a killed job loses nothing already
  // added); flush() additionally fsyncs the file.
  void flush();

  // Full path of the event file.
  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& serialized_event);
  std::string logdir_;
  std::string path_;
  int fd_ = -1;
};

}  // namespace dl::exporters
