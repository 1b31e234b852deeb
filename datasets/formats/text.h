// The token names of data.format text (text.cpp), for code that turns text into a text model's
// token ids and back (`dltool generate`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dl::data {

// A symbol's vocabulary name: its character (UTF-8), or "<0xNN>" for control characters and,
// at byte level, for bytes >= 0x80 (every other name is one character).
std::string text_token_name(uint32_t symbol, bool bytes);
// Appends the code points of `bytes` (strict UTF-8); DataError naming `what` and the byte
// offset at the first invalid sequence.
void decode_text_utf8(const std::string& bytes, const std::string& what, std::vector<uint32_t>& out);

}  // namespace dl::data
