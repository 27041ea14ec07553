// image_io.h: PNG files (libpng), image grids and a small RGB canvas for plots.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace ddpm {

// 8-bit pixels, row-major, `channels` (1 gray, 3 RGB) interleaved.
struct Image {
    int64_t width = 0, height = 0, channels = 3;
    std::vector<uint8_t> pixels;
    Image() = default;
    Image(int64_t w, int64_t h, int64_t c, uint8_t fill = 255)
        : width(w), height(h), channels(c), pixels(static_cast<size_t>(w * h * c), fill) {}
    uint8_t* at(int64_t x, int64_t y) { return pixels.data() + (y * width + x) * channels; }
    const uint8_t* at(int64_t x, int64_t y) const { return pixels.data() + (y * width + x) * channels; }
};

// Written atomically (temporary file, then rename); throws std::runtime_error naming the file.
void write_png(const std::string& path, const Image& img);
Image read_png(const std::string& path);

// Images (N, C, H, W) with values in [-1, 1] tiled into a grid `cols` wide with a
// `pad`-pixel border, each value mapped to round((v + 1) * 127.5) clamped to [0, 255].
Image make_grid(const Tensor& images, int64_t cols, int64_t pad = 2);
// The same, ceil(sqrt(N)) images wide: as square as N allows.
Image make_square_grid(const Tensor& images);
// Each pixel made a k x k block (nearest neighbour), so that 28x28 images are visible at a glance.
Image upscale(const Image& img, int64_t k);
// The scale at which sample grids are written: 3 for images of 32 px or less, else 1.
inline int64_t default_scale(int64_t image_size) { return image_size <= 32 ? 3 : 1; }

}  // namespace ddpm
