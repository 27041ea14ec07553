// Tensor storage, creation, views and copies.
#include <cblas.h>

#include "helpers.h"
#include "tensor/allocator.h"
#include "tensor/tensor.h"

using namespace ddpm;
using ddpm::test::check_values;

TEST_CASE_TEMPLATE("creation: zeros, ones, full, arange, from_data", T, float, double) {
    const DType dt = dtype_of<T>();
    check_values(Tensor::zeros({2, 3}, dt), {0, 0, 0, 0, 0, 0}, 0);
    check_values(Tensor::ones({1, 2, 1, 2}, dt), {1, 1, 1, 1}, 0);
    check_values(Tensor::full({3}, 2.5, dt), {2.5, 2.5, 2.5}, 0);
    check_values(Tensor::arange(5, dt), {0, 1, 2, 3, 4}, 0);
    Tensor t = Tensor::from_data({1, 2, 3, 4, 5, 6}, {2, 3}, dt);
    CHECK(t.shape() == Shape{2, 3});
    CHECK(t.dtype() == dt);
    CHECK(t.flat(4) == 5);
    CHECK(Tensor::scalar(7, dt).item() == 7);
    CHECK(Tensor::zeros({2, 3, 4, 5, 6}, dt).numel() == 720);  // 5-D works
}

TEST_CASE("reshape and slice are views that share storage") {
    Tensor t = Tensor::arange(24).reshape({2, 3, 4});
    Tensor r = t.reshape({6, -1});
    CHECK(r.shape() == Shape{6, 4});
    CHECK(r.shares_storage_with(t));
    r.set_flat(5, 100);
    CHECK(t.flat(5) == 100);

    Tensor s = t.slice(1, 2);
    CHECK(s.shape() == Shape{1, 3, 4});
    CHECK(s.flat(0) == 12);
    s.set_flat(0, -1);
    CHECK(t.flat(12) == -1);
    Tensor row = t.select(0);
    CHECK(row.shape() == Shape{3, 4});
    CHECK(row.flat(5) == 100);
    // A slice of a slice keeps the right offset.
    Tensor u = Tensor::arange(10).reshape({5, 2}).slice(1, 4).slice(1, 2);
    check_values(u, {4, 5}, 0);
}

TEST_CASE("permute, transpose and clone copy") {
    Tensor t = Tensor::arange(6).reshape({2, 3});
    Tensor tt = t.transpose(0, 1);
    CHECK(tt.shape() == Shape{3, 2});
    CHECK(!tt.shares_storage_with(t));
    check_values(tt, {0, 3, 1, 4, 2, 5}, 0);
    Tensor x = Tensor::arange(24).reshape({2, 3, 4});
    Tensor p = x.permute({2, 0, 1});  // p[k][i][j] = x[i][j][k]
    CHECK(p.shape() == Shape{4, 2, 3});
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 4; ++k) CHECK(p.flat((k * 2 + i) * 3 + j) == x.flat((i * 3 + j) * 4 + k));
    Tensor c = x.clone();
    c.set_flat(0, 9);
    CHECK(x.flat(0) == 0);
    Tensor d = x.to(DType::F64);
    CHECK(d.dtype() == DType::F64);
    CHECK(d.flat(23) == 23);
}

TEST_CASE("bad shapes throw errors that name the op and the shapes") {
    Tensor t = Tensor::zeros({2, 3});
    CHECK_THROWS_WITH_AS(t.reshape({4, 2}), "reshape: cannot reshape [2,3] into [4,2]", TensorError);
    CHECK_THROWS_WITH_AS(t.slice(1, 3), "slice: rows [1, 3) out of range for [2,3]", TensorError);
    CHECK_THROWS_AS(t.data<double>(), TensorError);
    CHECK_THROWS_AS(t.permute({0, 0}), TensorError);
    CHECK_THROWS_AS(Tensor::from_data({1, 2}, {3}), TensorError);
    CHECK_THROWS_AS(t.item(), TensorError);
}

TEST_CASE("OpenBLAS is the OpenMP build, so its threads are ours") {
    // 0 = sequential, 1 = its own pthreads pool (would oversubscribe the cores
    // when called from our parallel loops), 2 = OpenMP.
    CHECK(openblas_get_parallel() == 2);
}

TEST_CASE("freed buffers are reused: a repeated computation asks the system for no new memory") {
    auto step = [] {
        Tensor a = Tensor::ones({64, 32, 28, 28});
        Tensor b = Tensor::zeros({64, 32, 28, 28});
        Tensor c = a.clone();
        return c.numel() + b.numel();
    };
    step();  // the first step fills the cache
    const AllocatorStats before = allocator_stats();
    for (int i = 0; i < 3; ++i) step();
    const AllocatorStats after = allocator_stats();
    CHECK(after.system_allocations == before.system_allocations);
    CHECK(after.reuses >= before.reuses + 9);
    CHECK(after.live_bytes == before.live_bytes);
    release_cached_memory();
    CHECK(allocator_stats().cached_bytes == 0);
}
