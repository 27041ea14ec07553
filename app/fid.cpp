// fid.cpp
#include "app/fid.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "app/npy.h"
#include "app/run.h"
#include "autograd/ops.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "tensor/elementwise.h"
#include "tensor/shape_ops.h"
#include "tensor/winograd.h"

extern "C" void dsyev_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w, double* work,
                       const int* lwork, int* info);

namespace ddpm {

namespace fs = std::filesystem;

FeatureStats feature_stats(const Tensor& features) {
    DDPM_CHECK(features.dim() == 2 && features.size(0) >= 2, "feature_stats", "features " + features.describe() + " are not (N >= 2, D)");
    const Tensor f = features.to(DType::F64);
    const int64_t N = f.size(0), D = f.size(1);
    const double* x = f.data<double>();
    FeatureStats s{D, N, std::vector<double>(D, 0.0), std::vector<double>(D * D, 0.0)};
    for (int64_t i = 0; i < N; ++i)
        for (int64_t d = 0; d < D; ++d) s.mean[d] += x[i * D + d] / double(N);
    for (int64_t i = 0; i < N; ++i)
        for (int64_t a = 0; a < D; ++a)
            for (int64_t b = a; b < D; ++b) s.cov[a * D + b] += (x[i * D + a] - s.mean[a]) * (x[i * D + b] - s.mean[b]);
    for (int64_t a = 0; a < D; ++a)
        for (int64_t b = a; b < D; ++b) s.cov[b * D + a] = s.cov[a * D + b] /= double(N - 1);
    return s;
}

void symmetric_eigen(std::vector<double>& a, int64_t n, std::vector<double>& w) {
    // Row-major symmetric = column-major symmetric: LAPACK sees the same matrix.
    const int N = static_cast<int>(n);
    int info = 0, lwork = -1;
    double query = 0;
    w.assign(static_cast<size_t>(n), 0.0);
    dsyev_("V", "U", &N, a.data(), &N, w.data(), &query, &lwork, &info);
    lwork = static_cast<int>(query);
    std::vector<double> work(static_cast<size_t>(lwork));
    dsyev_("V", "U", &N, a.data(), &N, w.data(), work.data(), &lwork, &info);
    if (info != 0) throw std::runtime_error(fmt::format("dsyev failed (info {})", info));
}

namespace {
// V diag(f(w)) V^T for the eigenvectors V (columns of the column-major v) and eigenvalues w.
std::vector<double> from_eigen(const std::vector<double>& v, const std::vector<double>& w, int64_t n, double (*f)(double)) {
    std::vector<double> out(static_cast<size_t>(n * n), 0.0);
    for (int64_t k = 0; k < n; ++k) {
        const double fk = f(w[k]);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < n; ++j) out[i * n + j] += v[k * n + i] * fk * v[k * n + j];
    }
    return out;
}

double sqrt_clipped(double x) { return std::sqrt(std::max(x, 0.0)); }
}  // namespace

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
    DDPM_CHECK(a.dim == b.dim, "frechet_distance", fmt::format("features of {} and {} dimensions", a.dim, b.dim));
    const int64_t n = a.dim;
    std::vector<double> v = a.cov, w;
    symmetric_eigen(v, n, w);
    const std::vector<double> root_a = from_eigen(v, w, n, sqrt_clipped);  // S_a^1/2
    std::vector<double> tmp(static_cast<size_t>(n * n), 0.0), m(static_cast<size_t>(n * n), 0.0);
    for (int64_t i = 0; i < n; ++i)  // tmp = S_a^1/2 S_b
        for (int64_t k = 0; k < n; ++k)
            for (int64_t j = 0; j < n; ++j) tmp[i * n + j] += root_a[i * n + k] * b.cov[k * n + j];
    for (int64_t i = 0; i < n; ++i)  // m = tmp S_a^1/2, symmetric
        for (int64_t k = 0; k < n; ++k)
            for (int64_t j = 0; j < n; ++j) m[i * n + j] += tmp[i * n + k] * root_a[k * n + j];
    for (int64_t i = 0; i < n; ++i)  // symmetrise away the rounding
        for (int64_t j = 0; j < i; ++j) m[i * n + j] = m[j * n + i] = 0.5 * (m[i * n + j] + m[j * n + i]);
    symmetric_eigen(m, n, w);
    double d2 = 0, trace = 0;
    for (int64_t i = 0; i < n; ++i) {
        d2 += (a.mean[i] - b.mean[i]) * (a.mean[i] - b.mean[i]);
        trace += a.cov[i * n + i] + b.cov[i * n + i] - 2 * sqrt_clipped(w[i]);
    }
    return d2 + trace;
}

Tensor classifier_features(Classifier& net, const Tensor& images, double scale, int64_t batch) {
    NoGradGuard ng;
    net.eval();
    const KernelTransformCache kept;  // the weights stay as they are: kernels transformed once (winograd.h)
    std::vector<Tensor> parts;
    for (int64_t b0 = 0; b0 < images.size(0); b0 += batch)
        parts.push_back(net.features(Variable(images.slice(b0, std::min(images.size(0), b0 + batch)))).data());
    return concat(parts, 0).to(DType::F64) * scale;
}

}  // namespace ddpm
