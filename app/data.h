// data.h: image datasets and the batch loader.
//
// Sources (the --data flag):
//   fashion-mnist[:DIR]  IDX files (.gz or raw), default /usr/share/datasets/fashion-mnist
//   mnist:DIR            the same format
//   cifar10:DIR          CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin)
//   images:DIR           a folder of PNG/JPEG files, centre-cropped and resized; with every image
//                        in a sub-folder (DIR/CLASS/*.png) the sub-folders are the classes
// Pixels are kept as bytes and scaled to [-1, 1] (x = p / 127.5 - 1) per batch.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tensor/tensor.h"

namespace ddpm {

// A bad or missing input file; the message names the file and what is wrong where.
struct DataError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Dataset {
    int64_t n = 0, channels = 0, height = 0, width = 0;
    std::vector<uint8_t> pixels;  // (n, channels, height, width)
    std::vector<uint8_t> labels;  // (n) class indices, or empty where the source has none
    std::vector<std::string> class_names;  // one per class when there are labels
    std::string description;
    int64_t image_bytes() const { return channels * height * width; }
};

enum class Split { Train, Test };

// Parses a --data spec and loads the split, converted to `channels` (gray <-> RGB)
// and checked (or, for image folders, resized) to size x size.
Dataset load_dataset(const std::string& spec, Split split, int64_t channels, int64_t size);

// Limits that keep a hostile header from driving an allocation.
inline constexpr size_t kMaxDatasetBytes = size_t(4) << 30;   // one IDX or CIFAR-10 file, after gunzip
inline constexpr size_t kMaxImageFileBytes = size_t(256) << 20;
inline constexpr int64_t kMaxImagePixels = int64_t(1) << 26;  // 8192 x 8192

// Readers, each validating sizes against the file before trusting a header. The
// parse_/decode_ functions work on bytes in memory (`name` is used in messages);
// the read_ functions add the file system. Every failure is a DataError.
Dataset parse_idx_images(const std::string& bytes, const std::string& name);  // magic 0x00000803
// An IDX label file (magic 0x00000801): one byte per image, each below `classes`.
std::vector<uint8_t> parse_idx_labels(const std::string& bytes, const std::string& name, int classes);
void parse_cifar10_batch(const std::string& bytes, const std::string& name, Dataset& into);  // appends records
std::vector<uint8_t> decode_image(const std::string& bytes, const std::string& name, int64_t size, int64_t channels);
Dataset read_idx_images(const std::string& path);
Dataset read_cifar10(const std::string& dir, Split split);
Dataset read_image_folder(const std::string& dir, int64_t size, int64_t channels);
std::string read_file_bytes(const std::string& path, size_t max_bytes);
std::string maybe_gunzip(std::string bytes, const std::string& name, size_t max_bytes);  // unchanged unless gzip magic
std::string gzip_bytes(const std::string& raw);  // the inverse (level 9), for tests and fuzz corpora
std::string read_maybe_gz(const std::string& path, size_t max_bytes);  // whole file, gunzipped if gzip

// Images [begin, end) of the data in file order, (end - begin, C, H, W) float32 in [-1, 1].
Tensor dataset_images(const Dataset& data, int64_t begin, int64_t end);

// Batches in a fixed order: batch k of the run is a pure function of (seed, k), so a
// resumed run sees the same batches. Each epoch is a fresh permutation of the data
// from the seed; with flip, each image is mirrored left-right with probability 1/2.
// A background thread prepares batch k+1 while batch k is used. With shards > 1
// (data-parallel ranks) this loader yields only images [shard*b, (shard+1)*b) of each
// global batch, b = batch / shards: together the shards are exactly the one-process batch.
class BatchLoader {
public:
    BatchLoader(const Dataset& data, int64_t batch, uint64_t seed, bool flip, int64_t shard = 0, int64_t shards = 1);
    ~BatchLoader();
    BatchLoader(const BatchLoader&) = delete;
    BatchLoader& operator=(const BatchLoader&) = delete;

    Tensor get(int64_t k);  // (batch / shards, C, H, W) float32 in [-1, 1]
    Tensor make(int64_t k) const;  // the same, computed on the calling thread
    Tensor labels(int64_t k) const;  // (batch / shards) the class of each image of batch k, as floats

private:
    const std::vector<int64_t>& permutation(int64_t epoch) const;  // cached, under perm_mu_
    int64_t image_at(int64_t k, int64_t i) const;                   // the data index of image i of batch k
    const Dataset& data_;
    int64_t batch_;
    uint64_t seed_;
    bool flip_;
    int64_t shard_, shards_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::thread worker_;
    int64_t ready_k_ = -1, wanted_k_ = -1;
    bool stop_ = false;
    Tensor ready_;
    mutable std::mutex perm_mu_;
    mutable int64_t perm_epoch_ = -1;
    mutable std::vector<int64_t> perm_;
};

}  // namespace ddpm
