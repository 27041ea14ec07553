// tensor.cpp: storage, creation, views and copies of Tensor.
#include "tensor/tensor.h"

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "tensor/allocator.h"
#include "tensor/parallel.h"

namespace ddpm {

size_t dtype_size(DType dt) { return dt == DType::F32 ? 4 : 8; }
const char* dtype_name(DType dt) { return dt == DType::F32 ? "f32" : "f64"; }

std::string shape_str(const Shape& s) {
    return fmt::format("[{}]", fmt::join(s, ","));
}

int64_t shape_numel(const Shape& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

void fail(const std::string& op, const std::string& what) {
    throw TensorError(op + ": " + what);
}

int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op) {
    int64_t a = axis < 0 ? axis + ndim : axis;
    DDPM_CHECK(a >= 0 && a < ndim, op, fmt::format("axis {} out of range for {} dims", axis, ndim));
    return a;
}

Storage::Storage(size_t n) : data(storage_alloc(n)), nbytes(n) {}
Storage::~Storage() { storage_free(data, nbytes); }

Tensor::Tensor(Shape shape, DType dtype)
    : offset_(0), shape_(std::move(shape)), dtype_(dtype) {
    for (int64_t d : shape_)
        DDPM_CHECK(d >= 0, "Tensor", "negative dimension in " + shape_str(shape_));
    numel_ = shape_numel(shape_);
    storage_ = std::allocate_shared<Storage>(PoolAllocator<Storage>(), static_cast<size_t>(numel_) * dtype_size(dtype));
}

Tensor Tensor::empty(const Shape& shape, DType dtype) { return Tensor(shape, dtype); }

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
    Tensor t(shape, dtype);
    std::memset(t.raw_data(), 0, t.nbytes());
    return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
    Tensor t(shape, dtype);
    t.fill_(value);
    return t;
}

Tensor Tensor::arange(int64_t n, DType dtype) {
    Tensor t({n}, dtype);
    dispatch(dtype, [&](auto tag) {
        using T = decltype(tag);
        T* p = t.data<T>();
        for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(i);
    });
    return t;
}

Tensor Tensor::from_data(const std::vector<double>& values, const Shape& shape, DType dtype) {
    DDPM_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_data",
          fmt::format("{} values for shape {}", values.size(), shape_str(shape)));
    Tensor t(shape, dtype);
    dispatch(dtype, [&](auto tag) {
        using T = decltype(tag);
        T* p = t.data<T>();
        for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
    });
    return t;
}

Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

int64_t Tensor::size(int64_t d) const { return shape_[normalize_axis(d, dim(), "size")]; }

template <class T> T* Tensor::data() {
    DDPM_CHECK(defined(), "data", "undefined tensor");
    DDPM_CHECK(dtype_ == dtype_of<T>(), "data",
          fmt::format("tensor is {} but {} was asked for", dtype_name(dtype_),
                      dtype_name(dtype_of<T>())));
    return static_cast<T*>(storage_->data) + offset_;
}
template <class T> const T* Tensor::data() const {
    return const_cast<Tensor*>(this)->data<T>();
}
template float* Tensor::data<float>();
template double* Tensor::data<double>();
template const float* Tensor::data<float>() const;
template const double* Tensor::data<double>() const;

void* Tensor::raw_data() {
    DDPM_CHECK(defined(), "data", "undefined tensor");
    return static_cast<char*>(storage_->data) + offset_ * dtype_size(dtype_);
}
const void* Tensor::raw_data() const { return const_cast<Tensor*>(this)->raw_data(); }

Tensor Tensor::reshape(Shape shape) const {
    int64_t infer = -1, known = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == -1) {
            DDPM_CHECK(infer < 0, "reshape", "more than one -1 in " + shape_str(shape));
            infer = static_cast<int64_t>(i);
        } else {
            DDPM_CHECK(shape[i] >= 0, "reshape", "negative size in " + shape_str(shape));
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        DDPM_CHECK(known > 0 && numel_ % known == 0, "reshape",
              fmt::format("cannot reshape {} into {}", shape_str(shape_), shape_str(shape)));
        shape[infer] = numel_ / known;
        known *= shape[infer];
    }
    DDPM_CHECK(known == numel_, "reshape",
          fmt::format("cannot reshape {} into {}", shape_str(shape_), shape_str(shape)));
    Tensor t = *this;
    t.shape_ = std::move(shape);
    return t;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
    DDPM_CHECK(dim() >= 1, "slice", "a 0-d tensor has no axis 0");
    DDPM_CHECK(0 <= begin && begin <= end && end <= shape_[0], "slice",
          fmt::format("rows [{}, {}) out of range for {}", begin, end, shape_str(shape_)));
    Tensor t = *this;
    int64_t row = numel_ / std::max<int64_t>(shape_[0], 1);
    t.offset_ = offset_ + static_cast<size_t>(begin * row);
    t.shape_[0] = end - begin;
    t.numel_ = shape_numel(t.shape_);
    return t;
}

