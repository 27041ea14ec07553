// helpers.h: small tools shared by the tests.
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <vector>

#include "tensor/tensor.h"

namespace ddpm::test {

// Every element of t within tol of want, relative to max(1, |value|); tol 0 asks for exact equality.
inline void check_values(const Tensor& t, const std::vector<double>& want, double tol) {
    REQUIRE(t.numel() == static_cast<int64_t>(want.size()));
    for (int64_t i = 0; i < t.numel(); ++i) {
        const double got = t.flat(i), w = want[static_cast<size_t>(i)];
        INFO("element " << i << " of " << t.describe() << ": got " << got << ", want " << w);
        CHECK(std::abs(got - w) <= tol * (1.0 + std::max(std::abs(got), std::abs(w))));
    }
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
    REQUIRE(a.shape() == b.shape());
    double m = 0;
    for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(a.flat(i) - b.flat(i)));
    return m;
}

template <class T> constexpr double tol() { return sizeof(T) == 4 ? 1e-5 : 1e-12; }

}  // namespace ddpm::test
