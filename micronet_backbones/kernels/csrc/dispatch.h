// Run-time choice of instruction set for the hot loops: each dispatched function is compiled
// twice, for AVX2 + FMA and for baseline x86-64, and the first call picks what the CPU has
// (by feature, so AMD and Intel alike), so an extension built on one x86 machine runs on any.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define MICRONET_INLINE __attribute__((always_inline)) inline
#define MICRONET_AVX2 __attribute__((target("avx2,fma")))

namespace micronet {
inline bool cpu_has_avx2_fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
}  // namespace micronet

// Defines `ret name params` calling `name##_impl args` (an always-inline function) compiled
// for AVX2 + FMA when the CPU has them, else for the baseline.
#define MICRONET_DISPATCH(ret, name, params, args)                                      \
  MICRONET_AVX2 static ret name##_avx2 params { return name##_impl args; }              \
  static ret name##_baseline params { return name##_impl args; }                       \
  ret name params {                                                                     \
    static ret(*const impl) params = cpu_has_avx2_fma() ? name##_avx2 : name##_baseline; \
    return impl args;                                                                   \
  }
#else
#define MICRONET_INLINE inline
#define MICRONET_DISPATCH(ret, name, params, args) \
  ret name params { return name##_impl args; }
#endif
