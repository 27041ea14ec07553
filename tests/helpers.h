// helpers.h: small tools shared by the tests.
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "nn/safetensors.h"
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

// RMS(got - want) / RMS(want): an error relative to the size of what was wanted.
inline double relative_rms_error(const Tensor& want, const Tensor& got) {
    REQUIRE(want.shape() == got.shape());
    double e = 0, w = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
        e += (got.flat(i) - want.flat(i)) * (got.flat(i) - want.flat(i));
        w += want.flat(i) * want.flat(i);
    }
    return std::sqrt(e / w);
}

template <class T> constexpr double tol() { return sizeof(T) == 4 ? 1e-5 : 1e-12; }

// The message of the E that f throws, or "no error".
template <class E> std::string error_message(const std::function<void()>& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    return "no error";
}

// An empty folder <tmp>/<prefix>_<pid>/<name>, made afresh.
inline std::filesystem::path fresh_dir(const std::string& prefix, const std::string& name) {
    namespace fs = std::filesystem;
    fs::path p = fs::temp_directory_path() / (prefix + "_" + std::to_string(::getpid())) / name;
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

// The same tensors, in the same order, with the same bytes.
inline void check_bit_identical(const SafeTensors& a, const SafeTensors& b) {
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (size_t i = 0; i < a.tensors.size(); ++i) {
        INFO(a.tensors[i].first);
        CHECK(a.tensors[i].first == b.tensors[i].first);
        REQUIRE(a.tensors[i].second.nbytes() == b.tensors[i].second.nbytes());
        CHECK(std::memcmp(a.tensors[i].second.raw_data(), b.tensors[i].second.raw_data(), a.tensors[i].second.nbytes()) == 0);
    }
}

}  // namespace ddpm::test
