// trace.cpp
#include "nn/trace.h"

namespace ddpm {

static thread_local LayerTrace* t_active = nullptr;

LayerTrace::LayerTrace() : previous_(t_active) { t_active = this; }
LayerTrace::~LayerTrace() { t_active = previous_; }
LayerTrace* LayerTrace::active() { return t_active; }

}  // namespace ddpm