Tensor Tensor::select(int64_t i) const {
    Tensor t = slice(i, i + 1);
    t.shape_.erase(t.shape_.begin());
    return t;
}

Tensor Tensor::clone() const {
    Tensor t(shape_, dtype_);
    std::memcpy(t.raw_data(), raw_data(), nbytes());
    return t;
}

Tensor Tensor::to(DType dtype) const {
    if (dtype == dtype_) return clone();
    Tensor t(shape_, dtype);
    dispatch(dtype_, [&](auto src_tag) {
        using S = decltype(src_tag);
        dispatch(dtype, [&](auto dst_tag) {
            using D = decltype(dst_tag);
            const S* s = data<S>();
            D* d = t.data<D>();
            parallel_for(numel_, kGrainElementwise,
                         [&](int64_t i) { d[i] = static_cast<D>(s[i]); });
        });
    });
    return t;
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
    const int64_t n = dim();
    DDPM_CHECK(static_cast<int64_t>(order.size()) == n, "permute",
          fmt::format("order has {} axes, tensor {} has {}", order.size(), shape_str(shape_), n));
    std::vector<bool> seen(n, false);
    Shape out_shape(n);
    for (int64_t i = 0; i < n; ++i) {
        int64_t a = normalize_axis(order[i], n, "permute");
        DDPM_CHECK(!seen[a], "permute", "axis repeated in order");
        seen[a] = true;
        out_shape[i] = shape_[a];
    }
    // Strides of the source, read in the order of the output's axes.
    std::vector<int64_t> src_stride(n), stride_by_out(n);
    int64_t s = 1;
    for (int64_t i = n - 1; i >= 0; --i) { src_stride[i] = s; s *= shape_[i]; }
    for (int64_t i = 0; i < n; ++i) stride_by_out[i] = src_stride[normalize_axis(order[i], n, "permute")];
    Tensor t(out_shape, dtype_);
    if (numel_ == 0) return t;
    const int64_t inner = n > 0 ? out_shape[n - 1] : 1;
    const int64_t inner_stride = n > 0 ? stride_by_out[n - 1] : 1;
    const int64_t rows = numel_ / inner;
    dispatch(dtype_, [&](auto tag) {
        using T = decltype(tag);
        const T* src = data<T>();
        T* dst = t.data<T>();
        parallel_for(rows, kGrainElementwise / std::max<int64_t>(inner, 1), [&](int64_t r) {
            int64_t rem = r, off = 0;  // unravel r over the output's leading axes
            for (int64_t i = n - 2; i >= 0; --i) {
                off += (rem % out_shape[i]) * stride_by_out[i];
                rem /= out_shape[i];
            }
            T* d = dst + r * inner;
            for (int64_t j = 0; j < inner; ++j) d[j] = src[off + j * inner_stride];
        });
    });
    return t;
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
    std::vector<int64_t> order(dim());
    for (int64_t i = 0; i < dim(); ++i) order[i] = i;
    std::swap(order[normalize_axis(a, dim(), "transpose")],
              order[normalize_axis(b, dim(), "transpose")]);
    return permute(order);
}

void Tensor::fill_(double value) {
    dispatch(dtype_, [&](auto tag) {
        using T = decltype(tag);
        T* p = data<T>();
        const T v = static_cast<T>(value);
        parallel_for(numel_, kGrainElementwise, [&](int64_t i) { p[i] = v; });
    });
}

void Tensor::copy_(const Tensor& src) {
    DDPM_CHECK(src.numel() == numel_ && src.dtype() == dtype_, "copy_",
          fmt::format("destination {} source {}", describe(), src.describe()));
    std::memmove(raw_data(), src.raw_data(), nbytes());
}

double Tensor::flat(int64_t i) const {
    DDPM_CHECK(0 <= i && i < numel_, "flat", fmt::format("index {} out of range for {}", i, describe()));
    return dispatch(dtype_, [&](auto tag) -> double {
        using T = decltype(tag);
        return static_cast<double>(data<T>()[i]);
    });
}

void Tensor::set_flat(int64_t i, double v) {
    DDPM_CHECK(0 <= i && i < numel_, "set_flat", fmt::format("index {} out of range for {}", i, describe()));
    dispatch(dtype_, [&](auto tag) {
        using T = decltype(tag);
        data<T>()[i] = static_cast<T>(v);
    });
}

double Tensor::item() const {
    DDPM_CHECK(numel_ == 1, "item", "tensor " + describe() + " has more than one element");
    return flat(0);
}

std::vector<double> Tensor::to_vector() const {
    std::vector<double> v(static_cast<size_t>(numel_));
    for (int64_t i = 0; i < numel_; ++i) v[static_cast<size_t>(i)] = flat(i);
    return v;
}

std::string Tensor::describe() const {
    if (!defined()) return "undefined";
    return std::string(dtype_name(dtype_)) + shape_str(shape_);
}

}  // namespace ddpm
