// file_io.h: writing files so that a crash never leaves a half-written one.
#pragma once

#include <stdexcept>
#include <string>

namespace ddpm {

// A file that is malformed, or cannot be read or written; the message names the file and the problem.
struct FormatError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Writes `bytes` to `path` atomically: a temporary ".<name>.tmp.XXXXXX" in the same
// folder, flushed and fsynced, renamed over `path`, then the folder fsynced. A crash
// leaves the old file or the new one, never a mixture; an error leaves the old one.
void write_file_atomic(const std::string& path, const std::string& bytes);

// Deletes the temporaries of writes that a crash interrupted in `dir`; returns how many.
int remove_stale_temporaries(const std::string& dir);

}  // namespace ddpm
