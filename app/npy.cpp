// npy.cpp
#include "app/npy.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <stdexcept>

#include "util/file_io.h"

namespace ddpm {

void write_npy(const std::string& path, const Tensor& t) {
    const Tensor f = t.to(DType::F32);
    std::string shape;
    for (int64_t d : f.shape()) shape += std::to_string(d) + ", ";
    if (f.dim() > 1) shape.resize(shape.size() - 1);  // (2, 3) but (5,) for one axis
    std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", shape);
    const size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    std::string bytes("\x93NUMPY\x01\x00", 8);
    bytes += static_cast<char>(header.size() & 0xff);
    bytes += static_cast<char>((header.size() >> 8) & 0xff);
    bytes += header;
    bytes.append(static_cast<const char*>(f.raw_data()), f.nbytes());
    try {
        write_file_atomic(path, bytes);
    } catch (const FormatError& e) {
        throw std::runtime_error(e.what());
    }
}

Tensor read_npy(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open");
    std::string b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) throw std::runtime_error(path + ": not a .npy file");
    const size_t hlen = static_cast<uint8_t>(b[8]) | (static_cast<uint8_t>(b[9]) << 8);
    if (10 + hlen > b.size()) throw std::runtime_error(path + ": header runs past the end");
    const std::string header = b.substr(10, hlen);
    std::smatch m;
    if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos ||
        !std::regex_search(header, m, std::regex("'shape': \\(([0-9, ]*)\\)")))
        throw std::runtime_error(path + ": only little-endian float32 C-order arrays are supported");
    Shape shape;
    const std::string dims = m[1].str();
    static const std::regex number("[0-9]+");
    std::sregex_iterator it(dims.begin(), dims.end(), number), end;
    for (; it != end; ++it) shape.push_back(std::stoll(it->str()));
    Tensor t(shape, DType::F32);
    if (10 + hlen + t.nbytes() != b.size()) throw std::runtime_error(path + ": data size does not match the shape");
    std::memcpy(t.raw_data(), b.data() + 10 + hlen, t.nbytes());
    return t;
}

}  // namespace ddpm
