// module.h: the base of every layer, in the spirit of PyTorch's torch::nn::Module.
//
// A module owns named parameters (Variables that require a gradient) and named
// submodules; named_parameters() walks the tree and joins names with dots, so a
// U-Net's parameters read like "down.1.block.0.conv1.weight" — the names under
// which checkpoints store them.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"

namespace ddpm {

class Module {
public:
    virtual ~Module() = default;
    Module() = default;
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;

    using NamedParameters = std::vector<std::pair<std::string, Variable>>;
    using NamedBuffers = std::vector<std::pair<std::string, Tensor*>>;

    // Depth-first, in registration order. Worked out once and kept (a training
    // step asks for them several times); any registration anywhere resets that.
    // The non-const form lets callers write the parameters' tensors and
    // gradients (Variables are handles); the list itself must not be changed.
    const NamedParameters& named_parameters() const;
    NamedParameters& named_parameters();
    const std::vector<Variable>& parameters() const;
    NamedBuffers named_buffers();  // state that is saved but not trained
    int64_t num_parameters() const;

    void train(bool on = true);  // recursive
    void eval() { train(false); }
    bool is_training() const { return training_; }
    void zero_grad();

    // The module's dotted path from the root ("down.0.block.1.conv1"); set for the
    // whole tree by assign_names() on the root once it is built. Used in errors and traces.
    const std::string& name() const { return name_; }
    void assign_names(const std::string& prefix = "");

    template <class M> std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
        children_.emplace_back(name, m);
        structure_changed();
        return m;
    }

protected:
    Variable register_parameter(const std::string& name, Tensor value);
    void register_buffer(const std::string& name, Tensor* buffer);

private:
    void collect(const std::string& prefix, NamedParameters& out) const;
    void collect_buffers(const std::string& prefix, NamedBuffers& out);
    static void structure_changed();

    // The lists above as last worked out, and the registration count they saw.
    mutable NamedParameters named_cache_;
    mutable std::vector<Variable> param_cache_;
    mutable int64_t cache_version_ = -1;

    NamedParameters params_;
    std::vector<std::pair<std::string, Tensor*>> buffers_;
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
    bool training_ = true;
    std::string name_;
};

}  // namespace ddpm
