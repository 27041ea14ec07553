// safetensors.cpp: every field of the header is checked before any byte of
// data is trusted; sizes are checked against the file length before allocating.
#include "nn/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

namespace ddpm {

namespace {
constexpr uint64_t kMaxHeader = 100u << 20;  // the reference implementation's limit

const char* st_dtype(DType dt) { return dt == DType::F32 ? "F32" : "F64"; }

[[noreturn]] void bad(const std::string& origin, const std::string& what) {
    throw FormatError(fmt::format("{}: {}", origin, what));
}
}  // namespace

const Tensor& SafeTensors::at(const std::string& name) const {
    for (auto& [n, t] : tensors)
        if (n == name) return t;
    throw FormatError("safetensors: no tensor named '" + name + "'");
}

bool SafeTensors::contains(const std::string& name) const {
    for (auto& [n, t] : tensors)
        if (n == name) return true;
    return false;
}

std::string safetensors_serialize(const NamedTensors& tensors, const Metadata& metadata) {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (auto& [name, t] : tensors) {
        DDPM_CHECK(name != "__metadata__" && !name.empty(), "safetensors", "bad tensor name '" + name + "'");
        DDPM_CHECK(!header.contains(name), "safetensors", "tensor name '" + name + "' used twice");
        header[name] = {{"dtype", st_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
        offset += t.nbytes();
    }
    std::string json = header.dump();
    json.append((8 - json.size() % 8) % 8, ' ');  // data starts 8-byte aligned
    std::string out(8, '\0');
    const uint64_t n = json.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out += json;
    out.reserve(out.size() + offset);
    for (auto& [name, t] : tensors) out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
    return out;
}

namespace {
// The JSON header: 8 bytes of little-endian length, then that many bytes of JSON.
nlohmann::json parse_header(const std::string& bytes, const std::string& origin, uint64_t& n) {
    if (bytes.size() < 8) bad(origin, fmt::format("file is {} bytes, shorter than the 8-byte header length", bytes.size()));
    n = 0;
    for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
    if (n > kMaxHeader) bad(origin, fmt::format("header length {} (bytes 0-7) is over the {} limit", n, kMaxHeader));
    if (n > bytes.size() - 8)
        bad(origin, fmt::format("header length {} (bytes 0-7) runs past the end of the {}-byte file", n, bytes.size()));
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
    } catch (const nlohmann::json::parse_error& e) {
        bad(origin, fmt::format("header is not valid JSON at byte {}: {}", 8 + e.byte, e.what()));
    } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for a double
        bad(origin, fmt::format("header is not usable JSON: {}", e.what()));
    }
    if (!header.is_object()) bad(origin, "header is not a JSON object");
    return header;
}

struct Span {
    uint64_t begin, end;
    std::string name;
};

// One tensor's entry {"dtype", "shape", "data_offsets"}, checked against the data section
// of data_len bytes; its bytes copied out of `data`.
Tensor parse_tensor(const std::string& name, const nlohmann::json& e, const char* data, uint64_t data_len,
                    const std::string& origin, Span& span) {
    auto field = [&](const char* f) -> const nlohmann::json& {
        if (!e.is_object() || !e.contains(f)) bad(origin, fmt::format("tensor '{}' has no '{}'", name, f));
        return e.at(f);
    };
    const auto& jd = field("dtype");
    const std::string dts = jd.is_string() ? jd.get<std::string>() : jd.dump();
    if (dts != "F32" && dts != "F64") bad(origin, fmt::format("tensor '{}' has dtype {}; only F32 and F64 are supported", name, dts));
    const DType dt = dts == "F32" ? DType::F32 : DType::F64;
    const auto& js = field("shape");
    if (!js.is_array() || js.size() > 8) bad(origin, fmt::format("tensor '{}': shape must be an array of up to 8 sizes", name));
    Shape shape;
    uint64_t numel = 1;
    for (const auto& d : js) {
        if (!d.is_number_unsigned()) bad(origin, fmt::format("tensor '{}': shape {} has a negative or non-integer size", name, js.dump()));
        const uint64_t v = d.get<uint64_t>();
        if (v != 0 && numel > data_len / v) bad(origin, fmt::format("tensor '{}': shape {} is larger than the file", name, js.dump()));
        numel *= v;
        shape.push_back(static_cast<int64_t>(v));
    }
    const auto& jo = field("data_offsets");
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
        bad(origin, fmt::format("tensor '{}': data_offsets {} is not [begin, end]", name, jo.dump()));
    const uint64_t b = jo[0].get<uint64_t>(), en = jo[1].get<uint64_t>();
    if (b > en || en > data_len)
        bad(origin, fmt::format("tensor '{}': data_offsets [{}, {}] out of range (data section is {} bytes)", name, b, en, data_len));
    if (en - b != numel * dtype_size(dt))
        bad(origin, fmt::format("tensor '{}': data_offsets [{}, {}] hold {} bytes but {}{} needs {}", name, b, en, en - b, dts,
                                js.dump(), numel * dtype_size(dt)));
    span = {b, en, name};
    Tensor t(shape, dt);
    std::memcpy(t.raw_data(), data + b, t.nbytes());
    return t;
}

// The tensors must tile the data section: no overlap, no gap, nothing left over. Sorts spans by offset.
void check_tiling(std::vector<Span>& spans, uint64_t data_len, const std::string& origin) {
    std::sort(spans.begin(), spans.end(),
              [](const Span& a, const Span& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
    uint64_t at = 0;
    for (const Span& s : spans) {
        if (s.begin < at) bad(origin, fmt::format("tensor '{}' at [{}, {}] overlaps the tensor before it", s.name, s.begin, s.end));
        if (s.begin > at) bad(origin, fmt::format("gap in the data section before tensor '{}' (bytes {} to {})", s.name, at, s.begin));
        at = s.end;
    }
    if (at != data_len) bad(origin, fmt::format("data section is {} bytes but the tensors cover {}", data_len, at));
}
}  // namespace

SafeTensors safetensors_parse(const std::string& bytes, const std::string& origin) {
    uint64_t header_len = 0;
    const nlohmann::json header = parse_header(bytes, origin, header_len);
    const uint64_t data_begin = 8 + header_len, data_len = bytes.size() - data_begin;
    SafeTensors st;
    std::vector<Span> spans;
    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string& name = it.key();
        if (name != "__metadata__") {
            spans.emplace_back();
            st.tensors.emplace_back(name, parse_tensor(name, it.value(), bytes.data() + data_begin, data_len, origin, spans.back()));
            continue;
        }
        if (!it.value().is_object()) bad(origin, "__metadata__ is not an object");
        for (auto m = it.value().begin(); m != it.value().end(); ++m) {
            if (!m.value().is_string()) bad(origin, fmt::format("__metadata__.{} is not a string", m.key()));
            st.metadata[m.key()] = m.value().get<std::string>();
        }
    }
    check_tiling(spans, data_len, origin);
    // Hand the tensors back in file order (by offset), which is the order the writer gave.
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < st.tensors.size(); ++i) index[st.tensors[i].first] = i;
    NamedTensors in_order;
    for (const Span& s : spans) in_order.push_back(std::move(st.tensors[index.at(s.name)]));
    st.tensors = std::move(in_order);
    return st;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
    write_file_atomic(path, safetensors_serialize(tensors, metadata));
}

SafeTensors load_safetensors(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw FormatError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return safetensors_parse(bytes, path);
}

}  // namespace ddpm
