// file_io.cpp
#include "util/file_io.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

namespace ddpm {

namespace fs = std::filesystem;

void write_file_atomic(const std::string& path, const std::string& bytes) {
    const fs::path target(path);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    std::string tmpl = dir.string();
    tmpl += "/.";
    tmpl += target.filename().string();
    tmpl += ".tmp.XXXXXX";
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) throw FormatError(fmt::format("{}: cannot create a temporary file in {}: {}", path, dir.string(), std::strerror(errno)));
    auto fail_io = [&](const char* what) {
        const int err = errno;
        ::close(fd);
        ::unlink(tmpl.c_str());
        throw FormatError(fmt::format("{}: {} failed: {}; the previous file is untouched", path, what, std::strerror(err)));
    };
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail_io("write");
        }
        done += static_cast<size_t>(w);
    }
    if (::fchmod(fd, 0644) != 0) fail_io("fchmod");
    if (::fsync(fd) != 0) fail_io("fsync");
    if (::close(fd) != 0) {
        ::unlink(tmpl.c_str());
        throw FormatError(fmt::format("{}: close failed: {}", path, std::strerror(errno)));
    }
    if (::rename(tmpl.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmpl.c_str());
        throw FormatError(fmt::format("{}: rename failed: {}; the previous file is untouched", path, std::strerror(err)));
    }
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        ::fsync(dfd);  // make the rename itself durable
        ::close(dfd);
    }
}

int remove_stale_temporaries(const std::string& dir) {
    // write_file_atomic's temporaries: ".<name>.tmp.XXXXXX" beside the file they were to replace.
    const std::regex tmp("\\..+\\.tmp\\.[A-Za-z0-9]{6}");
    int removed = 0;
    for (auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file() && std::regex_match(e.path().filename().string(), tmp)) removed += fs::remove(e.path());
    return removed;
}

}  // namespace ddpm
