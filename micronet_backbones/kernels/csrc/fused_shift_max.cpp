// micronet::fused_shift_max: Dynamic Shift-Max of the inference form in two passes over x.
//
// Per sample: pass 1 reads x once for the channel means (and, with DY-ReLU-C's spatial
// attention, the per-position logits w . x[:, p] + b); the hyper-function's two small fully
// connected layers and the clamp run on those C numbers; pass 2 reads the J shifted rows of each
// channel and writes max_k sum_j a[j, k, c] * x[shift_j(c)] (times the attention, plus the
// residual if any) straight into the output channel the following permutation sends it to.
// Both passes are the one-sample kernels of layers.h (rows.cpp), shared with the whole-network
// runner; this file checks the arguments and runs them per sample.
//
// Arguments (float32; the buffers of deploy.FusedShiftMax):
//   x (N, C, H, W); fc1_weight_t (C, S); fc1_bias (S); fc2_weight_t (S, J*K*C) and fc2_bias,
//   low, high (J*K*C) in (j, k, c) order; shift_index (J - 1, C) int64: source channel of
//   shift j >= 1; output_index (C) int64 permutation or None: out[:, o] = result[:,
//   output_index[o]]; spatial_weight (1, C), spatial_bias (1, 1) (already divided by the
//   temperature) or None; spatial_gamma: pi = min(gamma * H * W * softmax_hw(logits), 1);
//   residual (N, C, H, W) or None, added to the (permuted) output.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "layers.h"

namespace micronet {
namespace {

void check_float(const at::Tensor& t, const char* name, int64_t numel) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat,
              "fused_shift_max: ", name, " must be a float32 CPU tensor, got ", t.scalar_type(),
              " on ", t.device());
  TORCH_CHECK(t.numel() == numel, "fused_shift_max: ", name, " must have ", numel,
              " elements, got ", t.numel());
}

void check_index(const at::Tensor& t, const char* name, int64_t numel, int64_t channels) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kLong && t.numel() == numel,
              "fused_shift_max: ", name, " must be an int64 CPU tensor of ", numel,
              " elements");
  const int64_t* index = t.data_ptr<int64_t>();
  bool in_range = true;  // (one branch-free pass; the per-element check only on failure)
  for (int64_t i = 0; i < numel; ++i) in_range &= index[i] >= 0 && index[i] < channels;
  for (int64_t i = 0; !in_range && i < numel; ++i) {
    TORCH_CHECK(index[i] >= 0 && index[i] < channels, "fused_shift_max: ", name,
                " holds channel ", index[i], " outside [0, ", channels, ")");
  }
}

// dest = inverse(output_index), checking that output_index is a permutation of [0, C).
std::vector<int64_t> inverse_permutation(const at::Tensor& index, int64_t channels) {
  std::vector<int64_t> dest(channels, -1);
  const int64_t* data = index.data_ptr<int64_t>();
  for (int64_t o = 0; o < channels; ++o) {
    TORCH_CHECK(dest[data[o]] < 0, "fused_shift_max: output_index must be a permutation, ",
                "channel ", data[o], " appears twice");
    dest[data[o]] = o;
  }
  return dest;
}

}  // namespace

