// plot.cpp: a tiny raster plotter; text comes from stb_easy_font's quads.
#include "app/plot.h"

#include <fmt/format.h>
#include <stb/stb_easy_font.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace ddpm {

namespace {
struct Canvas {
    Image& img;
    void set(int64_t x, int64_t y, uint8_t r, uint8_t g, uint8_t b) {
        if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
        uint8_t* p = img.at(x, y);
        p[0] = r, p[1] = g, p[2] = b;
    }
    void rect(int64_t x0, int64_t y0, int64_t x1, int64_t y1, uint8_t r, uint8_t g, uint8_t b) {
        for (int64_t y = y0; y < y1; ++y)
            for (int64_t x = x0; x < x1; ++x) set(x, y, r, g, b);
    }
    void line(double x0, double y0, double x1, double y1, uint8_t r, uint8_t g, uint8_t b) {
        const int64_t n = static_cast<int64_t>(std::max(std::abs(x1 - x0), std::abs(y1 - y0))) + 1;
        for (int64_t i = 0; i <= n; ++i) {
            const double f = static_cast<double>(i) / static_cast<double>(n);
            set(std::lround(x0 + f * (x1 - x0)), std::lround(y0 + f * (y1 - y0)), r, g, b);
        }
    }
    // stb_easy_font emits quads (4 vertices of x, y, z, colour = 16 bytes each).
    void text(double x, double y, const std::string& s, uint8_t gray = 40, double size = 1) {
        static char buffer[99999];
        const int quads = stb_easy_font_print(0, 0, const_cast<char*>(s.c_str()), nullptr, buffer, sizeof(buffer));
        const float* v = reinterpret_cast<const float*>(buffer);
        for (int q = 0; q < quads; ++q, v += 16) {
            const double qx0 = std::min(v[0], v[8]), qx1 = std::max(v[0], v[8]);
            const double qy0 = std::min(v[1], v[9]), qy1 = std::max(v[1], v[9]);
            rect(std::lround(x + size * qx0), std::lround(y + size * qy0), std::lround(x + size * qx1), std::lround(y + size * qy1),
                 gray, gray, gray);
        }
    }
    static int64_t text_width(const std::string& s) { return stb_easy_font_width(const_cast<char*>(s.c_str())); }
};

std::string tick_label(double v) {
    if (v == 0) return "0";
    const double a = std::abs(v);
    if (v == std::round(v) && a < 1e7) return fmt::format("{:.0f}", v);
    if (a >= 1e4 || a < 1e-2) return fmt::format("{:.1e}", v);
    return fmt::format("{:.4g}", v);
}
}  // namespace

namespace {
// The plotting area in pixels and the data ranges it shows (y as log10 y on a log axis).
struct Frame {
    int64_t left, top, pw, ph;
    double xlo, xhi, ylo, yhi;
    bool log_y;
    double ty(double y) const { return log_y ? std::log10(std::max(y, 1e-300)) : y; }
    double px(double x) const { return left + (x - xlo) / (xhi - xlo) * pw; }
    double py(double y) const { return top + ph - (ty(y) - ylo) / (yhi - ylo) * ph; }
    bool shows(const Series& s, size_t i) const {
        return std::isfinite(s.x[i]) && std::isfinite(s.y[i]) && !(log_y && s.y[i] <= 0);
    }
};

// The axis ranges: the options' fixed ones, else the data's (y with a 5% margin).
Frame make_frame(const std::vector<Series>& series, const PlotOptions& opt) {
    const int64_t left = 70, right = 20, top = opt.title.empty() && opt.y_label.empty() ? 15 : 32,
                  bottom = opt.x_label.empty() ? 35 : 45;
    Frame f{left, top, opt.width - left - right, opt.height - top - bottom, opt.x_lo, opt.x_hi, opt.y_lo, opt.y_hi, opt.log_y};
    if (f.xlo < f.xhi && f.ylo < f.yhi) {
        f.ylo = f.ty(f.ylo), f.yhi = f.ty(f.yhi);
        return f;
    }
    double dxlo = std::numeric_limits<double>::infinity(), dxhi = -dxlo, dylo = dxlo, dyhi = -dxlo;
    for (const Series& s : series)
        for (size_t i = 0; i < s.x.size(); ++i) {
            if (!f.shows(s, i)) continue;
            dxlo = std::min(dxlo, s.x[i]), dxhi = std::max(dxhi, s.x[i]);
            dylo = std::min(dylo, f.ty(s.y[i])), dyhi = std::max(dyhi, f.ty(s.y[i]));
        }
    if (!(dxlo <= dxhi)) dxlo = 0, dxhi = 1, dylo = 0, dyhi = 1;
    if (dxlo == dxhi) dxlo -= 0.5, dxhi += 0.5;
    if (dylo == dyhi) dylo -= 0.5, dyhi += 0.5;
    if (f.xlo >= f.xhi) f.xlo = dxlo, f.xhi = dxhi;
    if (f.ylo >= f.yhi) {
        const double m = 0.05 * (dyhi - dylo);
        f.ylo = dylo - m, f.yhi = dyhi + m;
    } else {
        f.ylo = f.ty(f.ylo), f.yhi = f.ty(f.yhi);
    }
    return f;
}

// Frame, grid, ticks at round values, axis titles and the title.
void draw_axes(Canvas& c, const Frame& f, const PlotOptions& opt) {
    for (double fx : nice_ticks(f.xlo, f.xhi, false)) {
        const double gx = f.left + (fx - f.xlo) / (f.xhi - f.xlo) * f.pw;
        c.line(gx, f.top, gx, f.top + f.ph, 230, 230, 230);
        const std::string label = tick_label(fx);
        c.text(gx - Canvas::text_width(label) / 2.0, f.top + f.ph + 6, label);
    }
    for (double fy : nice_ticks(f.ylo, f.yhi, f.log_y)) {
        const double gy = f.top + f.ph - (fy - f.ylo) / (f.yhi - f.ylo) * f.ph;
        c.line(f.left, gy, f.left + f.pw, gy, 230, 230, 230);
        const std::string label = tick_label(f.log_y ? std::pow(10.0, fy) : fy);
        c.text(f.left - 6 - Canvas::text_width(label), gy - 4, label);
    }
    c.line(f.left, f.top, f.left, f.top + f.ph, 0, 0, 0);
    c.line(f.left, f.top + f.ph, f.left + f.pw, f.top + f.ph, 0, 0, 0);
    c.line(f.left + f.pw, f.top, f.left + f.pw, f.top + f.ph, 0, 0, 0);
    c.line(f.left, f.top, f.left + f.pw, f.top, 0, 0, 0);
    if (!opt.x_label.empty()) c.text(f.left + f.pw / 2.0 - Canvas::text_width(opt.x_label) / 2.0, f.top + f.ph + 20, opt.x_label);
    if (!opt.y_label.empty()) c.text(8, f.top - 14, opt.y_label + (opt.log_y ? " (log scale)" : ""));
    if (!opt.title.empty()) c.text(f.left + f.pw / 2.0 - Canvas::text_width(opt.title) / 2.0, 8, opt.title, 0);
}

// A series as a line (broken at values it cannot show) or as dots.
void draw_series(Canvas& c, const Frame& f, const Series& s, bool lines) {
    bool have_prev = false;
    double prev_x = 0, prev_y = 0;
    for (size_t i = 0; i < s.x.size(); ++i) {
        if (!f.shows(s, i)) {
            have_prev = false;
            continue;
        }
        const double x = std::clamp(f.px(s.x[i]), double(f.left), double(f.left + f.pw));
        const double y = std::clamp(f.py(s.y[i]), double(f.top), double(f.top + f.ph));
        if (lines && have_prev) c.line(prev_x, prev_y, x, y, s.r, s.g, s.b);
        if (!lines) c.rect(std::lround(x) - 1, std::lround(y) - 1, std::lround(x) + 1, std::lround(y) + 1, s.r, s.g, s.b);
        prev_x = x, prev_y = y, have_prev = true;
    }
}
}  // namespace

