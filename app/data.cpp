// data.cpp
#include "app/data.h"

#include <fmt/format.h>
#include <stb/stb_image.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <omp.h>

#include "tensor/random.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

uint32_t be32(const std::string& b, size_t at) {
    return (uint32_t(uint8_t(b[at])) << 24) | (uint32_t(uint8_t(b[at + 1])) << 16) | (uint32_t(uint8_t(b[at + 2])) << 8) |
           uint32_t(uint8_t(b[at + 3]));
}

std::string find_file(const std::string& dir, const std::vector<std::string>& names) {
    for (const std::string& n : names) {
        fs::path p = fs::path(dir) / n;
        if (fs::exists(p)) return p.string();
    }
    throw DataError(fmt::format("{}: none of {} found", dir, fmt::join(names, ", ")));
}

// Converts between 1 and 3 channels (gray = mean of R, G, B; RGB = gray copied).
Dataset convert_channels(Dataset d, int64_t channels) {
    if (d.channels == channels) return d;
    if (!((d.channels == 1 && channels == 3) || (d.channels == 3 && channels == 1)))
        throw DataError(fmt::format("cannot convert {}-channel images to {} channels", d.channels, channels));
    const int64_t hw = d.height * d.width;
    std::vector<uint8_t> out(static_cast<size_t>(d.n * channels * hw));
    for (int64_t i = 0; i < d.n; ++i) {
        const uint8_t* src = d.pixels.data() + i * d.channels * hw;
        uint8_t* dst = out.data() + i * channels * hw;
        for (int64_t p = 0; p < hw; ++p) {
            if (channels == 3) {
                dst[p] = dst[hw + p] = dst[2 * hw + p] = src[p];
            } else {
                dst[p] = static_cast<uint8_t>((int(src[p]) + src[hw + p] + src[2 * hw + p] + 1) / 3);
            }
        }
    }
    d.pixels = std::move(out);
    d.channels = channels;
    return d;
}
}  // namespace

std::string read_file_bytes(const std::string& path, size_t max_bytes) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw DataError(fmt::format("{}: no such file", path));
    if (!fs::is_regular_file(path, ec)) throw DataError(fmt::format("{}: not a regular file", path));
    const uintmax_t size = fs::file_size(path, ec);
    if (ec) throw DataError(fmt::format("{}: cannot read its size: {}", path, ec.message()));
    if (size > max_bytes)
        throw DataError(fmt::format("{}: {} bytes, more than the {} allowed for this kind of file", path, size, max_bytes));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw DataError(fmt::format("{}: cannot open", path));
    std::string b(static_cast<size_t>(size), '\0');
    in.read(b.data(), static_cast<std::streamsize>(size));
    if (in.gcount() != static_cast<std::streamsize>(size))
        throw DataError(fmt::format("{}: read {} of {} bytes", path, in.gcount(), size));
    return b;
}

std::string maybe_gunzip(std::string bytes, const std::string& name, size_t max_bytes) {
    if (bytes.size() < 2 || uint8_t(bytes[0]) != 0x1f || uint8_t(bytes[1]) != 0x8b) return bytes;  // not gzip
    z_stream z{};
    if (inflateInit2(&z, 15 + 16) != Z_OK) throw DataError(fmt::format("{}: zlib cannot start", name));
    z.next_in = reinterpret_cast<Bytef*>(bytes.data());
    z.avail_in = static_cast<uInt>(bytes.size());
    std::string out;
    char buf[1 << 16];
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        z.next_out = reinterpret_cast<Bytef*>(buf);
        z.avail_out = sizeof(buf);
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            const std::string msg = z.msg ? z.msg : (rc == Z_BUF_ERROR ? "truncated" : "error " + std::to_string(rc));
            const uint64_t at = z.total_in;
            inflateEnd(&z);
            throw DataError(fmt::format("{}: corrupt gzip data at compressed byte {}: {}", name, at, msg));
        }
        out.append(buf, sizeof(buf) - z.avail_out);
        if (out.size() > max_bytes) {
            inflateEnd(&z);
            throw DataError(fmt::format("{}: inflates to more than {} bytes, too large for this kind of file", name, max_bytes));
        }
    }
    inflateEnd(&z);
    return out;
}

