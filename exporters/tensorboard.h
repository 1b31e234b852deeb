// TensorBoard event files, written without TensorFlow.
//
// File: <logdir>/events.out.tfevents.<unix_secs, 10 digits>.<hostname>[.<n>]
// (".<n>" only when that name already exists, e.g. two writers started in the same second).
// Content: TFRecord framing, one serialized Event proto per record:
//   uint64 length (little endian) | uint32 masked_crc32c(length bytes) |
//   data[length]                  | uint32 masked_crc32c(data)
// First record: Event{wall_time, file_version: "brain.Event:2"}.
// Scalars:      Event{wall_time, step, summary{value{tag, simple_value}}}  (float32 value)
// The proto (exporters/tensorboard.proto) uses TensorBoard's own field numbers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dl::exporters {

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

  // Records are handed to the OS after every add_* (a killed job loses nothing already
  // added); flush() additionally fsyncs the file.
  void flush();

  // Full path of the event file.
  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& serialized_event);
  std::string path_;
  int fd_ = -1;
};

}  // namespace dl::exporters