// Tick positions at round values: multiples of 1, 2 or 5 x 10^k about five to an axis;
// on a log axis (lo, hi in log10) whole decades when the axis spans at least two.
std::vector<double> nice_ticks(double lo, double hi, bool log_axis) {
    std::vector<double> ticks;
    if (log_axis && hi - lo >= 2) {
        const double step = std::ceil((hi - lo) / 6);
        for (double d = std::ceil(lo / step) * step; d <= hi + 1e-9; d += step) ticks.push_back(d);
        return ticks;
    }
    if (log_axis) {  // 1, 2 and 5 (or every digit, on a short axis) times each power of ten in range
        const std::vector<int> digits = hi - lo >= 0.7 ? std::vector<int>{1, 2, 5} : std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9};
        for (double k = std::floor(lo); k <= std::ceil(hi); ++k)
            for (int m : digits)
                if (const double d = k + std::log10(m); d >= lo && d <= hi) ticks.push_back(d);
        return ticks;
    }
    const double raw = (hi - lo) / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double step = mag * (raw / mag < 1.5 ? 1 : raw / mag < 3.5 ? 2 : raw / mag < 7.5 ? 5 : 10);
    for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
        ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
    return ticks;
}

Image plot(const std::vector<Series>& series, const PlotOptions& opt) {
    Image img(opt.width, opt.height, 3, 255);
    Canvas c{img};
    const Frame f = make_frame(series, opt);
    draw_axes(c, f, opt);
    for (const Series& s : series) draw_series(c, f, s, opt.lines);
    // Legend, top right.
    int64_t ly = f.top + 8;
    for (const Series& s : series) {
        if (s.label.empty()) continue;
        const int64_t x0 = f.left + f.pw - Canvas::text_width(s.label) - 30;
        c.rect(x0, ly + 1, x0 + 12, ly + 7, s.r, s.g, s.b);
        c.text(x0 + 18, ly, s.label);
        ly += 14;
    }
    return img;
}

Image with_row_labels(const Image& grid, const std::vector<std::string>& labels, const std::vector<int64_t>& row_centers) {
    const double size = grid.height >= 400 ? 2 : 1;  // larger letters beside upscaled grids
    int64_t margin = 0;
    for (const std::string& l : labels) margin = std::max(margin, int64_t(size * double(Canvas::text_width(l))));
    margin += 12;
    Image out(margin + grid.width, grid.height, 3, 255);
    Canvas c{out};
    for (int64_t y = 0; y < grid.height; ++y)
        for (int64_t x = 0; x < grid.width; ++x) {
            const uint8_t* p = grid.at(x, y);
            uint8_t* q = out.at(margin + x, y);
            for (int k = 0; k < 3; ++k) q[k] = p[grid.channels == 3 ? k : 0];
        }
    for (size_t r = 0; r < labels.size() && r < row_centers.size(); ++r)
        c.text(6, double(row_centers[r]) - 4 * size, labels[r], 0, size);
    return out;
}

}  // namespace ddpm
