// module.cpp
#include "nn/module.h"

#include <atomic>
#include <utility>

namespace ddpm {

static std::string join(const std::string& prefix, const std::string& name) {
    return prefix.empty() ? name : prefix + "." + name;
}

void Module::collect(const std::string& prefix, NamedParameters& out) const {
    for (const auto& [name, v] : params_) out.emplace_back(join(prefix, name), v);
    for (const auto& [name, child] : children_) child->collect(join(prefix, name), out);
}

void Module::collect_buffers(const std::string& prefix, NamedBuffers& out) {
    for (auto& [name, b] : buffers_) out.emplace_back(join(prefix, name), b);
    for (auto& [name, child] : children_) child->collect_buffers(join(prefix, name), out);
}

namespace {
std::atomic<int64_t> g_registrations{0};  // any module's, so that a parent sees a child's
}  // namespace

void Module::structure_changed() { g_registrations.fetch_add(1); }

const Module::NamedParameters& Module::named_parameters() const {
    const int64_t version = g_registrations.load();
    if (cache_version_ != version) {
        named_cache_.clear();
        collect("", named_cache_);
        param_cache_.clear();
        for (auto& [name, v] : named_cache_) param_cache_.push_back(v);
        cache_version_ = version;
    }
    return named_cache_;
}

Module::NamedParameters& Module::named_parameters() {
    std::as_const(*this).named_parameters();
    return named_cache_;
}

const std::vector<Variable>& Module::parameters() const {
    named_parameters();
    return param_cache_;
}

Module::NamedBuffers Module::named_buffers() {
    NamedBuffers out;
    collect_buffers("", out);
    return out;
}

int64_t Module::num_parameters() const {
    int64_t n = 0;
    for (auto& [name, v] : named_parameters()) n += v.numel();
    return n;
}

void Module::train(bool on) {
    training_ = on;
    for (auto& [name, child] : children_) child->train(on);
}

void Module::assign_names(const std::string& prefix) {
    name_ = prefix;
    for (auto& [name, child] : children_) child->assign_names(join(prefix, name));
}

void Module::zero_grad() {
    for (auto& [name, v] : named_parameters()) v.zero_grad();
}

Variable Module::register_parameter(const std::string& name, Tensor value) {
    Variable v(std::move(value), true);
    params_.emplace_back(name, v);
    structure_changed();
    return v;
}

void Module::register_buffer(const std::string& name, Tensor* buffer) { buffers_.emplace_back(name, buffer); }

}  // namespace ddpm
