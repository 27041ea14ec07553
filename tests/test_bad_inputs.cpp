// Hand-made bad files for every reader: truncated at each section boundary, wrong
// magic, sizes past the end, absurd or negative counts, NaN and overflowing numbers.
// Each must give one error naming the input and what is wrong, never a crash or a
// silent wrong result. Inputs the fuzzers found are at the end (fuzz/ has the harnesses).
#include <filesystem>
#include <fstream>
#include <functional>

#include "app/data.h"
#include "app/image_io.h"
#include "helpers.h"
#include "nn/checkpoint.h"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string be32(uint32_t v) {
    std::string b;
    for (int s = 24; s >= 0; s -= 8) b += static_cast<char>((v >> s) & 0xff);
    return b;
}
std::string idx_file(uint32_t magic, uint32_t n, uint32_t h, uint32_t w, size_t payload) {
    std::string b = be32(magic) + be32(n) + be32(h) + be32(w);
    for (size_t i = 0; i < payload; ++i) b += static_cast<char>(i * 7);
    return b;
}
std::string png_bytes(int64_t w, int64_t h, int64_t c) {
    const fs::path p = fs::temp_directory_path() / "ddpm_bad_inputs.png";
    Image img(w, h, c, 100);
    write_png(p.string(), img);
    std::ifstream in(p, std::ios::binary);
    std::string b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    fs::remove(p);
    return b;
}
// Offsets where each PNG chunk starts (after the 8-byte signature).
std::vector<size_t> png_chunk_starts(const std::string& png) {
    std::vector<size_t> at;
    for (size_t p = 8; p + 8 <= png.size();) {
        at.push_back(p);
        const uint32_t len = (uint32_t(uint8_t(png[p])) << 24) | (uint32_t(uint8_t(png[p + 1])) << 16) |
                             (uint32_t(uint8_t(png[p + 2])) << 8) | uint32_t(uint8_t(png[p + 3]));
        p += 12 + len;
    }
    return at;
}
}  // namespace

TEST_CASE("IDX: truncated at every byte and section boundary, bad magic, absurd counts, broken gzip") {
    const std::string good = idx_file(0x803, 3, 4, 5, 60);
    REQUIRE(parse_idx_images(good, "f.idx").n == 3);
    for (size_t len = 0; len < good.size(); ++len) {
        const std::string e = test::error_message<DataError>([&] { parse_idx_images(good.substr(0, len), "f.idx"); });
        INFO("truncated to " << len << " bytes: " << e);
        CHECK(has(e, "f.idx: "));
        CHECK(has(e, len < 16 ? "shorter than the 16-byte IDX image header" : "but " + std::to_string(len - 16) + " bytes follow"));
    }
    CHECK(has(test::error_message<DataError>([&] { parse_idx_images(idx_file(0x801, 3, 4, 5, 60), "f.idx"); }),
              "f.idx: magic 0x00000801 at byte 0, expected 0x00000803"));
    CHECK(has(test::error_message<DataError>([&] { parse_idx_images(idx_file(0x803, 0, 4, 5, 0), "f.idx"); }), "holds no images"));
    CHECK(has(test::error_message<DataError>([&] { parse_idx_images(idx_file(0x803, 1, 0, 5, 0), "f.idx"); }), "image size 0x5 (bytes 8-15)"));
    // 2^32-1 images of 4096x4096 claimed by a 16-byte file: refused before any allocation.
    CHECK(has(test::error_message<DataError>([&] { parse_idx_images(idx_file(0x803, 0xffffffffu, 4096, 4096, 0), "f.idx"); }),
              "header promises 4294967295 images"));
    CHECK(has(test::error_message<DataError>([&] { parse_idx_images(good + "x", "f.idx"); }), "but 61 bytes follow"));

    const std::string gz = gzip_bytes(good);
    CHECK(maybe_gunzip(gz, "f.gz", 1000) == good);
    for (size_t len = 2; len < gz.size(); ++len) {
        const std::string e = test::error_message<DataError>([&] { maybe_gunzip(gz.substr(0, len), "f.gz", 1000); });
        INFO("gzip truncated to " << len << " bytes: " << e);
        CHECK(has(e, "f.gz: corrupt gzip data at compressed byte"));
    }
    std::string flipped = gz;
    flipped[gz.size() - 6] ^= 0x55;  // the CRC-32 in the trailer
    CHECK(has(test::error_message<DataError>([&] { maybe_gunzip(flipped, "f.gz", 1000); }), "corrupt gzip data"));
    // A gzip bomb: 10 MB of zeros in a few kB is cut off at the limit.
    CHECK(has(test::error_message<DataError>([&] { maybe_gunzip(gzip_bytes(std::string(10 << 20, '\0')), "bomb.gz", 1 << 20); }),
              "bomb.gz: inflates to more than 1048576 bytes"));
    CHECK(has(test::error_message<DataError>([&] { read_maybe_gz("/nonexistent/x.gz", 100); }), "/nonexistent/x.gz: no such file"));
    CHECK(has(test::error_message<DataError>([&] { read_maybe_gz(fs::temp_directory_path().string(), 100); }), "not a regular file"));
}

