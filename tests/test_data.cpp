// Data readers on hand-made files, and the batch loader's determinism.
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <functional>
#include <fstream>

#include "app/data.h"
#include "app/image_io.h"
#include "helpers.h"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {
std::string idx_bytes(uint32_t magic, uint32_t n, uint32_t h, uint32_t w, size_t payload) {
    std::string b;
    for (uint32_t v : {magic, n, h, w})
        for (int s = 24; s >= 0; s -= 8) b += static_cast<char>((v >> s) & 0xff);
    for (size_t i = 0; i < payload; ++i) b += static_cast<char>(i % 256);
    return b;
}
void write(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }
std::string message(const std::function<void()>& f) { return test::error_message<DataError>(f); }
}  // namespace

TEST_CASE("IDX images: plain and gzipped files read, bad headers are refused by name and byte") {
    fs::path d = test::fresh_dir("ddpm_data", "idx");
    write(d / "ok", idx_bytes(0x803, 3, 2, 2, 12));
    Dataset ds = read_idx_images((d / "ok").string());
    CHECK(ds.n == 3);
    CHECK(ds.height == 2);
    CHECK(ds.pixels[5] == 5);
    gzFile gz = gzopen((d / "ok.gz").c_str(), "wb");
    const std::string raw = idx_bytes(0x803, 3, 2, 2, 12);
    gzwrite(gz, raw.data(), static_cast<unsigned>(raw.size()));
    gzclose(gz);
    CHECK(read_idx_images((d / "ok.gz").string()).pixels == ds.pixels);
    write(d / "magic", idx_bytes(0x801, 3, 2, 2, 12));
    CHECK(message([&] { read_idx_images((d / "magic").string()); }).find("magic 0x00000801 at byte 0") != std::string::npos);
    write(d / "short", idx_bytes(0x803, 3, 2, 2, 11));
    CHECK(message([&] { read_idx_images((d / "short").string()); }).find("promises 3 images of 2x2 (12 bytes) but 11") !=
          std::string::npos);
    write(d / "huge", idx_bytes(0x803, 0xffffffff, 4096, 4096, 0));
    CHECK(message([&] { read_idx_images((d / "huge").string()); }) != "no error");
    write(d / "tiny", "abc");
    CHECK(message([&] { read_idx_images((d / "tiny").string()); }).find("shorter than the 16-byte") != std::string::npos);
    write(d / "bad.gz", std::string("\x1f\x8b\x08\x00garbage", 11));
    CHECK(message([&] { read_idx_images((d / "bad.gz").string()); }) != "no error");
    CHECK(message([&] { read_idx_images((d / "missing").string()); }).find("no such file") != std::string::npos);
}

TEST_CASE("CIFAR-10 binary batches and image folders") {
    fs::path d = test::fresh_dir("ddpm_data", "cifar");
    std::string rec;
    for (int r = 0; r < 2; ++r) {
        rec += static_cast<char>(r + 3);
        for (int i = 0; i < 3072; ++i) rec += static_cast<char>((i + r) % 256);
    }
    write(d / "test_batch.bin", rec);
    Dataset c = load_dataset("cifar10:" + d.string(), Split::Test, 3, 32);
    CHECK(c.n == 2);
    CHECK(c.channels == 3);
    CHECK(c.pixels[3072 + 1] == 2);
    Dataset gray = load_dataset("cifar10:" + d.string(), Split::Test, 1, 32);
    CHECK(gray.channels == 1);
    write(d / "test_batch.bin", rec.substr(0, 3000));
    CHECK(message([&] { load_dataset("cifar10:" + d.string(), Split::Test, 3, 32); }).find("whole number of") != std::string::npos);
    CHECK(message([&] { load_dataset("cifar10:" + d.string(), Split::Train, 3, 32); }).find("data_batch_1.bin") != std::string::npos);

    fs::path f = test::fresh_dir("ddpm_data", "images");
    Image img(40, 20, 3);  // wide: the centre 20x20 is cropped
    for (int64_t y = 0; y < 20; ++y)
        for (int64_t x = 0; x < 40; ++x) img.at(x, y)[0] = img.at(x, y)[1] = img.at(x, y)[2] = x < 10 || x >= 30 ? 0 : 200;
    write_png((f / "a.png").string(), img);
    Dataset im = load_dataset("images:" + f.string(), Split::Train, 1, 10);
    CHECK(im.n == 1);
    CHECK(im.height == 10);
    CHECK(int(im.pixels[0]) == 200);  // only the bright centre survives the crop
    write(f / "broken.png", "not a png");
    CHECK(message([&] { load_dataset("images:" + f.string(), Split::Train, 1, 10); }).find("broken.png") != std::string::npos);
    CHECK(message([&] { load_dataset("images:" + (f / "none").string(), Split::Train, 1, 10); }).find("not a folder") !=
          std::string::npos);
    CHECK(message([&] { load_dataset("pictures:/x", Split::Train, 1, 10); }).find("unknown --data") != std::string::npos);
}

