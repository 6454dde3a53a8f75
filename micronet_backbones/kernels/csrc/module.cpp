// The Python module micronet_backbones.kernels._C: importing it loads this shared library, whose
// static initialisers register the micronet:: operators with PyTorch's dispatcher (torch must be
// imported first). The module itself holds nothing.
#include <Python.h>

extern "C" {
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C",
                                      "micronet:: operators (registered on import)", -1, nullptr};
  return PyModule_Create(&module);
}
}
