// Never a partial file: everything lmquant writes goes to a temporary file beside the target,
// is flushed and fsync'ed, and only then renamed over the target (rename is atomic on POSIX).
#pragma once
#include <functional>
#include <ostream>
#include <string>

namespace lmquant {

// Calls `write` with a stream on "<path>.tmp.<pid>", then renames it to `path`. On any failure
// (the callback throws, the disk is full, the folder is not writable) the temporary file is
// removed, `path` is left as it was, and std::runtime_error names the path and the reason.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);

// Convenience: the whole contents at once.
void write_file_atomic(const std::string& path, const std::string& contents);

// Reads a whole file; throws std::runtime_error naming the file when it cannot.
std::string read_file(const std::string& path);

// Creates a directory and its parents; throws naming the directory when it cannot.
void make_directories(const std::string& dir);

}  // namespace lmquant