TEST_CASE("CIFAR-10: partial records, bad labels, an empty file") {
    std::string rec(3073, '\x05');
    rec[0] = 9;
    Dataset d;
    parse_cifar10_batch(rec + rec, "b.bin", d);
    CHECK(d.n == 2);
    for (size_t len : {size_t(0), size_t(1), size_t(3072), size_t(3074), size_t(6145)}) {
        Dataset e;
        const std::string msg = test::error_message<DataError>([&] { parse_cifar10_batch((rec + rec).substr(0, len), "b.bin", e); });
        INFO(len << ": " << msg);
        CHECK(has(msg, fmt::format("b.bin: {} bytes is not a whole number of 3073-byte records", len)));
    }
    std::string bad = rec + rec;
    bad[3073] = 10;
    Dataset e;
    CHECK(test::error_message<DataError>([&] { parse_cifar10_batch(bad, "b.bin", e); }) ==
          "b.bin: record 1 (byte 3073) has label 10, expected 0-9");
}

TEST_CASE("PNG and JPEG: truncated at every chunk, wrong magic, absurd declared size") {
    const std::string png = png_bytes(12, 9, 3);
    CHECK(decode_image(png, "a.png", 4, 3).size() == 48);
    const std::vector<size_t> chunks = png_chunk_starts(png);  // IHDR, IDAT..., IEND
    REQUIRE(chunks.size() >= 3);
    std::vector<size_t> cuts = {0, 4, 8};
    for (size_t c : chunks) cuts.insert(cuts.end(), {c, c + 4, c + 10});
    for (size_t len : cuts) {
        if (len >= png.size()) continue;
        const std::string e = test::error_message<DataError>([&] { decode_image(png.substr(0, len), "a.png", 4, 3); });
        INFO("truncated to " << len << " of " << png.size() << " bytes: " << e);
        // Before IEND every cut is refused with a reason; inside IEND stb_image may
        // accept the file, and then every pixel must be the right one.
        if (len < chunks.back() || e != "no error") {
            CHECK(has(e, "a.png: "));
            CHECK(!has(e, "()"));
        } else {
            CHECK(decode_image(png.substr(0, len), "a.png", 4, 3) == decode_image(png, "a.png", 4, 3));
        }
    }
    std::string magic = png;
    magic[1] = 'Q';
    CHECK(has(test::error_message<DataError>([&] { decode_image(magic, "a.png", 4, 3); }), "a.png: not a readable PNG or JPEG"));
    // IHDR claims 100000 x 100000 pixels: refused from the header, nothing allocated for it.
    std::string huge = png;
    const std::string side = be32(100000);
    huge.replace(16, 4, side);
    huge.replace(20, 4, side);
    const std::string e = test::error_message<DataError>([&] { decode_image(huge, "huge.png", 4, 3); });
    CHECK(has(e, "huge.png: "));
    CHECK(e != "no error");
    CHECK(has(test::error_message<DataError>([&] { decode_image("", "empty.jpg", 4, 3); }), "empty.jpg: not a readable PNG or JPEG"));
    CHECK(has(test::error_message<DataError>([&] { decode_image(png, "a.png", 0, 3); }), "cannot make 0x0 images"));
}

