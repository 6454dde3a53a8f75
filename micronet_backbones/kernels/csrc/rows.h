// Vectorised float32 row loops of Dynamic Shift-Max's inference pass (one row = one channel's
// H * W values), each compiled for AVX2 + FMA and baseline x86-64 and picked at run time by CPU
// feature (dispatch.h), so the extension built on one x86 machine runs on any. (The one-sample
// ShiftMax kernels of layers.h, which micronet::fused_shift_max and the runner use, are in
// rows.cpp too, built on their own inlined loops for AVX-512, AVX2 + FMA and baseline.)
#pragma once

#include <cstdint>

namespace micronet {

// sum of row[0 .. n)
float row_sum(const float* row, int64_t n);

// logits[p] += weight * row[p]; returns sum of row (one read of the row for pool + attention)
float row_sum_axpy(const float* row, float weight, float* logits, int64_t n);

// out[i] += weight * row[i] (the hyper-function's small matrix products, row by row)
void axpy(float weight, const float* row, float* out, int64_t n);

// out[p] = max_k sum_j a[j * K + k] * rows[j][p]  (* pi[p] if pi), for J shifts and K fusions;
// K = 1 means no max. a holds J * K coefficients in (j, k) order.
void fuse_rows(const float* const* rows, const float* a, int64_t num_shifts, int64_t num_fusions,
               const float* pi, float* out, int64_t n);

}  // namespace micronet
