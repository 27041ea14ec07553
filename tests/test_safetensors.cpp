// safetensors: the byte layout, bit-exact round trips, hostile files, checkpoints.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "helpers.h"
#include "nn/checkpoint.h"
#include "tensor/random.h"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir() {
    fs::path d = fs::temp_directory_path() / ("ddpm_test_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
}
std::string le64(uint64_t n) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return s;
}
std::string file_with_header(const std::string& json, const std::string& data) { return le64(json.size()) + json + data; }
}  // namespace

TEST_CASE("the byte layout of a small file") {
    Tensor t = Tensor::from_data({1, 2}, {2}, DType::F32);
    std::string bytes = safetensors_serialize({{"w", t}}, {{"k", "v"}});
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
    CHECK(n % 8 == 0);
    const std::string header = bytes.substr(8, n);
    CHECK(header.rfind(R"({"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 0) == 0);
    CHECK(bytes.size() == 8 + n + 8);
    float f[2];
    std::memcpy(f, bytes.data() + 8 + n, 8);
    CHECK(f[0] == 1.0f);
    CHECK(f[1] == 2.0f);
}

TEST_CASE("round trip is bit-exact for F32 and F64, with metadata and order kept") {
    Generator gen(4);
    NamedTensors in = {{"b.weight", randn({3, 4, 3, 3}, gen)}, {"a", randn({7}, gen, DType::F64)},
                       {"scalar", Tensor::scalar(3.5)}, {"empty", Tensor::zeros({0, 4})}};
    fs::path p = temp_dir() / "rt.safetensors";
    save_safetensors(p.string(), in, {{"config", R"({"x":1})"}});
    SafeTensors out = load_safetensors(p.string());
    REQUIRE(out.tensors.size() == in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        CHECK(out.tensors[i].first == in[i].first);
        CHECK(out.tensors[i].second.shape() == in[i].second.shape());
        CHECK(out.tensors[i].second.dtype() == in[i].second.dtype());
        CHECK(std::memcmp(out.tensors[i].second.raw_data(), in[i].second.raw_data(), in[i].second.nbytes()) == 0);
    }
    CHECK(out.metadata.at("config") == R"({"x":1})");
    fs::remove_all(p.parent_path());
}

TEST_CASE("malformed files are refused with an error that says what and where") {
    const std::string good = safetensors_serialize({{"w", Tensor::from_data({1, 2, 3}, {3})}}, {});
    // Truncated at every length: always an error, never a crash.
    for (size_t len = 0; len < good.size(); ++len) CHECK_THROWS_AS(safetensors_parse(good.substr(0, len), "t"), FormatError);
    CHECK_NOTHROW(safetensors_parse(good, "t"));
    auto msg = [](const std::string& bytes) {
        try {
            safetensors_parse(bytes, "f.safetensors");
        } catch (const FormatError& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    const std::string data(12, '\0');
    CHECK(msg("abc") == "f.safetensors: file is 3 bytes, shorter than the 8-byte header length");
    CHECK(msg(le64(1000) + "{}") == "f.safetensors: header length 1000 (bytes 0-7) runs past the end of the 10-byte file");
    CHECK(msg(le64(uint64_t(1) << 60) + "{}").find("over the") != std::string::npos);
    CHECK(msg(file_with_header("{\"w\": [1,", data)).find("not valid JSON at byte") != std::string::npos);
    CHECK(msg(file_with_header("[1,2]", "")) == "f.safetensors: header is not a JSON object");
    CHECK(msg(file_with_header(R"({"w":{"dtype":"BF16","shape":[6],"data_offsets":[0,12]}})", data)) ==
          "f.safetensors: tensor 'w' has dtype BF16; only F32 and F64 are supported");
    CHECK(msg(file_with_header(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data)) ==
          "f.safetensors: tensor 'w': data_offsets [0, 16] out of range (data section is 12 bytes)");
    CHECK(msg(file_with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", data)).find("needs 8") !=
          std::string::npos);
    CHECK(msg(file_with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                               data))
              .find("overlaps") != std::string::npos);
    CHECK(msg(file_with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data)).find("gap") !=
          std::string::npos);
    CHECK(msg(file_with_header(R"({"a":{"dtype":"F32","shape":[-3],"data_offsets":[0,12]}})", data)).find("negative") !=
          std::string::npos);
    CHECK(msg(file_with_header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,12]}})", data))
              .find("larger than the file") != std::string::npos);
    CHECK(msg(file_with_header(R"({"a":{"dtype":"F32","data_offsets":[0,12]}})", data)) ==
          "f.safetensors: tensor 'a' has no 'shape'");
    CHECK(msg(file_with_header(R"({"__metadata__":{"k":1}})", "")) == "f.safetensors: __metadata__.k is not a string");
    CHECK_THROWS_AS(load_safetensors("/nonexistent/x.safetensors"), FormatError);
}

