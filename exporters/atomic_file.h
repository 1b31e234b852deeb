// Durable, all-or-nothing file writes for everything dltool leaves on disk (ONNX files, the run
// directory's config.yaml and metrics.jsonl rewrites; checkpoints use sync_directory after
// their own HDF5 temp file).
#pragma once
#include <string>

namespace dl {

// Writes `bytes` to `path` atomically: `<path>.tmp` in the same directory, fsync, rename over
// `path`, fsync of the directory. On failure the .tmp is removed, an existing `path` is left as
// it was, and std::runtime_error says "cannot write '<path>': <what>: <strerror>".
void write_file_atomic(const std::string& path, const std::string& bytes);

// fsync of directory `dir` ("" = the current one), making a rename in it durable. Returns 0 or
// the errno; some file systems refuse to sync a directory (EINVAL), which callers may ignore.
int sync_directory(const std::string& dir);

// The directory part of `path` ("" when it has none).
std::string parent_directory(const std::string& path);

}  // namespace dl
