// The Python module micronet_backbones.kernels._C: loading this shared library registers the
// micronet:: operators with PyTorch's dispatcher (static initialisers; torch must be imported
// first), and the module holds the whole-network Runner class (runner.cpp).
#include <torch/extension.h>

namespace micronet {
void bind_runner(pybind11::module_& module);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.doc() = "micronet:: operators (registered on import) and the Runner class";
  micronet::bind_runner(module);
}
