// make_corpus.cpp: writes the seed corpus of the fuzz harnesses (fuzz/corpus/<harness>/),
// one small valid file of each kind, using our own writers.
// Run: build/fuzz/fuzz_make_corpus fuzz/corpus
#include <fmt/format.h>
#include <stb/stb_image_write.h>

#include <filesystem>
#include <fstream>

#include "app/data.h"
#include "app/image_io.h"
#include "fuzz_common.h"
#include "nn/checkpoint.h"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {
void put(const fs::path& p, const std::string& bytes) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
}
std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
}  // namespace

int main(int argc, char** argv) {
    const fs::path root = argc > 1 ? argv[1] : "fuzz/corpus";
    // IDX: 3 images of 4x5, plain and gzipped.
    std::string idx;
    for (uint32_t v : {0x803u, 3u, 4u, 5u})
        for (int s = 24; s >= 0; s -= 8) idx += static_cast<char>((v >> s) & 0xff);
    for (int i = 0; i < 60; ++i) idx += static_cast<char>(i * 4);
    put(root / "idx/three_4x5.idx", idx);
    put(root / "idx/three_4x5.idx.gz", gzip_bytes(idx));
    // CIFAR-10: two records.
    std::string cifar;
    for (int r = 0; r < 2; ++r) {
        cifar += static_cast<char>(r + 1);
        for (int i = 0; i < 3072; ++i) cifar += static_cast<char>((i * 7 + r) % 256);
    }
    put(root / "cifar10/two_records.bin", cifar);
    // Images: a gray and an RGB PNG (the first byte of each input picks size and channels).
    for (int64_t c : {1, 3}) {
        Image img(12, 9, c);
        for (int64_t y = 0; y < 9; ++y)
            for (int64_t x = 0; x < 12; ++x)
                for (int64_t k = 0; k < c; ++k) img.at(x, y)[k] = static_cast<uint8_t>(x * 20 + y * 3 + k * 50);
        const fs::path tmp = root / "image/tmp.png";
        fs::create_directories(tmp.parent_path());
        write_png(tmp.string(), img);
        put(root / fmt::format("image/{}ch_12x9.png", c), std::string(1, char(16 + c)) + read(tmp));
        fs::remove(tmp);
        const fs::path jpg = root / "image/tmp.jpg";
        stbi_write_jpg(jpg.c_str(), 12, 9, static_cast<int>(c), img.pixels.data(), 90);
        put(root / fmt::format("image/{}ch_12x9.jpg", c), std::string(1, char(16 + c)) + read(jpg));
        fs::remove(jpg);
    }
    // Configs: the presets and the fuzz model.
    for (const char* name : {"tiny", "small", "cifar10"}) put(root / fmt::format("config/{}.json", name), UNetConfig::preset(name).to_json().dump(1));
    put(root / "config/fuzz.json", fuzz::small_model_config().to_json().dump());
    // Regressions: inputs that once crashed a harness (each also a test in tests/test_bad_inputs.cpp).
    put(root / "config/regression_number_overflow.json", R"({"gn_eps": 1e77777777771})");
    // Safetensors: a full training checkpoint of the fuzz model, and a plain two-tensor file.
    UNet model(fuzz::small_model_config());
    Adam adam(model.named_parameters(), AdamOptions{});
    EMA ema(model.named_parameters(), 0.999);
    Generator gen(1);
    TrainingState state{&model, &ema, &adam, 7, {{"train", &gen}}, {{"note", "seed"}}};
    fs::create_directories(root / "safetensors");
    save_checkpoint((root / "safetensors/checkpoint_fuzz.safetensors").string(), state);
    Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4}, DType::F64);
    save_safetensors((root / "safetensors/two_tensors.safetensors").string(), {{"a", a}, {"b", b}}, {{"k", "v"}});
    fmt::print("corpus written under {}\n", root.string());
    return 0;
}
