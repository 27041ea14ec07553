// variable.cpp: the graph, the topological order and the backward pass.
#include "autograd/variable.h"

#include <atomic>
#include <vector>

#include "autograd/profiler.h"
#include "tensor/elementwise.h"

namespace ddpm {

namespace {
std::atomic<int64_t> g_live_nodes{0};
thread_local bool t_grad_enabled = true;
}  // namespace

struct Variable::Impl {
    Tensor data;
    Tensor grad;
    bool requires_grad = false;
    // Graph edge: set only on results of ops recorded while grad mode was on.
    VariableList inputs;
    BackwardFn backward;
    const char* op = "leaf";  // a string literal from the op
    bool released = false;  // a node whose backward has run
    bool queued = false;    // reached by the search of the running backward()

    bool is_node() const { return static_cast<bool>(backward); }
    void release() {  // drop the edge: inputs and everything the closure saved
        if (!is_node()) return;
        released = true;
        backward = nullptr;
        inputs.clear();
        g_live_nodes.fetch_sub(1);
    }
    ~Impl() { release(); }
};

// guide.md §2: zero once a step has released its graph.
int64_t live_graph_nodes() { return g_live_nodes.load(); }

NoGradGuard::NoGradGuard() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = previous_; }
bool grad_mode_enabled() { return t_grad_enabled; }

Variable::Variable(Tensor data, bool requires_grad) : impl_(std::allocate_shared<Impl>(PoolAllocator<Impl>())) {
    impl_->data = std::move(data);
    impl_->requires_grad = requires_grad;
}

const Tensor& Variable::data() const {
    DDPM_CHECK(defined(), "Variable", "undefined variable");
    return impl_->data;
}
Tensor& Variable::data() {
    DDPM_CHECK(defined(), "Variable", "undefined variable");
    return impl_->data;
}

bool Variable::requires_grad() const { return defined() && impl_->requires_grad; }
void Variable::set_requires_grad(bool on) {
    DDPM_CHECK(is_leaf(), "set_requires_grad", std::string("only a leaf's flag can be set (this is a result of ") + impl_->op + ")");
    impl_->requires_grad = on;
}
bool Variable::is_leaf() const { return defined() && !impl_->is_node(); }

const Tensor& Variable::grad() const { return impl_->grad; }
void Variable::set_grad(Tensor g) {
    if (g.defined())
        DDPM_CHECK(g.shape() == shape() && g.dtype() == dtype(), "set_grad",
              "gradient " + g.describe() + " for variable " + data().describe());
    impl_->grad = std::move(g);
}
void Variable::zero_grad() { impl_->grad = Tensor(); }
const char* Variable::op_name() const { return impl_->op; }

// guide.md §2: gradients add: a value used twice gets both contributions.
void Variable::accumulate_grad(Tensor g) {
    DDPM_CHECK(g.shape() == shape() && g.dtype() == dtype(), "backward",
          "gradient " + g.describe() + " for the " + std::string(impl_->op) + " result " + data().describe());
    // A result's gradient is read by its backward rule and then dropped: it may
    // share g's buffer (the same gradient often goes to both inputs of an add, or
    // comes back as a view from a reshape), and a second gradient then makes a new
    // sum instead of adding into a buffer someone else still reads. A leaf's is
    // kept, and its user may change it in place (clipping, an allreduce), so it
    // takes g's buffer only if nobody else holds it.
    if (!impl_->grad.defined())
        impl_->grad = g.storage_unique() || impl_->is_node() ? std::move(g) : g.clone();
    else if (impl_->grad.storage_unique())
        add_(impl_->grad, g);
    else
        impl_->grad = ddpm::add(impl_->grad, g);
}

Variable Variable::detach() const { return Variable(data(), false); }

// guide.md §2: records inputs and the gradient rule of an op.
Variable Variable::make_result(Tensor data, VariableList inputs, BackwardFn backward, const char* op) {
    Variable out(std::move(data), false);
    out.impl_->op = op;
    if (!t_grad_enabled) return out;
    bool any = false;
    for (const Variable& v : inputs) any = any || v.requires_grad();
    if (!any) return out;
    out.impl_->requires_grad = true;
    out.impl_->inputs = std::move(inputs);
    out.impl_->backward = std::move(backward);
    g_live_nodes.fetch_add(1);
    return out;
}

// guide.md §2: topological order by DFS, closures run in reverse, each adds into its inputs.
void Variable::backward() {
    DDPM_CHECK(numel() == 1, "backward", "needs a scalar output or an explicit gradient; got " + data().describe());
    backward(Tensor::ones(shape(), dtype()));
}

void Variable::backward(const Tensor& grad_out) {
    DDPM_CHECK(requires_grad(), "backward", std::string("the ") + impl_->op + " result does not require a gradient");
    DDPM_CHECK(!impl_->released, "backward",
          std::string("the graph of this ") + impl_->op + " result was released by an earlier backward()");
    DDPM_CHECK(grad_out.shape() == shape() && grad_out.dtype() == dtype(), "backward",
          "seed gradient " + grad_out.describe() + " for output " + data().describe());

    if (is_leaf()) {  // d(x)/d(x): nothing to propagate
        accumulate_grad(grad_out.clone());
        return;
    }
    // Depth-first search from the output; a node is appended after all of its
    // inputs, so reading the list backwards visits every consumer before what it consumes.
    // `order` owns the nodes, so releasing one node's inputs frees nothing still to be visited.
    // The two lists keep their capacity for the next backward() on this thread:
    // they are taken here and put back at the end (a backward() run from inside
    // a closure finds none to take and makes its own).
    struct SearchLists {
        std::vector<std::shared_ptr<Impl>> order;
        std::vector<std::pair<std::shared_ptr<Impl>, size_t>> stack;
    };
    thread_local SearchLists t_spare;
    SearchLists lists = std::move(t_spare);
    auto& [order, stack] = lists;
    order.clear();
    stack.clear();
    stack.push_back({impl_, 0});
    impl_->queued = true;
    while (!stack.empty()) {
        auto& [node, next] = stack.back();
        if (next < node->inputs.size()) {
            const std::shared_ptr<Impl>& in = node->inputs[next++].impl_;
            if (in && in->is_node() && !in->queued) {
                in->queued = true;
                stack.push_back({in, 0});
            }
        } else {
            order.push_back(std::move(node));
            stack.pop_back();
        }
    }
    for (auto& node : order) node->queued = false;

    accumulate_grad(grad_out.clone());
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        Impl& node = **it;
        if (node.grad.defined()) {
            OpTimer timer(node.op, /*backward=*/true);
            node.backward(node.grad, node.inputs);
        }
        // A result's gradient is not kept (a leaf's is), and its edge goes now,
        // freeing the tensors its closure saved as soon as they are no longer needed.
        node.grad = Tensor();
        node.release();
    }
    order.clear();  // the nodes go now, not at the next backward()
    t_spare = std::move(lists);
}

}  // namespace ddpm
