// gradcheck.cpp
#include "autograd/gradcheck.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/ops.h"
#include "tensor/random.h"

namespace ddpm {

double GradcheckResult::worst_rel() const {
    double w = 0;
    for (double r : max_rel_error) w = std::max(w, r);
    return w;
}

std::string GradcheckResult::report() const {
    std::string s;
    for (size_t i = 0; i < max_rel_error.size(); ++i)
        s += fmt::format("input {}: {} elements, max abs err {:.3e}, max rel err {:.3e}\n", i, checked[i],
                         max_abs_error[i], max_rel_error[i]);
    return s;
}

// L = sum(f() * g), computed without recording a graph.
static double projected(const std::function<Variable()>& f, const Tensor& g) {
    NoGradGuard no_grad;
    Tensor y = f().data();
    const double* py = y.data<double>();
    const double* pg = g.data<double>();
    double s = 0;
    for (int64_t i = 0; i < y.numel(); ++i) s += py[i] * pg[i];
    return s;
}

GradcheckResult gradcheck_leaves(const std::function<Variable()>& f, const std::vector<Variable>& leaves,
                                 const GradcheckOptions& opt) {
    for (const Variable& v : leaves) {
        DDPM_CHECK(v.dtype() == DType::F64, "gradcheck", "leaves must be f64, got " + v.data().describe());
        DDPM_CHECK(v.is_leaf() && v.requires_grad(), "gradcheck", "every leaf must require a gradient");
    }
    Generator gen(opt.seed);
    std::vector<Variable> xs = leaves;
    for (Variable& x : xs) x.zero_grad();
    Variable y = f();
    DDPM_CHECK(y.dtype() == DType::F64, "gradcheck", "f must return f64, got " + y.data().describe());
    Tensor g = randn(y.shape(), gen, DType::F64);
    y.backward(g);  // dL/dx with L = sum(y * g)

    GradcheckResult r;
    for (Variable& leaf : xs) {
        Tensor& x = leaf.data();
        const int64_t n = x.numel();
        std::vector<int64_t> idx(static_cast<size_t>(n));
        std::iota(idx.begin(), idx.end(), 0);
        if (opt.max_elements >= 0 && opt.max_elements < n) {  // a seeded random subset
            Tensor u = rand({n}, gen, DType::F64);
            const double* pu = u.data<double>();
            std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return pu[a] < pu[b]; });
            idx.resize(static_cast<size_t>(opt.max_elements));
        }
        const Tensor& analytic = leaf.grad();
        double max_abs = 0, max_num = 0;
        for (int64_t i : idx) {
            const double orig = x.flat(i);
            x.set_flat(i, orig + opt.eps);
            const double plus = projected(f, g);
            x.set_flat(i, orig - opt.eps);
            const double minus = projected(f, g);
            x.set_flat(i, orig);
            const double numeric = (plus - minus) / (2 * opt.eps);
            const double a = analytic.defined() ? analytic.flat(i) : 0.0;
            max_abs = std::max(max_abs, std::abs(a - numeric));
            max_num = std::max(max_num, std::abs(numeric));
        }
        r.max_abs_error.push_back(max_abs);
        r.max_rel_error.push_back(max_abs / std::max(max_num, 1e-12));
        r.checked.push_back(static_cast<int64_t>(idx.size()));
    }
    return r;
}

// guide.md §2: central differences of L = sum(f(x) * g) in float64.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt) {
    std::vector<Variable> xs;
    for (const Tensor& t : inputs) {
        DDPM_CHECK(t.dtype() == DType::F64, "gradcheck", "inputs must be f64, got " + t.describe());
        xs.emplace_back(t.clone(), true);
    }
    return gradcheck_leaves([&] { return f(xs); }, xs, opt);
}

}  // namespace ddpm