TEST_CASE("config JSON: NaN, overflowing numbers, wrong types, negative and absurd sizes") {
    auto msg = [](const std::string& text) { return test::error_message<std::invalid_argument>([&] { UNetConfig::parse(text, "c.json"); }); };
    const std::string tiny = UNetConfig::preset("tiny").to_json().dump();
    CHECK(UNetConfig::parse(tiny, "c.json").to_json() == UNetConfig::preset("tiny").to_json());
    CHECK(has(msg(R"({"dropout": NaN})"), "config c.json: bad JSON at byte"));
    CHECK(has(msg(R"({"gn_eps": 1e99999})"), "config c.json: unusable JSON"));  // found by fuzz_config
    CHECK(has(msg(R"({"dropout": 1.5})"), "dropout = 1.5 must be in [0, 1)"));
    CHECK(has(msg(R"({"channels": -32})"), "channels = -32 must be in [1, 4096]"));
    CHECK(has(msg(R"({"channels": 32.5})"), "field 'channels' = 32.5 is not an integer"));
    CHECK(has(msg(R"({"groups": "8"})"), "field 'groups' = \"8\" is not an integer"));
    CHECK(has(msg(R"({"ch_mult": [1, 2.5]})"), "is not a list of integers"));
    CHECK(has(msg(R"({"ch_mult": []})"), "ch_mult must have 1 to 8 levels"));
    CHECK(has(msg(R"({"attn_resolutions": [0]})"), "attention resolution 0"));
    CHECK(has(msg(R"({"colour": 3})"), "unknown field 'colour'"));
    CHECK(has(msg(R"({"channels": 4096, "ch_mult": [64, 64], "groups": 64, "image_size": 64})"), "more than 2^31"));
    CHECK(has(msg("[1, 2]"), "expected a JSON object"));
    CHECK(has(msg(""), "bad JSON at byte"));
    CHECK(has(test::error_message<std::invalid_argument>([&] { UNetConfig::load("/nonexistent/c.json"); }),
              "neither a preset (tiny, mini, small, cifar10) nor a readable file"));
}

TEST_CASE("safetensors and checkpoints: overflowing header numbers, section cuts, bad metadata") {
    UNetConfig c;
    c.image_size = 4, c.channels = 4, c.ch_mult = {1}, c.num_res_blocks = 1, c.attn_resolutions = {}, c.groups = 2;
    UNet model(c);
    Adam adam(model.named_parameters(), AdamOptions{});
    EMA ema(model.named_parameters(), 0.9);
    Generator g(3);
    TrainingState state{&model, &ema, &adam, 5, {{"train", &g}}, {}};
    const fs::path path = fs::temp_directory_path() / "ddpm_bad_ckpt.safetensors";
    save_checkpoint(path.string(), state);
    std::ifstream in(path, std::ios::binary);
    const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    fs::remove(path);
    const SafeTensors st = safetensors_parse(good, "k");
    CHECK(checkpoint_config(st, "k").to_json() == c.to_json());

    // Cut at each section boundary: inside the length, at the header's end, at each tensor's end.
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(good[static_cast<size_t>(i)]);
    std::vector<size_t> cuts = {0, 7, 8, 8 + n / 2, 8 + n};
    size_t end = 8 + n;
    for (const auto& [name, t] : st.tensors) cuts.push_back(end += static_cast<size_t>(t.nbytes()));
    REQUIRE(cuts.back() == good.size());
    cuts.pop_back();
    for (size_t len : cuts) {
        const std::string e = test::error_message<FormatError>([&] { safetensors_parse(good.substr(0, len), "k.safetensors"); });
        INFO("cut at " << len << ": " << e);
        CHECK(has(e, "k.safetensors: "));
    }
    // A header number too large for a double (found by fuzzing the config parser).
    const std::string header = R"({"w":{"dtype":"F32","shape":[1e99999],"data_offsets":[0,4]}})";
    std::string len8(8, '\0');
    for (int i = 0; i < 8; ++i) len8[static_cast<size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    CHECK(has(test::error_message<FormatError>([&] { safetensors_parse(len8 + header + "abcd", "o.safetensors"); }),
              "o.safetensors: header is not usable JSON"));

    // The config stored in a checkpoint is validated like a config file.
    SafeTensors bad = st;
    bad.metadata["config"] = R"({"channels": 4, "groups": 3})";
    CHECK(has(test::error_message<FormatError>([&] { checkpoint_config(bad, "k"); }), "k: __metadata__.config: level width 4 is not divisible into 3 groups"));
    bad.metadata["config"] = R"({"dropout": 1e99999})";
    CHECK(has(test::error_message<FormatError>([&] { checkpoint_config(bad, "k"); }), "k: __metadata__.config is not valid JSON"));
    bad = st;
    bad.metadata["step"] = "-x";
    CHECK(has(test::error_message<FormatError>([&] { restore_checkpoint(bad, state, "k"); }), "k: bad checkpoint metadata"));
    bad = st;
    bad.metadata["format"] = "other/1";
    CHECK(has(test::error_message<FormatError>([&] { checkpoint_config(bad, "k"); }),
              "k: not a ddpm.cpp file (__metadata__.format is 'other/1'"));
    // A file without a format is a model file written elsewhere: it needs its config.
    bad.metadata.erase("format");
    CHECK(checkpoint_config(bad, "k").channels == checkpoint_config(st, "k").channels);
    bad.metadata.erase("config");
    CHECK(has(test::error_message<FormatError>([&] { checkpoint_config(bad, "k"); }), "k: __metadata__ has no 'config'"));
}
