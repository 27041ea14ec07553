// metrics.cpp
#include "app/metrics.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "app/image_io.h"
#include "app/plot.h"
#include "util/file_io.h"

namespace ddpm {

namespace fs = std::filesystem;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string format_duration(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    const int64_t t = static_cast<int64_t>(s);
    return t >= 3600 ? fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60) : fmt::format("{}m{:02d}s", t / 60, t % 60);
}

Metrics::Metrics(const std::string& path, int64_t resume_step) : last_step_(resume_step) {
    if (path.empty()) return;
    const char* header = "step,loss,loss_q1,loss_q2,loss_q3,loss_q4,lr,grad_norm,images_per_s,wall_s,fid\n";
    std::string kept = header;
    if (resume_step > 0 && fs::exists(path)) {
        std::ifstream in(path);
        std::string line;
        std::getline(in, line);
        while (std::getline(in, line)) {
            double st = 0, lo = 0;
            // Only whole rows up to the checkpoint: a row cut short by a crash is dropped. Rows of
            // runs from before the fid column (9 commas) get an empty one.
            const auto commas = std::count(line.begin(), line.end(), ',');
            if ((commas != 9 && commas != 10) || std::sscanf(line.c_str(), "%lf,%lf", &st, &lo) != 2 ||
                st > static_cast<double>(resume_step))
                continue;
            if (commas == 9) line += ",";
            steps_.push_back(st);
            losses_.push_back(lo);
            if (const std::string fid = line.substr(line.rfind(',') + 1); !fid.empty())
                fid_steps_.push_back(st), fids_.push_back(std::stod(fid));
            kept += line + "\n";
        }
    }
    write_file_atomic(path, kept);
    csv_.open(path, std::ios::app);
    if (!csv_) throw std::runtime_error(path + ": cannot write");
}

void Metrics::record(int64_t step, const StepResult& r, double lr, int64_t T, double wall_s, double fid) {
    double q_sum[4] = {0, 0, 0, 0};
    int q_n[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < r.t.numel(); ++b) {
        const int q = static_cast<int>(r.t.flat(b) * 4 / T);
        q_sum[q] += r.per_image_loss.flat(b);
        ++q_n[q];
    }
    const double t_now = now_s();
    const double rate = static_cast<double>(r.t.numel()) / std::max(1e-9, t_now - last_time_) * double(step - last_step_);
    images_per_s_ = images_per_s_ == 0 ? rate : 0.9 * images_per_s_ + 0.1 * rate;
    batch_ = r.t.numel();
    last_time_ = t_now, last_step_ = step;
    csv_ << step << ',' << r.loss;
    for (int q = 0; q < 4; ++q) {
        csv_ << ',';
        if (q_n[q]) csv_ << q_sum[q] / q_n[q];
    }
    csv_ << ',' << lr << ',' << r.grad_norm << ',' << rate << ',' << wall_s << ',';
    if (!std::isnan(fid)) csv_ << fid, fid_steps_.push_back(double(step)), fids_.push_back(fid);
    csv_ << '\n';
    steps_.push_back(static_cast<double>(step));
    losses_.push_back(r.loss);
}

void Metrics::print(const Progress& p, bool tty) const {
    const double smooth = losses_.size() >= 20 ? std::accumulate(losses_.end() - 20, losses_.end(), 0.0) / 20 : losses_.back();
    double eta = NAN;
    if (p.total_steps) eta = double(p.total_steps - p.step) * double(batch_) / images_per_s_;
    if (p.minutes) eta = std::min(std::isfinite(eta) ? eta : 1e300, p.minutes * 60 - p.elapsed_s);
    const std::string total = p.total_steps ? std::to_string(p.total_steps) : "-";
    if (tty) {
        const double frac = p.total_steps ? double(p.step) / double(p.total_steps)
                                          : (p.minutes ? p.elapsed_s / (p.minutes * 60) : 0.0);
        const int width = 24, fill = static_cast<int>(std::clamp(frac, 0.0, 1.0) * width);
        fmt::print(stderr, "\rstep {}/{} [{}{}] loss {:.4f} {:.1f} img/s ETA {}   ", p.step, total, std::string(fill, '='),
                   std::string(width - fill, ' '), smooth, images_per_s_, format_duration(eta));
    } else {
        fmt::print("step {}/{} loss {:.4f} lr {:.2e} grad {:.3f} {:.1f} img/s elapsed {} ETA {}\n", p.step, total, smooth,
                   p.lr, p.grad_norm, images_per_s_, format_duration(p.elapsed_s), format_duration(eta));
        std::fflush(stdout);
    }
}

void Metrics::write_loss_plot(const std::string& path) const {
    Series raw{steps_, losses_, 170, 190, 230, "loss"};
    Series smooth{steps_, {}, 20, 60, 200, "moving average (100)"};
    double acc = 0;
    for (size_t i = 0; i < losses_.size(); ++i) {
        acc += losses_[i];
        if (i >= 100) acc -= losses_[i - 100];
        smooth.y.push_back(acc / static_cast<double>(std::min<size_t>(i + 1, 100)));
    }
    PlotOptions o;
    o.title = "training loss";
    o.x_label = "step", o.y_label = "loss";
    o.log_y = true;
    write_png(path, plot({raw, smooth}, o));
}

void Metrics::write_fid_plot(const std::string& path) const {
    if (fids_.empty()) return;
    PlotOptions o;
    o.title = "FID (ours) of EMA samples";
    o.x_label = "step", o.y_label = "FID (ours)";
    o.log_y = true;
    write_png(path, plot({Series{fid_steps_, fids_, 200, 60, 40, "FID (ours)"}}, o));
}

}  // namespace ddpm
