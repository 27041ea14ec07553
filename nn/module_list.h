// module_list.h: an indexed list of submodules, named "0", "1", ... like torch.nn.ModuleList.
#pragma once

#include "nn/module.h"

namespace ddpm {

template <class M> class ModuleList : public Module {
public:
    void push_back(std::shared_ptr<M> m) { items_.push_back(register_module(std::to_string(items_.size()), m)); }
    M& operator[](size_t i) { return *items_.at(i); }
    size_t size() const { return items_.size(); }
    bool empty() const { return items_.empty(); }

private:
    std::vector<std::shared_ptr<M>> items_;
};

}  // namespace ddpm
