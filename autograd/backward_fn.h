// backward_fn.h: the closure each op records with its result: given the gradient of
// the result, it adds the gradients of the inputs. Included by variable.h.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>

#include "autograd/variable.h"
#include "tensor/pool.h"

namespace ddpm {

// guide.md §2: adds the gradients of the inputs, given the gradient of the result. Like a
// std::function<void(const Tensor&, VariableList&)>, but move-only and with the
// closure (the tensors the op saved) stored in the block cache, never the system heap.
class BackwardFn {
public:
    BackwardFn() = default;
    BackwardFn(std::nullptr_t) {}
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, BackwardFn>>>
    BackwardFn(F&& f) {
        using Closure = std::decay_t<F>;
        static_assert(alignof(Closure) <= alignof(std::max_align_t), "over-aligned closure");
        obj_ = new (pool_allocate(sizeof(Closure))) Closure(std::forward<F>(f));
        call_ = [](void* o, const Tensor& g, VariableList& in) { (*static_cast<Closure*>(o))(g, in); };
        destroy_ = [](void* o) {
            static_cast<Closure*>(o)->~Closure();
            pool_deallocate(o, sizeof(Closure));
        };
    }
    BackwardFn(BackwardFn&& o) noexcept : obj_(o.obj_), call_(o.call_), destroy_(o.destroy_) { o.obj_ = nullptr; }
    BackwardFn& operator=(BackwardFn&& o) noexcept {
        if (this != &o) {
            reset();
            obj_ = o.obj_, call_ = o.call_, destroy_ = o.destroy_;
            o.obj_ = nullptr;
        }
        return *this;
    }
    BackwardFn& operator=(std::nullptr_t) {
        reset();
        return *this;
    }
    BackwardFn(const BackwardFn&) = delete;
    BackwardFn& operator=(const BackwardFn&) = delete;
    ~BackwardFn() { reset(); }

    explicit operator bool() const { return obj_ != nullptr; }
    void operator()(const Tensor& grad_out, VariableList& inputs) const { call_(obj_, grad_out, inputs); }

private:
    void reset() {
        if (!obj_) return;
        void* o = obj_;
        obj_ = nullptr;
        destroy_(o);
    }
    void* obj_ = nullptr;
    void (*call_)(void*, const Tensor&, VariableList&) = nullptr;
    void (*destroy_)(void*) = nullptr;
};

}  // namespace ddpm