at::Tensor fused_shift_max(const at::Tensor& input, const at::Tensor& fc1_weight_t,
                           const at::Tensor& fc1_bias, const at::Tensor& fc2_weight_t,
                           const at::Tensor& fc2_bias, const at::Tensor& low,
                           const at::Tensor& high, const at::Tensor& shift_index_in,
                           const std::optional<at::Tensor>& output_index_in,
                           const std::optional<at::Tensor>& spatial_weight_in,
                           const std::optional<at::Tensor>& spatial_bias_in,
                           double spatial_gamma,
                           const std::optional<at::Tensor>& residual_in) {
  TORCH_CHECK(input.dim() == 4, "fused_shift_max: x must be (N, C, H, W), got ",
              input.sizes());
  const int64_t n_batch = input.size(0), c = input.size(1), hw = input.size(2) * input.size(3);
  TORCH_CHECK(fc1_weight_t.dim() == 2 && fc1_weight_t.size(0) == c,
              "fused_shift_max: fc1_weight_t must be (C, S) with C = ", c);
  const int64_t s = fc1_weight_t.size(1);
  const int64_t j_count = shift_index_in.dim() == 2 ? shift_index_in.size(0) + 1 : 0;
  TORCH_CHECK(j_count >= 1 && shift_index_in.size(1) == c,
              "fused_shift_max: shift_index must be (J - 1, C)");
  TORCH_CHECK(fc2_weight_t.dim() == 2 && fc2_weight_t.size(0) == s && c > 0 &&
                  fc2_weight_t.size(1) % (j_count * c) == 0 && fc2_weight_t.size(1) > 0,
              "fused_shift_max: fc2_weight_t must be (S, J * K * C)");
  const int64_t k_count = fc2_weight_t.size(1) / (j_count * c);
  const int64_t m = j_count * k_count * c;

  const at::Tensor x = input.contiguous();
  check_float(x, "x", x.numel());
  const at::Tensor w1 = fc1_weight_t.contiguous(), b1 = fc1_bias.contiguous();
  const at::Tensor w2 = fc2_weight_t.contiguous(), b2 = fc2_bias.contiguous();
  const at::Tensor lo = low.contiguous(), hi = high.contiguous();
  check_float(w1, "fc1_weight_t", c * s);
  check_float(b1, "fc1_bias", s);
  check_float(w2, "fc2_weight_t", s * m);
  check_float(b2, "fc2_bias", m);
  check_float(lo, "low", m);
  check_float(hi, "high", m);
  const at::Tensor shift_index = shift_index_in.contiguous();
  check_index(shift_index, "shift_index", (j_count - 1) * c, c);
  std::vector<int64_t> dest;
  if (output_index_in.has_value()) {
    const at::Tensor output_index = output_index_in->contiguous();
    check_index(output_index, "output_index", c, c);
    dest = inverse_permutation(output_index, c);
  }
  const bool spatial = spatial_weight_in.has_value();
  TORCH_CHECK(spatial == spatial_bias_in.has_value(),
              "fused_shift_max: spatial_weight and spatial_bias come together");
  at::Tensor spatial_weight;
  float spatial_bias = 0.0f;
  if (spatial) {
    spatial_weight = spatial_weight_in->contiguous();
    const at::Tensor bias = spatial_bias_in->contiguous();
    check_float(spatial_weight, "spatial_weight", c);
    check_float(bias, "spatial_bias", 1);
    spatial_bias = bias.data_ptr<float>()[0];
  }
  at::Tensor residual;
  if (residual_in.has_value()) {
    TORCH_CHECK(residual_in->sizes() == x.sizes(), "fused_shift_max: residual must have x's ",
                "shape ", x.sizes(), ", got ", residual_in->sizes());
    residual = residual_in->contiguous();
    check_float(residual, "residual", x.numel());
  }

  ShiftMax op;
  op.channels = c;
  op.squeeze = s;
  op.num_shifts = j_count;
  op.num_fusions = k_count;
  op.fc1_weight_t = w1.data_ptr<float>();
  op.fc1_bias = b1.data_ptr<float>();
  op.fc2_weight_t = w2.data_ptr<float>();
  op.fc2_bias = b2.data_ptr<float>();
  op.low = lo.data_ptr<float>();
  op.high = hi.data_ptr<float>();
  op.shift_index = shift_index.data_ptr<int64_t>();
  op.spatial_weight = spatial ? spatial_weight.data_ptr<float>() : nullptr;
  op.spatial_bias = spatial_bias;
  op.spatial_gamma = static_cast<float>(spatial_gamma);

  at::Tensor out = at::empty(x.sizes(), x.options());
  if (out.numel() == 0) return out;
  const float* x_data = x.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  const float* residual_data = residual.defined() ? residual.data_ptr<float>() : nullptr;
  const int64_t* dest_data = dest.empty() ? nullptr : dest.data();
  std::vector<float> coefficients(shift_max_coefficients_size(op, hw));
  // Channels per parallel task: enough work (>= ~32k elements) to pay for a task.
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(hw, 1));
  for (int64_t n = 0; n < n_batch; ++n) {
    const float* xn = x_data + n * c * hw;
    float* outn = out_data + n * c * hw;
    const float* residualn = residual_data ? residual_data + n * c * hw : nullptr;
    shift_max_coefficients(op, xn, hw, coefficients.data());
    if (c <= grain || at::get_num_threads() == 1) {
      shift_max_apply(op, xn, hw, coefficients.data(), outn, dest_data, residualn, 0, c);
    } else {
      at::parallel_for(0, c, grain, [&](int64_t begin, int64_t end) {
        shift_max_apply(op, xn, hw, coefficients.data(), outn, dest_data, residualn, begin,
                        end);
      });
    }
  }
  return out;
}

TORCH_LIBRARY_FRAGMENT(micronet, m) {
  m.def(
      "fused_shift_max(Tensor x, Tensor fc1_weight_t, Tensor fc1_bias, Tensor fc2_weight_t, "
      "Tensor fc2_bias, Tensor low, Tensor high, Tensor shift_index, Tensor? output_index, "
      "Tensor? spatial_weight, Tensor? spatial_bias, float spatial_gamma, "
      "Tensor? residual=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(micronet, CPU, m) { m.impl("fused_shift_max", &fused_shift_max); }

}  // namespace micronet