std::string gzip_bytes(const std::string& raw) {
    z_stream z{};
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw DataError("zlib cannot start");
    std::string out(deflateBound(&z, static_cast<uLong>(raw.size())), '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
    z.avail_in = static_cast<uInt>(raw.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) throw DataError("zlib could not compress");
    return out;
}

std::string read_maybe_gz(const std::string& path, size_t max_bytes) {
    return maybe_gunzip(read_file_bytes(path, max_bytes), path, max_bytes);
}

Dataset parse_idx_images(const std::string& b, const std::string& name) {
    if (b.size() < 16) throw DataError(fmt::format("{}: {} bytes, shorter than the 16-byte IDX image header", name, b.size()));
    const uint32_t magic = be32(b, 0);
    if (magic != 0x00000803)
        throw DataError(fmt::format("{}: magic 0x{:08x} at byte 0, expected 0x00000803 (unsigned bytes, 3 dimensions)", name, magic));
    const uint64_t n = be32(b, 4), h = be32(b, 8), w = be32(b, 12);
    if (h == 0 || w == 0 || h > 4096 || w > 4096)
        throw DataError(fmt::format("{}: image size {}x{} (bytes 8-15) is out of range 1-4096", name, h, w));
    if (n == 0) throw DataError(fmt::format("{}: header (bytes 4-7) says it holds no images", name));
    if (n * h * w != b.size() - 16)
        throw DataError(fmt::format("{}: header promises {} images of {}x{} ({} bytes) but {} bytes follow it", name, n, h,
                                    w, n * h * w, b.size() - 16));
    Dataset d;
    d.n = static_cast<int64_t>(n), d.channels = 1, d.height = static_cast<int64_t>(h), d.width = static_cast<int64_t>(w);
    d.pixels.assign(b.begin() + 16, b.end());
    d.description = fmt::format("{} ({} images {}x{})", name, n, h, w);
    return d;
}

std::vector<uint8_t> parse_idx_labels(const std::string& b, const std::string& name, int classes) {
    if (b.size() < 8) throw DataError(fmt::format("{}: {} bytes, shorter than the 8-byte IDX label header", name, b.size()));
    const uint32_t magic = be32(b, 0);
    if (magic != 0x00000801)
        throw DataError(fmt::format("{}: magic 0x{:08x} at byte 0, expected 0x00000801 (unsigned bytes, 1 dimension)", name, magic));
    const uint64_t n = be32(b, 4);
    if (n != b.size() - 8)
        throw DataError(fmt::format("{}: header promises {} labels but {} bytes follow it", name, n, b.size() - 8));
    std::vector<uint8_t> labels(b.begin() + 8, b.end());
    for (size_t i = 0; i < labels.size(); ++i)
        if (labels[i] >= classes)
            throw DataError(fmt::format("{}: label {} of image {} (byte {}) is not below {}", name, labels[i], i, 8 + i, classes));
    return labels;
}

Dataset read_idx_images(const std::string& path) { return parse_idx_images(read_maybe_gz(path, kMaxDatasetBytes), path); }

void parse_cifar10_batch(const std::string& b, const std::string& name, Dataset& d) {
    const size_t record = 1 + 3072;
    if (b.empty() || b.size() % record != 0)
        throw DataError(fmt::format("{}: {} bytes is not a whole number of {}-byte records (label + 3x32x32)", name, b.size(), record));
    d.channels = 3, d.height = d.width = 32;
    d.pixels.reserve(d.pixels.size() + b.size() / record * 3072);
    for (size_t r = 0; r < b.size() / record; ++r) {
        const uint8_t label = static_cast<uint8_t>(b[r * record]);
        if (label > 9) throw DataError(fmt::format("{}: record {} (byte {}) has label {}, expected 0-9", name, r, r * record, label));
        d.labels.push_back(label);
        d.pixels.insert(d.pixels.end(), b.begin() + static_cast<std::ptrdiff_t>(r * record + 1),
                        b.begin() + static_cast<std::ptrdiff_t>((r + 1) * record));
        ++d.n;
    }
}

Dataset read_cifar10(const std::string& dir, Split split) {
    std::vector<std::string> files;
    if (split == Split::Train)
        for (int i = 1; i <= 5; ++i) files.push_back(find_file(dir, {fmt::format("data_batch_{}.bin", i)}));
    else
        files.push_back(find_file(dir, {"test_batch.bin"}));
    Dataset d;
    for (const std::string& f : files) parse_cifar10_batch(read_maybe_gz(f, kMaxDatasetBytes), f, d);
    d.description = fmt::format("CIFAR-10 {} from {} ({} images)", split == Split::Train ? "train" : "test", dir, d.n);
    return d;
}

std::vector<uint8_t> decode_image(const std::string& bytes, const std::string& name, int64_t size, int64_t channels) {
    if (size < 1 || size > 4096 || (channels != 1 && channels != 3))
        throw DataError(fmt::format("{}: cannot make {}x{} images with {} channels", name, size, size, channels));
    const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
    const int len = static_cast<int>(std::min<size_t>(bytes.size(), INT32_MAX));
    int w = 0, h = 0, c = 0;
    if (!stbi_info_from_memory(data, len, &w, &h, &c))
        throw DataError(fmt::format("{}: not a readable PNG or JPEG ({})", name, stbi_failure_reason()));
    if (w <= 0 || h <= 0 || int64_t(w) * h > kMaxImagePixels)
        throw DataError(fmt::format("{}: image size {}x{} is out of range (at most {} pixels)", name, w, h, kMaxImagePixels));
    stbi_uc* px = stbi_load_from_memory(data, len, &w, &h, &c, static_cast<int>(channels));
    if (!px) {
        const char* why = stbi_failure_reason();
        throw DataError(fmt::format("{}: cannot decode ({})", name, why && *why ? why : "truncated or corrupt image data"));
    }
    // Centre crop to a square, then area-average (box filter) down or sample up to size x size.
    const int64_t side = std::min(w, h), x0 = (w - side) / 2, y0 = (h - side) / 2;
    std::vector<uint8_t> out(static_cast<size_t>(channels * size * size));
    for (int64_t ch = 0; ch < channels; ++ch)
        for (int64_t y = 0; y < size; ++y)
            for (int64_t x = 0; x < size; ++x) {
                const int64_t sy0 = y0 + y * side / size, sy1 = std::max(sy0 + 1, y0 + (y + 1) * side / size);
                const int64_t sx0 = x0 + x * side / size, sx1 = std::max(sx0 + 1, x0 + (x + 1) * side / size);
                double acc = 0;
                for (int64_t sy = sy0; sy < sy1; ++sy)
                    for (int64_t sx = sx0; sx < sx1; ++sx) acc += px[(sy * w + sx) * channels + ch];
                out[static_cast<size_t>((ch * size + y) * size + x)] =
                    static_cast<uint8_t>(std::lround(acc / double((sy1 - sy0) * (sx1 - sx0))));
            }
    stbi_image_free(px);
    return out;
}

namespace {
bool is_image_file(const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

// Classes of an image folder: the first-level sub-folders, in sorted order, when every image lies
// in one (DIR/CLASS/.../*.png); none when some image lies directly in DIR.
void label_by_folder(Dataset& d, const std::string& dir, const std::vector<std::string>& paths) {
    std::vector<std::string> folder(paths.size());
    for (size_t i = 0; i < paths.size(); ++i) {
        const fs::path rel = fs::path(paths[i]).lexically_relative(dir);
        if (std::distance(rel.begin(), rel.end()) < 2) return;  // an image directly in DIR: no classes
        folder[i] = rel.begin()->string();
    }
    std::vector<std::string> names = folder;
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    if (names.size() > 256)
        throw DataError(fmt::format("{}: {} class folders; at most 256 classes are supported", dir, names.size()));
    for (const std::string& f : folder)
        d.labels.push_back(static_cast<uint8_t>(std::lower_bound(names.begin(), names.end(), f) - names.begin()));
    d.class_names = std::move(names);
}
}  // namespace

Dataset read_image_folder(const std::string& dir, int64_t size, int64_t channels) {
    if (!fs::is_directory(dir)) throw DataError(fmt::format("{}: not a folder", dir));
    std::vector<std::string> paths;
    for (auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file() && is_image_file(e.path())) paths.push_back(e.path().string());
    std::sort(paths.begin(), paths.end());
    if (paths.empty()) throw DataError(fmt::format("{}: no .png, .jpg or .jpeg files", dir));
    Dataset d;
    d.channels = channels, d.height = d.width = size;
    for (const std::string& p : paths) {
        std::vector<uint8_t> px = decode_image(read_file_bytes(p, kMaxImageFileBytes), p, size, channels);
        d.pixels.insert(d.pixels.end(), px.begin(), px.end());
        ++d.n;
    }
    label_by_folder(d, dir, paths);
    d.description = fmt::format("{} ({} images{}, centre-cropped to {}x{})", dir, d.n,
                                d.labels.empty() ? "" : fmt::format(" in {} class folders", d.class_names.size()), size, size);
    return d;
}

namespace {
// The label file beside an IDX image file, when there is one: its count must be the image count.
void attach_idx_labels(Dataset& d, const std::string& root, const std::string& prefix, bool fashion) {
    std::string path;
    for (const std::string& f : {prefix + "-labels-idx1-ubyte.gz", prefix + "-labels-idx1-ubyte", prefix + "-labels.idx1-ubyte"})
        if (fs::exists(fs::path(root) / f)) path = (fs::path(root) / f).string();
    if (path.empty()) return;
    d.labels = parse_idx_labels(read_maybe_gz(path, kMaxDatasetBytes), path, 10);
    if (static_cast<int64_t>(d.labels.size()) != d.n)
        throw DataError(fmt::format("{}: {} labels for the {} images of {}", path, d.labels.size(), d.n, d.description));
    if (fashion)
        d.class_names = {"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"};
    else
        d.class_names = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
}
}  // namespace

Dataset load_dataset(const std::string& spec, Split split, int64_t channels, int64_t size) {
    const size_t colon = spec.find(':');
    const std::string kind = spec.substr(0, colon), dir = colon == std::string::npos ? "" : spec.substr(colon + 1);
    Dataset d;
    if (kind == "fashion-mnist" || kind == "mnist") {
        const std::string root = dir.empty() ? (kind == "fashion-mnist" ? kFashionDir : "") : dir;
        if (root.empty()) throw DataError("--data mnist:DIR needs the folder of the IDX files");
        if (!fs::is_directory(root))
            throw DataError(fmt::format("{}: no such folder{}", root,
                                        root == kFashionDir ? " (install Debian's dataset-fashion-mnist)" : ""));
        const std::string prefix = split == Split::Train ? "train" : "t10k";
        d = read_idx_images(find_file(root, {prefix + "-images-idx3-ubyte.gz", prefix + "-images-idx3-ubyte",
                                             prefix + "-images.idx3-ubyte"}));
        attach_idx_labels(d, root, prefix, kind == "fashion-mnist");
    } else if (kind == "cifar10") {
        if (dir.empty()) throw DataError("--data cifar10:DIR needs the folder of the binary batches");
        d = read_cifar10(dir, split);
        d.class_names = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
    } else if (kind == "images") {
        if (dir.empty()) throw DataError("--data images:DIR needs a folder");
        return read_image_folder(dir, size, channels);  // resized on load; no test split
    } else {
        throw DataError(fmt::format("unknown --data '{}' (fashion-mnist[:DIR], mnist:DIR, cifar10:DIR, images:DIR)", spec));
    }
    if (d.height != size || d.width != size)
        throw DataError(fmt::format("{} holds {}x{} images but the model takes {}x{}", d.description, d.height, d.width,
                                    size, size));
    return convert_channels(std::move(d), channels);
}

BatchLoader::BatchLoader(const Dataset& data, int64_t batch, uint64_t seed, bool flip, int64_t shard, int64_t shards)
    : data_(data), batch_(batch), seed_(seed), flip_(flip), shard_(shard), shards_(shards) {
    if (data.n <= 0) throw DataError("empty dataset");
    if (shards < 1 || shard < 0 || shard >= shards || batch % shards != 0)
        throw DataError(fmt::format("a batch of {} does not split into {} equal shards", batch, shards));
    worker_ = std::thread([this] {
        omp_set_num_threads(1);  // the training threads own the cores; this one only copies bytes
        std::unique_lock<std::mutex> lock(mu_);
        for (;;) {
            cv_.wait(lock, [this] { return stop_ || (wanted_k_ >= 0 && wanted_k_ != ready_k_); });
            if (stop_) return;
            const int64_t k = wanted_k_;
            lock.unlock();
            Tensor t = make(k);
            lock.lock();
            if (wanted_k_ == k) {
                ready_ = std::move(t);
                ready_k_ = k;
                cv_.notify_all();
            }
        }
    });
}

BatchLoader::~BatchLoader() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
}

// Epoch e visits the images in a Fisher-Yates permutation drawn from its own stream.
const std::vector<int64_t>& BatchLoader::permutation(int64_t epoch) const {
    if (epoch != perm_epoch_) {
        const int64_t N = data_.n;
        perm_.resize(static_cast<size_t>(N));
        for (int64_t j = 0; j < N; ++j) perm_[j] = j;
        Generator g(seed_ + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(epoch + 1));
        Tensor u = rand({N}, g, DType::F64);
        const double* pu = u.data<double>();
        for (int64_t j = N - 1; j > 0; --j) std::swap(perm_[j], perm_[static_cast<int64_t>(pu[j] * (j + 1)) % (j + 1)]);
        perm_epoch_ = epoch;
    }
    return perm_;
}

Tensor dataset_images(const Dataset& data, int64_t begin, int64_t end) {
    if (begin < 0 || end > data.n || begin > end)
        throw std::invalid_argument(fmt::format("images [{}, {}) of a data set of {}", begin, end, data.n));
    Tensor out(Shape{end - begin, data.channels, data.height, data.width}, DType::F32);
    const uint8_t* src = data.pixels.data() + begin * data.image_bytes();
    float* dst = out.data<float>();
    for (int64_t i = 0; i < out.numel(); ++i) dst[i] = src[i] / 127.5f - 1.0f;
    return out;
}

// Image i of batch k of this shard: position k B + shard b + i of the endless run of epochs.
int64_t BatchLoader::image_at(int64_t k, int64_t i) const {
    const int64_t idx = k * batch_ + shard_ * (batch_ / shards_) + i, N = data_.n;
    std::lock_guard<std::mutex> lock(perm_mu_);
    return permutation(idx / N)[static_cast<size_t>(idx % N)];
}

Tensor BatchLoader::labels(int64_t k) const {
    if (data_.labels.empty()) throw DataError(data_.description + ": has no labels");
    const int64_t b = batch_ / shards_;
    Tensor out(Shape{b}, DType::F32);
    for (int64_t i = 0; i < b; ++i) out.set_flat(i, data_.labels[static_cast<size_t>(image_at(k, i))]);
    return out;
}

Tensor BatchLoader::make(int64_t k) const {
    const int64_t B = batch_, bytes = data_.image_bytes();
    const int64_t H = data_.height, W = data_.width, C = data_.channels;
    const int64_t b = B / shards_, first = shard_ * b;  // this shard's images of the global batch
    Tensor out(Shape{b, C, H, W}, DType::F32);
    float* po = out.data<float>();
    Generator flips(seed_ ^ 0xF1F1F1F1F1F1F1F1ull);
    flips.set_state(flips.seed(), static_cast<uint64_t>(k) * static_cast<uint64_t>((B + 3) / 4));
    Tensor coin = rand({B}, flips, DType::F64);
    for (int64_t i = 0; i < b; ++i) {
        const int64_t image = image_at(k, i);
        const uint8_t* src = data_.pixels.data() + image * bytes;
        float* dst = po + i * bytes;
        const bool mirror = flip_ && coin.flat(first + i) < 0.5;
        for (int64_t c = 0; c < C; ++c)
            for (int64_t y = 0; y < H; ++y)
                for (int64_t x = 0; x < W; ++x)
                    dst[(c * H + y) * W + x] = src[(c * H + y) * W + (mirror ? W - 1 - x : x)] / 127.5f - 1.0f;
    }
    return out;
}

Tensor BatchLoader::get(int64_t k) {
    Tensor t;
    {
        std::unique_lock<std::mutex> lock(mu_);
        if (wanted_k_ == k) cv_.wait(lock, [&] { return ready_k_ == k; });
        if (ready_k_ == k) t = std::move(ready_);
        wanted_k_ = k + 1;  // start on the next one
    }
    cv_.notify_all();
    return t.defined() ? t : make(k);
}

}  // namespace ddpm