TEST_CASE("batches are a function of (seed, k): prefetching, order and flips are reproducible") {
    Dataset d;
    d.n = 10, d.channels = 1, d.height = 1, d.width = 2;
    for (int i = 0; i < 10; ++i) d.pixels.push_back(static_cast<uint8_t>(i)), d.pixels.push_back(static_cast<uint8_t>(100 + i));
    BatchLoader a(d, 4, 7, true), b(d, 4, 7, true);
    std::vector<int> seen(10, 0);
    for (int64_t k = 0; k < 5; ++k) {  // 20 images: two full epochs
        Tensor x = a.get(k), y = b.make(k);
        CHECK(test::max_abs_diff(x, y) == 0);
        for (int64_t i = 0; i < 4; ++i) {
            const double p0 = (x.flat(2 * i) + 1) * 127.5, p1 = (x.flat(2 * i + 1) + 1) * 127.5;
            const int id = static_cast<int>(std::lround(std::min(p0, p1)));
            CHECK(std::lround(std::max(p0, p1)) == 100 + id);  // a whole image, maybe mirrored
            seen[static_cast<size_t>(id)]++;
        }
    }
    for (int s : seen) CHECK(s == 2);  // each epoch is a permutation
    BatchLoader other(d, 4, 8, true);
    CHECK(test::max_abs_diff(other.make(0), a.make(0)) > 0);
}

TEST_CASE("labels: image folders give classes by sub-folder, IDX label files must match their images, batches carry them") {
    fs::path f = test::fresh_dir("ddpm_data", "classes");
    Image img(4, 4, 1);
    for (const char* p : {"boot/a.png", "boot/b.png", "hat/x/c.png", "coat/d.png"}) {
        fs::create_directories((f / p).parent_path());
        img.pixels.assign(16, static_cast<uint8_t>(std::string(p)[0]));  // each image's pixels name its class
        write_png((f / p).string(), img);
    }
    Dataset d = load_dataset("images:" + f.string(), Split::Train, 1, 4);
    CHECK(d.class_names == std::vector<std::string>{"boot", "coat", "hat"});  // sorted; nested files count for their top folder
    CHECK(d.labels == std::vector<uint8_t>{0, 0, 1, 2});                       // files in path order
    CHECK(d.description.find("in 3 class folders") != std::string::npos);
    // A batch's labels are those of its images, in the loader's shuffled order.
    BatchLoader loader(d, 3, 5, false);
    for (int64_t k = 0; k < 4; ++k) {
        const Tensor x = loader.make(k), y = loader.labels(k);
        for (int64_t i = 0; i < 3; ++i) {
            const char first = static_cast<char>(std::lround((x.flat(i * 16) + 1) * 127.5));
            CHECK(d.class_names[static_cast<size_t>(y.flat(i))][0] == first);
        }
    }
    // An image directly in the folder: no classes (a class-conditional run then refuses the data).
    write_png((f / "loose.png").string(), img);
    CHECK(load_dataset("images:" + f.string(), Split::Train, 1, 4).labels.empty());

    // Fashion-MNIST layout with a label file of the wrong count: refused, naming both.
    fs::path m = test::fresh_dir("ddpm_data", "idx_labels");
    write(m / "t10k-images-idx3-ubyte", idx_bytes(0x803, 3, 28, 28, 3 * 784));
    std::string lab;
    for (uint32_t v : {0x801u, 2u})
        for (int s = 24; s >= 0; s -= 8) lab += static_cast<char>((v >> s) & 0xff);
    write(m / "t10k-labels-idx1-ubyte", lab + std::string("\x01\x02", 2));
    CHECK(message([&] { load_dataset("mnist:" + m.string(), Split::Test, 1, 28); }).find("2 labels for the 3 images") !=
          std::string::npos);
    write(m / "t10k-labels-idx1-ubyte", lab.substr(0, 7) + std::string("\x03\x01\x02\x07", 4));
    const Dataset ok = load_dataset("mnist:" + m.string(), Split::Test, 1, 28);
    CHECK(ok.labels == std::vector<uint8_t>{1, 2, 7});
    CHECK(ok.class_names.size() == 10);
    CHECK(message([&] { BatchLoader(load_dataset("images:" + f.string(), Split::Train, 1, 4), 2, 0, false).labels(0); })
              .find("has no labels") != std::string::npos);
}
