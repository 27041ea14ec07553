// plot.h: the few charts ddpm.cpp draws (scatter, line), rendered straight to an Image.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "app/image_io.h"

namespace ddpm {

struct Series {
    std::vector<double> x, y;
    uint8_t r = 0, g = 0, b = 0;
    std::string label;
};

struct PlotOptions {
    int64_t width = 640, height = 480;
    std::string title;
    std::string x_label, y_label;  // axis titles (the y title is written above the axis)
    bool log_y = false;
    bool lines = true;  // false: dots (a scatter plot)
    // Fixed axis ranges; when lo >= hi the range comes from the data.
    double x_lo = 0, x_hi = 0, y_lo = 0, y_hi = 0;
};

// Tick positions between lo and hi at round values: multiples of 1, 2 or 5 x 10^k, about
// five to an axis. On a log axis (lo, hi given as log10) 1, 2, 5 x 10^k, or whole decades
// when the axis spans two or more; returned as log10 too.
std::vector<double> nice_ticks(double lo, double hi, bool log_axis);

// Axes with tick labels, a legend and the series; text in a built-in 5x7 pixel font.
Image plot(const std::vector<Series>& series, const PlotOptions& opt);

// An RGB copy of `grid` (gray or RGB) with a white margin on its left holding labels[r]
// beside row r, whose centre is at row_centers[r] (pixels from the top).
Image with_row_labels(const Image& grid, const std::vector<std::string>& labels, const std::vector<int64_t>& row_centers);

}  // namespace ddpm
