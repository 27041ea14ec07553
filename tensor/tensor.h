// tensor.h: an N-d, row-major, always-contiguous tensor of float32 or float64.
//
// Storage is shared: reshape() and slicing along the first axis are views that
// alias the same buffer; permute/transpose copy. Every kernel in tensor/ takes
// and returns these, and none of them knows about autograd (that is autograd/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/pool.h"

namespace ddpm {

enum class DType : uint8_t { F32, F64 };

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);

// A short list of integers whose memory comes from the block cache (pool.h),
// so that making one inside a training step does not call the system heap.
using Int64List = std::vector<int64_t, PoolAllocator<int64_t>>;
using Shape = Int64List;  // the sizes of the axes
using Axes = Int64List;   // axis numbers of a reduction

std::string shape_str(const Shape& s);  // "[64,32,28,28]"
int64_t shape_numel(const Shape& s);

// Thrown for a wrong shape, dtype or argument; the message names the op and the shapes.
struct TensorError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};
[[noreturn]] void fail(const std::string& op, const std::string& what);

// DDPM_CHECK(cond, op, message): throws TensorError "op: message" unless cond holds.
// The message (a string expression, often fmt::format(...)) is built only on failure.
#define DDPM_CHECK(cond, op, ...)                                  \
    do {                                                           \
        if (!(cond)) ::ddpm::fail((op), (__VA_ARGS__));            \
    } while (0)

// A 64-byte aligned byte buffer.
struct Storage {
    explicit Storage(size_t nbytes);
    ~Storage();
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
    void* data = nullptr;
    size_t nbytes = 0;
};

// guide.md §1: a shape, a dtype and a shared contiguous buffer.
class Tensor {
public:
    Tensor() = default;  // undefined tensor
    Tensor(Shape shape, DType dtype);  // uninitialised contents

    // Creation.
    static Tensor empty(const Shape& shape, DType dtype = DType::F32);
    static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
    static Tensor ones(const Shape& shape, DType dtype = DType::F32);
    static Tensor full(const Shape& shape, double value, DType dtype = DType::F32);
    static Tensor arange(int64_t n, DType dtype = DType::F32);  // 0, 1, ..., n-1
    static Tensor from_data(const std::vector<double>& values, const Shape& shape,
                            DType dtype = DType::F32);
    static Tensor scalar(double value, DType dtype = DType::F32);  // shape []
    static Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype()); }

    bool defined() const { return storage_ != nullptr; }
    const Shape& shape() const { return shape_; }
    int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
    int64_t size(int64_t d) const;  // negative d counts from the end
    int64_t numel() const { return numel_; }
    DType dtype() const { return dtype_; }
    size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

    // Typed access; throws if T does not match the dtype.
    template <class T> T* data();
    template <class T> const T* data() const;
    void* raw_data();
    const void* raw_data() const;

    // Views (share storage).
    Tensor reshape(Shape shape) const;  // one entry may be -1
    Tensor slice(int64_t begin, int64_t end) const;  // rows [begin, end) of axis 0
    Tensor select(int64_t i) const;  // row i of axis 0, axis 0 dropped
    bool shares_storage_with(const Tensor& o) const { return storage_ == o.storage_; }
    bool storage_unique() const { return storage_.use_count() == 1; }  // no other tensor or view holds it

    // Copies.
    Tensor clone() const;
    Tensor to(DType dtype) const;  // a copy even when the dtype is the same
    Tensor permute(const std::vector<int64_t>& order) const;
    Tensor transpose(int64_t a, int64_t b) const;

    // In-place.
    void fill_(double value);
    void copy_(const Tensor& src);  // same shape (or same numel) and dtype

    // Element access for tests and small host-side code (slow).
    double item() const;  // numel must be 1
    double flat(int64_t i) const;
    void set_flat(int64_t i, double v);
    std::vector<double> to_vector() const;

    std::string describe() const;  // "f32[2,3]"

private:
    std::shared_ptr<Storage> storage_;
    size_t offset_ = 0;  // in elements
    Shape shape_;
    int64_t numel_ = 0;
    DType dtype_ = DType::F32;
};

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }

// Calls f(float{}) or f(double{}) according to dt, so a kernel is written once
// as a generic lambda: dispatch(x.dtype(), [&](auto tag) { using T = decltype(tag); ... }).
template <class F> decltype(auto) dispatch(DType dt, F&& f) {
    if (dt == DType::F32) return f(float{});
    return f(double{});
}

// Normalises a possibly negative axis for a tensor of `ndim` dimensions.
int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op);

}  // namespace ddpm
