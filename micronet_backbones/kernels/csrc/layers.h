// One-sample float32 kernels of the inference form's layers, on raw NCHW planes.
//
// Shared by the per-layer operators (micronet::separable_conv, micronet::grouped_pointwise,
// micronet::fused_shift_max) and the whole-network runner (runner.cpp), which calls them back to
// back on buffers it owns, without the dispatcher or Python in between.
//
// Conventions:
// * A sample's tensor is C planes of H * W floats, contiguous.
// * `dest` (nullable): result channel c is written to output plane dest[c]. A channel
//   permutation y = x[:, index] that follows the layer is dest = inverse(index); nullptr = c.
// * `residual` (nullable): added after the activation, read at the plane written:
//   out[dest[c]] = act(result[c]) + residual[dest[c]] (the block input of a residual block,
//   already in the output's channel order).
// * [begin, end): the slice of the layer's channels this call computes (see each kernel), so
//   that callers can split one sample over threads; every kernel is single-threaded itself.
#pragma once

#include <cstdint>

namespace micronet {

// A k x 1 conv (stride (s, 1), zero padding (p, 0), `groups1` groups, BN folded into
// weight1 / bias1), then a depthwise 1 x k conv (stride (1, s), padding (0, p), `m2` = out /
// mid outputs per mid channel, BN folded), then ReLU6 if `relu6`. Exact: the 1 x k conv
// zero-pads the *intermediate* map (MicroNet's Micro-Factorized depthwise conv and its stem).
// MicroNet's depthwise pairs have groups1 = in_channels; its stem has groups1 = 1, in = 3.
struct SeparableConv {
  int64_t in_channels, mid_channels, out_channels, groups1;
  int64_t k, stride, pad;
  const float* weight1;  // (mid, in / groups1, k): mid channel m reads group m / (mid / groups1)
  const float* bias1;    // (mid)
  const float* weight2;  // (out, k): output o reads mid channel o / (out / mid)
  const float* bias2;    // (out)
  bool relu6;
};

// Output plane: (h + 2p - k) / s + 1 rows, (w + 2p - k) / s + 1 columns.
int64_t separable_out_size(int64_t size, const SeparableConv& conv);
// Floats of scratch memory one call needs for an h x w input (any [begin, end)).
int64_t separable_conv_workspace(const SeparableConv& conv, int64_t h, int64_t w);
// Computes mid channels [begin, end) and their outputs.
void separable_conv(const SeparableConv& conv, const float* in, int64_t h, int64_t w,
                    float* out, const int64_t* dest, float* workspace, int64_t begin,
                    int64_t end);

// A grouped 1 x 1 conv with BN folded: out[o] = act(bias[o] + sum_i weight[o, i] *
// in[g * I/G + i]) for o in group g = o / (O / G), act = ReLU6 if `relu6`, else identity.
struct GroupedPointwise {
  int64_t in_channels, out_channels, groups;
  const float* weight;  // (out, in / groups)
  const float* bias;    // (out)
  bool relu6;
};

// Computes output channels [begin, end).
void grouped_pointwise(const GroupedPointwise& conv, const float* in, int64_t hw, float* out,
                       const int64_t* dest, const float* residual, int64_t begin, int64_t end);

// Dynamic Shift-Max of the inference form (deploy.FusedShiftMax's buffers; see
// fused_shift_max.cpp for the math): coefficients a = clamp(relu(mean(x) @ W1t + b1) @ W2t
// + b2, low, high) in (j, k, c) order; y[c] = max_k sum_j a[j, k, c] * x[shift_j(c)]
// (times the spatial attention pi when spatial_weight is set).
struct ShiftMax {
  int64_t channels, squeeze, num_shifts, num_fusions;  // C, S, J, K
  const float* fc1_weight_t;   // (C, S)
  const float* fc1_bias;       // (S)
  const float* fc2_weight_t;   // (S, J * K * C)
  const float* fc2_bias;       // (J * K * C), as low, high
  const float* low;
  const float* high;
  const int64_t* shift_index;  // (J - 1, C): source channel of shift j >= 1
  const float* spatial_weight; // (C) or nullptr (no spatial attention)
  float spatial_bias, spatial_gamma;
};

// Floats of `coefficients` (J * K * C, plus H * W for the attention pi).
int64_t shift_max_coefficients_size(const ShiftMax& op, int64_t hw);
// Pass 1 over x: pooling, hyper-function (and attention); whole sample, cheap.
void shift_max_coefficients(const ShiftMax& op, const float* x, int64_t hw, float* coefficients);
// Pass 2: result channels [begin, end).
void shift_max_apply(const ShiftMax& op, const float* x, int64_t hw, const float* coefficients,
                     float* out, const int64_t* dest, const float* residual, int64_t begin,
                     int64_t end);

}  // namespace micronet
