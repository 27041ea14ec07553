// variable.h: reverse-mode automatic differentiation over a dynamic graph.
//
// A Variable is a Tensor plus what autodiff needs: whether it wants a gradient,
// the gradient itself, and (for a result of an op) the inputs it came from and a
// function that turns the gradient of the result into gradients of the inputs.
// backward() orders the graph topologically by depth-first search and runs those
// functions from the output back to the leaves; every one *adds* into its
// inputs' gradients, so a value used twice gets the sum of both contributions.
// Afterwards the graph is released: no op keeps its inputs or saved tensors.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "tensor/pool.h"
#include "tensor/tensor.h"

namespace ddpm {

// guide.md §2: a tensor plus its gradient and the edge to the op that made it.
class Variable;

// The inputs of an op's result (its graph edge), kept in the block cache (pool.h).
using VariableList = std::vector<Variable, PoolAllocator<Variable>>;

// guide.md §2: the closure an op records (autograd/backward_fn.h, after this class).
class BackwardFn;

class Variable {
public:
    Variable() = default;
    explicit Variable(Tensor data, bool requires_grad = false);

    bool defined() const { return impl_ != nullptr; }
    const Tensor& data() const;
    Tensor& data();  // in-place edits (optimiser steps) go through here
    const Shape& shape() const { return data().shape(); }
    int64_t dim() const { return data().dim(); }
    int64_t size(int64_t d) const { return data().size(d); }
    int64_t numel() const { return data().numel(); }
    DType dtype() const { return data().dtype(); }
    double item() const { return data().item(); }

    // A leaf wants a gradient when asked to; a result wants one when any input does.
    bool requires_grad() const;
    void set_requires_grad(bool on);
    bool is_leaf() const;

    // The accumulated gradient (undefined until a backward reaches this variable).
    const Tensor& grad() const;
    void set_grad(Tensor g);
    void zero_grad();  // drops the gradient

    // Backward from a scalar (seed 1), or from any shape with a given upstream gradient.
    void backward();
    void backward(const Tensor& grad_out);

    // The same data, cut off from the graph.
    Variable detach() const;

    // Op name, for error messages and graph dumps ("conv2d", "add", "leaf").
    const char* op_name() const;

    // Used by ops: a result of `op` computed from `inputs`. When grad mode is off
    // or no input requires a gradient, no graph is recorded.
    static Variable make_result(Tensor data, VariableList inputs, BackwardFn backward,
                                const char* op);

    // Adds g into this variable's gradient. When there is none yet, g's buffer is
    // taken over if g is its only holder, else copied, so two gradients never alias.
    void accumulate_grad(Tensor g);

    bool same_as(const Variable& o) const { return impl_ == o.impl_; }

    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

// Graph nodes (results holding a backward function) alive right now: a step that
// ends with this at zero has released its whole graph.
int64_t live_graph_nodes();

// While one exists on this thread, ops record no graph and hold no saved tensors.
// guide.md §2: no graph recorded while it lives.
class NoGradGuard {
public:
    NoGradGuard();
    ~NoGradGuard();
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
    bool previous_;
};
bool grad_mode_enabled();

}  // namespace ddpm

// BackwardFn, the type of every op's gradient rule; after the engine, since only ops need its insides.
#include "autograd/backward_fn.h"
