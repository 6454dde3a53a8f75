// Row loops of the inference pass; see rows.h. Plain loops the compiler vectorises
// (-O3, `omp simd` for the reductions), compiled per instruction set (dispatch.h).
#include "rows.h"

#include <algorithm>

#include "dispatch.h"

namespace micronet {

MICRONET_INLINE float row_sum_impl(const float* row, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t p = 0; p < n; ++p) sum += row[p];
  return sum;
}

MICRONET_INLINE float row_sum_axpy_impl(const float* row, float weight, float* logits, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t p = 0; p < n; ++p) {
    sum += row[p];
    logits[p] += weight * row[p];
  }
  return sum;
}

MICRONET_INLINE void axpy_impl(float weight, const float* __restrict row, float* __restrict out,
                          int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] += weight * row[i];
}

namespace {

// J = 2, K = 2: the Shift-Max after the first layer and the depthwise conv of every block.
MICRONET_INLINE void fuse_j2_k2(const float* __restrict x0, const float* __restrict x1,
                                float a00, float a01, float a10, float a11,
                                const float* __restrict pi, float* __restrict out, int64_t n) {
  // a_jk: shift j, fusion k.
  if (pi == nullptr) {
#pragma omp simd
    for (int64_t p = 0; p < n; ++p) {
      out[p] = std::max(x0[p] * a00 + x1[p] * a10, x0[p] * a01 + x1[p] * a11);
    }
  } else {
#pragma omp simd
    for (int64_t p = 0; p < n; ++p) {
      out[p] = std::max(x0[p] * a00 + x1[p] * a10, x0[p] * a01 + x1[p] * a11) * pi[p];
    }
  }
}

// J = 2, K = 1: the linear shift fusion after the squeezing pointwise convs.
MICRONET_INLINE void fuse_j2_k1(const float* __restrict x0, const float* __restrict x1,
                                float a0, float a1, const float* __restrict pi,
                                float* __restrict out, int64_t n) {
  if (pi == nullptr) {
#pragma omp simd
    for (int64_t p = 0; p < n; ++p) out[p] = x0[p] * a0 + x1[p] * a1;
  } else {
#pragma omp simd
    for (int64_t p = 0; p < n; ++p) out[p] = (x0[p] * a0 + x1[p] * a1) * pi[p];
  }
}

// Any J, K: fusion by fusion, keeping the running max in `out`.
MICRONET_INLINE void fuse_generic(const float* const* rows, const float* a, int64_t num_shifts,
                  int64_t num_fusions, const float* pi, float* out, int64_t n) {
  for (int64_t k = 0; k < num_fusions; ++k) {
    for (int64_t p = 0; p < n; ++p) {
      float fused = rows[0][p] * a[k];
      for (int64_t j = 1; j < num_shifts; ++j) fused += rows[j][p] * a[j * num_fusions + k];
      out[p] = k == 0 ? fused : std::max(out[p], fused);
    }
  }
  if (pi != nullptr) {
    for (int64_t p = 0; p < n; ++p) out[p] *= pi[p];
  }
}

}  // namespace

MICRONET_INLINE void fuse_rows_impl(const float* const* rows, const float* a, int64_t num_shifts,
                                    int64_t num_fusions, const float* pi, float* out, int64_t n) {
  if (num_shifts == 2 && num_fusions == 2) {
    fuse_j2_k2(rows[0], rows[1], a[0], a[1], a[2], a[3], pi, out, n);
  } else if (num_shifts == 2 && num_fusions == 1) {
    fuse_j2_k1(rows[0], rows[1], a[0], a[1], pi, out, n);
  } else {
    fuse_generic(rows, a, num_shifts, num_fusions, pi, out, n);
  }
}

MICRONET_DISPATCH(float, row_sum, (const float* row, int64_t n), (row, n))
MICRONET_DISPATCH(float, row_sum_axpy, (const float* row, float weight, float* logits, int64_t n),
                  (row, weight, logits, n))
MICRONET_DISPATCH(void, axpy, (float weight, const float* row, float* out, int64_t n),
                  (weight, row, out, n))
MICRONET_DISPATCH(void, fuse_rows,
                  (const float* const* rows, const float* a, int64_t num_shifts,
                   int64_t num_fusions, const float* pi, float* out, int64_t n),
                  (rows, a, num_shifts, num_fusions, pi, out, n))

}  // namespace micronet
