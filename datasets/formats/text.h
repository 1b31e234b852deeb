// The token names of data.format text (text.cpp), for code that turns text into a text model's
// token ids and back (`dltool generate`), and its file reading, shared with text_classification.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/format.h"

namespace dl::data {

// The files of one split's `file` or `files` (paths or globs under data.root, a glob's matches
// sorted, a file reached twice read once) minus its `exclude` globs; `key` ("data.train")
// names the split in errors (std::invalid_argument for the keys, DataError for the files).
std::vector<std::string> list_text_files(const FormatArgs& args, const AttrMap& split, const std::string& key);
// A file's bytes; DataError naming `key` and the path when it cannot be read.
std::string read_text_file(const std::string& path, const std::string& key);

// A symbol's vocabulary name: its character (UTF-8), or "<0xNN>" for control characters and,
// at byte level, for bytes >= 0x80 (every other name is one character).
std::string text_token_name(uint32_t symbol, bool bytes);
// Appends the code points of `bytes` (strict UTF-8); DataError naming `what` and the byte
// offset at the first invalid sequence.
void decode_text_utf8(const std::string& bytes, const std::string& what, std::vector<uint32_t>& out);

}  // namespace dl::data
