// trace.cpp
#include "nn/trace.h"

namespace ddpm {

static thread_local LayerTrace* t_active = nullptr;

LayerTrace::LayerTrace() : previous_(t_active) { t_active = this; }
LayerTrace::~LayerTrace() { t_active = previous_; }
bool LayerTrace::active() { return t_active != nullptr; }
void LayerTrace::record(LayerRecord r) {
    if (t_active) t_active->records_.push_back(std::move(r));
}

}  // namespace ddpm
