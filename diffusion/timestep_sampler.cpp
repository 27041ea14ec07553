// timestep_sampler.cpp
#include "diffusion/timestep_sampler.h"

#include <cmath>
#include <stdexcept>
#include <utility>

namespace ddpm {

TimestepSampler::TimestepSampler(Kind kind, int64_t T) : kind_(kind), T_(T), history_(static_cast<size_t>(T)) {
    reserve_history();
}

// Each history holds at most kHistory losses: room for them is made once, so
// update() never allocates.
void TimestepSampler::reserve_history() {
    for (auto& h : history_) h.reserve(kHistory);
}

namespace {
// The one table of the kinds' names, for parse() and name().
constexpr std::pair<TimestepSampler::Kind, const char*> kKindNames[] = {
    {TimestepSampler::Kind::Uniform, "uniform"},
    {TimestepSampler::Kind::Importance, "importance"},
    {TimestepSampler::Kind::Stratified, "stratified"},
};
}  // namespace

TimestepSampler::Kind TimestepSampler::parse(const std::string& name) {
    for (const auto& [kind, kind_name] : kKindNames)
        if (name == kind_name) return kind;
    throw std::invalid_argument("unknown timestep sampler '" + name + "' (uniform, importance or stratified)");
}

const char* TimestepSampler::name(Kind kind) {
    for (const auto& [k, kind_name] : kKindNames)
        if (k == kind) return kind_name;
    return "?";
}

std::vector<double> TimestepSampler::probabilities() const {
    std::vector<double> p;
    probabilities_into(p);
    return p;
}

void TimestepSampler::probabilities_into(std::vector<double>& p) const {
    p.assign(static_cast<size_t>(T_), 1.0 / static_cast<double>(T_));
    if (kind_ != Kind::Importance) return;
    for (const auto& h : history_)
        if (h.size() < kHistory) return;  // still warming up
    double total = 0;
    for (int64_t t = 0; t < T_; ++t) {
        double ss = 0;
        for (double l : history_[t]) ss += l * l;
        p[t] = std::sqrt(ss / kHistory);
        total += p[t];
    }
    const double uniform = 0.001;
    for (double& v : p) v = v / total * (1.0 - uniform) + uniform / static_cast<double>(T_);
}

// guide.md §9 and §12: t_b by the inverse CDF of p at u_b (u_b = frac(u_0 + b / B) when stratified).
TimestepSampler::Draw TimestepSampler::sample(int64_t batch, Generator& gen, DType dtype) const {
    std::vector<double>& p = probs_;  // kept between calls: no allocation per draw
    probabilities_into(p);
    std::vector<double>& cdf = cdf_;
    cdf.resize(p.size());
    double acc = 0;
    for (size_t i = 0; i < p.size(); ++i) cdf[i] = (acc += p[i]);
    const Tensor u = rand({batch}, gen, DType::F64);  // B draws whatever the kind: the later streams stay the same
    Draw d{Tensor({batch}, dtype), Tensor({batch}, dtype)};
    for (int64_t b = 0; b < batch; ++b) {
        const double u_b = kind_ == Kind::Stratified
                               ? std::fmod(u.flat(0) + static_cast<double>(b) / static_cast<double>(batch), 1.0)
                               : u.flat(b);
        const double x = u_b * acc;
        int64_t t = std::lower_bound(cdf.begin(), cdf.end(), x) - cdf.begin();
        t = std::min(t, T_ - 1);
        d.t.set_flat(b, static_cast<double>(t));
        d.weights.set_flat(b, 1.0 / (static_cast<double>(T_) * p[t]));
    }
    return d;
}

void TimestepSampler::update(const Tensor& t, const Tensor& losses) {
    for (int64_t b = 0; b < t.numel(); ++b) {
        auto& h = history_[static_cast<size_t>(t.flat(b))];
        if (h.size() == kHistory) h.erase(h.begin());
        h.push_back(losses.flat(b));
    }
}

nlohmann::json TimestepSampler::state() const { return {{"kind", name(kind_)}, {"history", history_}}; }

void TimestepSampler::load_state(const nlohmann::json& j) {
    auto h = j.at("history").get<std::vector<std::vector<double>>>();
    if (static_cast<int64_t>(h.size()) != T_) throw std::invalid_argument("timestep sampler history is for another T");
    history_ = std::move(h);
    reserve_history();
}

}  // namespace ddpm