TEST_CASE("a failed write leaves the previous file intact") {
    fs::path d = temp_dir();
    fs::path p = d / "keep.safetensors";
    save_safetensors(p.string(), {{"w", Tensor::ones({2})}});
    const auto before = fs::file_size(p);
    CHECK_THROWS_AS(save_safetensors((d / "missing_dir" / "x.safetensors").string(), {{"w", Tensor::ones({2})}}),
                    FormatError);
    CHECK(fs::file_size(p) == before);
    // No temporary files are left behind.
    int entries = 0;
    for (auto& e : fs::directory_iterator(d)) entries += e.is_regular_file();
    CHECK(entries == 1);
    fs::remove_all(d);
}

TEST_CASE("training checkpoints: weights, EMA, Adam moments, step and RNG state round-trip") {
    UNetConfig cfg = UNetConfig::preset("tiny");
    UNet model(cfg, InitScheme::DDPM, 1);
    Adam adam(model.named_parameters(), AdamOptions{});
    EMA ema(model.named_parameters(), 0.999);
    Generator data_rng(77);
    randn({10}, data_rng);
    for (auto& [name, p] : model.named_parameters()) p.set_grad(Tensor::ones(p.shape(), p.dtype()));
    adam.step();
    ema.update();
    fs::path path = temp_dir() / "ckpt.safetensors";
    TrainingState s{&model, &ema, &adam, 1, {{"data", &data_rng}, {"dropout", &model.dropout_generator()}}, {{"note", "hi"}}};
    save_checkpoint(path.string(), s);

    SafeTensors st = load_safetensors(path.string());
    UNetConfig back = checkpoint_config(st, path.string());
    CHECK(back.to_json() == cfg.to_json());
    UNet model2(back, InitScheme::DDPM, 999);
    Adam adam2(model2.named_parameters(), AdamOptions{});
    EMA ema2(model2.named_parameters(), 0.999);
    Generator data2(0);
    TrainingState s2{&model2, &ema2, &adam2, 0, {{"data", &data2}, {"dropout", &model2.dropout_generator()}}, {}};
    restore_checkpoint(st, s2, path.string());
    CHECK(s2.step == 1);
    CHECK(s2.extra.at("note") == "hi");
    CHECK(adam2.steps() == 1);
    CHECK(ema2.updates() == 1);
    CHECK(data2.offset() == data_rng.offset());
    auto p1 = model.named_parameters(), p2 = model2.named_parameters();
    for (size_t i = 0; i < p1.size(); ++i) {
        CHECK(std::memcmp(p1[i].second.data().raw_data(), p2[i].second.data().raw_data(), p1[i].second.data().nbytes()) == 0);
        CHECK(std::memcmp(adam.exp_avg_sq()[i].raw_data(), adam2.exp_avg_sq()[i].raw_data(), adam.exp_avg_sq()[i].nbytes()) == 0);
        CHECK(std::memcmp(ema.shadow()[i].raw_data(), ema2.shadow()[i].raw_data(), ema.shadow()[i].nbytes()) == 0);
    }
    bool used_ema = false;
    auto loaded = load_model(path.string(), true, &used_ema);
    CHECK(used_ema);
    CHECK(loaded->num_parameters() == 176849);

    // A file whose optimiser section is damaged is refused before anything is copied.
    {
        SafeTensors bad = st;
        for (auto& [name, t] : bad.tensors)
            if (name == "optim.exp_avg_sq.conv_out.bias") t = Tensor::zeros({2});
        UNet fresh(back, InitScheme::DDPM, 5);
        Adam fresh_adam(fresh.named_parameters(), AdamOptions{});
        const Tensor before = fresh.named_parameters()[0].second.data().clone();
        TrainingState s3{&fresh, nullptr, &fresh_adam, 0, {}, {}};
        CHECK_THROWS_AS(restore_checkpoint(bad, s3, "bad"), FormatError);
        CHECK(std::memcmp(before.raw_data(), fresh.named_parameters()[0].second.data().raw_data(), before.nbytes()) == 0);
        CHECK(fresh_adam.steps() == 0);
    }

    // A checkpoint of another config is refused, naming the tensor.
    UNet small(UNetConfig::preset("small"));
    try {
        load_state_dict(small, st, "model.", "ckpt");
        FAIL("expected an error");
    } catch (const FormatError& e) {
        CHECK(std::string(e.what()).find("ckpt: tensor 'model.") != std::string::npos);
    }
    fs::remove_all(path.parent_path());
}
