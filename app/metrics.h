// metrics.h: what a training run reports: metrics.csv, the progress line or log
// lines, and loss.png.
#pragma once

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "app/trainer.h"

namespace ddpm {

double now_s();                          // a steady clock, in seconds
std::string format_duration(double s);  // "3m07s", "1h02m", "?"

class Metrics {
public:
    // metrics.csv in `path` (empty: ranks other than 0 keep the history in memory only).
    // On resume the rows up to the checkpoint's step are kept; later ones belong to steps being redone.
    Metrics(const std::string& path, int64_t resume_step);

    // One row: step, loss, the loss per quartile of t in this batch, lr, gradient norm, images/s, wall time,
    // and the FID (ours) when one was measured at this step (NAN: an empty cell).
    void record(int64_t step, const StepResult& r, double lr, int64_t T, double wall_s, double fid = NAN);
    // The progress bar on a terminal (every step), else a log line every --log-every steps.
    struct Progress {
        int64_t step, total_steps;  // total 0: no step budget
        double minutes, elapsed_s, lr, grad_norm;
    };
    void print(const Progress& p, bool tty) const;
    void flush() { csv_.flush(); }
    void write_loss_plot(const std::string& path) const;  // log-scale loss with a 100-step moving average
    void write_fid_plot(const std::string& path) const;   // FID (ours) against steps
    bool empty() const { return steps_.empty(); }

private:
    std::ofstream csv_;
    std::vector<double> steps_, losses_, fid_steps_, fids_;
    double last_time_ = now_s(), images_per_s_ = 0;  // a moving average of the rate
    int64_t last_step_ = -1, batch_ = 0;
};

}  // namespace ddpm
