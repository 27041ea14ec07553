// image_io.cpp
#include "app/image_io.h"

#include <fmt/format.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "util/file_io.h"

namespace ddpm {

namespace {
[[noreturn]] void png_fail(png_structp, png_const_charp msg) { throw std::runtime_error(msg); }
void png_warn(png_structp, png_const_charp) {}

void append_bytes(png_structp png, png_bytep data, png_size_t n) {
    auto* out = static_cast<std::string*>(png_get_io_ptr(png));
    out->append(reinterpret_cast<const char*>(data), n);
}
void no_flush(png_structp) {}
}  // namespace

void write_png(const std::string& path, const Image& img) {
    if (img.channels != 1 && img.channels != 3) throw std::runtime_error(path + ": PNG needs 1 or 3 channels");
    std::string bytes;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, png_fail, png_warn);
    png_infop info = png_create_info_struct(png);
    try {
        png_set_write_fn(png, &bytes, append_bytes, no_flush);
        png_set_IHDR(png, info, static_cast<png_uint_32>(img.width), static_cast<png_uint_32>(img.height), 8,
                     img.channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (int64_t y = 0; y < img.height; ++y)
            png_write_row(png, const_cast<png_bytep>(img.pixels.data() + y * img.width * img.channels));
        png_write_end(png, nullptr);
    } catch (const std::runtime_error& e) {
        png_destroy_write_struct(&png, &info);
        throw std::runtime_error(fmt::format("{}: cannot encode PNG: {}", path, e.what()));
    }
    png_destroy_write_struct(&png, &info);
    try {
        write_file_atomic(path, bytes);
    } catch (const FormatError& e) {
        throw std::runtime_error(e.what());
    }
}

Image read_png(const std::string& path) {
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&image, path.c_str()))
        throw std::runtime_error(fmt::format("{}: not a readable PNG ({})", path, image.message));
    if (image.width == 0 || image.height == 0 || image.width > 16384 || image.height > 16384) {
        png_image_free(&image);
        throw std::runtime_error(fmt::format("{}: PNG size {}x{} is out of range", path, image.width, image.height));
    }
    image.format = PNG_FORMAT_RGB;
    Image img(image.width, image.height, 3);
    if (!png_image_finish_read(&image, nullptr, img.pixels.data(), 0, nullptr)) {
        png_image_free(&image);
        throw std::runtime_error(fmt::format("{}: corrupt PNG ({})", path, image.message));
    }
    return img;
}

Image upscale(const Image& img, int64_t k) {
    DDPM_CHECK(k >= 1 && k <= 64, "upscale", fmt::format("scale {} is not in [1, 64]", k));
    Image out(img.width * k, img.height * k, img.channels);
    for (int64_t y = 0; y < out.height; ++y)
        for (int64_t x = 0; x < out.width; ++x)
            std::copy_n(img.pixels.data() + ((y / k) * img.width + x / k) * img.channels, img.channels, out.at(x, y));
    return out;
}

Image make_square_grid(const Tensor& images) {
    return make_grid(images, static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(images.size(0))))));
}

Image make_grid(const Tensor& images, int64_t cols, int64_t pad) {
    DDPM_CHECK(images.dim() == 4, "make_grid", "images must be (N, C, H, W)");
    const int64_t N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
    DDPM_CHECK(C == 1 || C == 3, "make_grid", "images must have 1 or 3 channels");
    cols = std::max<int64_t>(1, std::min(cols, N));
    const int64_t rows = (N + cols - 1) / cols;
    Image img(cols * (W + pad) + pad, rows * (H + pad) + pad, C, 0);
    const Tensor x = images.to(DType::F32);
    const float* p = x.data<float>();
    for (int64_t n = 0; n < N; ++n) {
        const int64_t ox = pad + (n % cols) * (W + pad), oy = pad + (n / cols) * (H + pad);
        for (int64_t c = 0; c < C; ++c)
            for (int64_t y = 0; y < H; ++y)
                for (int64_t xx = 0; xx < W; ++xx) {
                    const float v = p[((n * C + c) * H + y) * W + xx];
                    const double q = std::round((static_cast<double>(v) + 1.0) * 127.5);
                    img.at(ox + xx, oy + y)[c] = static_cast<uint8_t>(std::min(255.0, std::max(0.0, q)));
                }
    }
    return img;
}

}  // namespace ddpm
