// micronet::fused_shift_max: Dynamic Shift-Max of the inference form in two passes over x.
//
// Per sample: pass 1 reads x once for the channel means (and, with DY-ReLU-C's spatial
// attention, the per-position logits w . x[:, p] + b); the hyper-function's two small fully
// connected layers and the clamp run on those C numbers; pass 2 reads the J shifted rows of each
// channel and writes max_k sum_j a[j, k, c] * x[shift_j(c)] (times the attention) straight
// into the output channel the following permutation sends it to.
//
// Arguments (float32, contiguous; the buffers of deploy.FusedShiftMax):
//   x (N, C, H, W); fc1_weight_t (C, S); fc1_bias (S); fc2_weight_t (S, J*K*C) and fc2_bias,
//   low, high (J*K*C) in (j, k, c) order; shift_index (J - 1, C) int64: source channel of
//   shift j >= 1; output_index (C) int64 or None: out[:, o] = result[:, output_index[o]];
//   spatial_weight (1, C), spatial_bias (1, 1) (already divided by the temperature) or None;
//   spatial_gamma: pi = min(gamma * H * W * softmax_hw(logits), 1).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "rows.h"

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
  for (int64_t i = 0; i < numel; ++i) {
    TORCH_CHECK(index[i] >= 0 && index[i] < channels, "fused_shift_max: ", name,
                " holds channel ", index[i], " outside [0, ", channels, ")");
  }
}

}  // namespace

at::Tensor fused_shift_max(const at::Tensor& input, const at::Tensor& fc1_weight_t,
                           const at::Tensor& fc1_bias, const at::Tensor& fc2_weight_t,
                           const at::Tensor& fc2_bias, const at::Tensor& low,
                           const at::Tensor& high, const at::Tensor& shift_index_in,
                           const std::optional<at::Tensor>& output_index_in,
                           const std::optional<at::Tensor>& spatial_weight_in,
                           const std::optional<at::Tensor>& spatial_bias_in,
                           double spatial_gamma) {
  TORCH_CHECK(input.dim() == 4, "fused_shift_max: x must be (N, C, H, W), got ",
              input.sizes());
  const int64_t n_batch = input.size(0), c = input.size(1), hw = input.size(2) * input.size(3);
  TORCH_CHECK(fc1_weight_t.dim() == 2 && fc1_weight_t.size(0) == c,
              "fused_shift_max: fc1_weight_t must be (C, S) with C = ", c);
  const int64_t s = fc1_weight_t.size(1);
  const int64_t j_count = shift_index_in.dim() == 2 ? shift_index_in.size(0) + 1 : 0;
  TORCH_CHECK(j_count >= 1 && shift_index_in.size(1) == c,
              "fused_shift_max: shift_index must be (J - 1, C)");
  TORCH_CHECK(fc2_weight_t.dim() == 2 && fc2_weight_t.size(0) == s &&
                  fc2_weight_t.size(1) % (j_count * c) == 0,
              "fused_shift_max: fc2_weight_t must be (S, J * K * C)");
  const int64_t k_count = fc2_weight_t.size(1) / (j_count * c);
  const int64_t m = j_count * k_count * c;
  TORCH_CHECK(j_count <= 16 && j_count * k_count <= 64,
              "fused_shift_max supports J <= 16 and J * K <= 64, got J = ", j_count,
              ", K = ", k_count);

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
  at::Tensor output_index;
  if (output_index_in.has_value()) {
    output_index = output_index_in->contiguous();
    check_index(output_index, "output_index", c, c);
  }
  const bool spatial = spatial_weight_in.has_value();
  TORCH_CHECK(spatial == spatial_bias_in.has_value(),
              "fused_shift_max: spatial_weight and spatial_bias come together");
  at::Tensor spatial_weight, spatial_bias;
  if (spatial) {
    spatial_weight = spatial_weight_in->contiguous();
    spatial_bias = spatial_bias_in->contiguous();
    check_float(spatial_weight, "spatial_weight", c);
    check_float(spatial_bias, "spatial_bias", 1);
  }

  at::Tensor out = at::empty(x.sizes(), x.options());
  const float* x_data = x.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  const int64_t* shifts = shift_index.data_ptr<int64_t>();
  const int64_t* order = output_index.defined() ? output_index.data_ptr<int64_t>() : nullptr;
  const float inv_hw = 1.0f / static_cast<float>(hw);
  // Channels per parallel task: enough work (>= ~32k elements) to pay for a task.
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(hw, 1));

  std::vector<float> pooled(c), hidden(s), a(m), pi(spatial ? hw : 0);
  for (int64_t n = 0; n < n_batch; ++n) {
    const float* xn = x_data + n * c * hw;
    float* outn = out_data + n * c * hw;
    // Pass 1: channel sums (and attention logits).
    if (spatial) {
      const float* w = spatial_weight.data_ptr<float>();
      std::fill(pi.begin(), pi.end(), spatial_bias.data_ptr<float>()[0]);
      for (int64_t ch = 0; ch < c; ++ch) {
        pooled[ch] = row_sum_axpy(xn + ch * hw, w[ch], pi.data(), hw) * inv_hw;
      }
    } else {
      at::parallel_for(0, c, grain, [&](int64_t begin, int64_t end) {
        for (int64_t ch = begin; ch < end; ++ch) pooled[ch] = row_sum(xn + ch * hw, hw) * inv_hw;
      });
    }
    // Hyper-function: hidden = relu(pooled @ W1t + b1); a = clamp(hidden @ W2t + b2, lo, hi).
    const float* w1p = w1.data_ptr<float>();
    std::copy(b1.data_ptr<float>(), b1.data_ptr<float>() + s, hidden.begin());
    for (int64_t ch = 0; ch < c; ++ch) axpy(pooled[ch], w1p + ch * s, hidden.data(), s);
    const float* w2p = w2.data_ptr<float>();
    std::copy(b2.data_ptr<float>(), b2.data_ptr<float>() + m, a.begin());
    for (int64_t i = 0; i < s; ++i) {
      const float v = std::max(hidden[i], 0.0f);
      if (v == 0.0f) continue;
      axpy(v, w2p + i * m, a.data(), m);
    }
    const float* lop = lo.data_ptr<float>();
    const float* hip = hi.data_ptr<float>();
    for (int64_t o = 0; o < m; ++o) a[o] = std::min(std::max(a[o], lop[o]), hip[o]);
    // Spatial attention: pi = min(gamma * HW * softmax(logits), 1).
    if (spatial) {
      const float top = *std::max_element(pi.begin(), pi.end());
      double total = 0.0;
      for (int64_t p = 0; p < hw; ++p) {
        pi[p] = std::exp(pi[p] - top);
        total += pi[p];
      }
      const float scale = static_cast<float>(spatial_gamma * static_cast<double>(hw) / total);
      for (int64_t p = 0; p < hw; ++p) pi[p] = std::min(pi[p] * scale, 1.0f);
    }
    // Pass 2: shift, fuse, max, written in the output order.
    const float* pi_data = spatial ? pi.data() : nullptr;
    at::parallel_for(0, c, grain, [&](int64_t begin, int64_t end) {
      const float* rows[16];
      float coefficients[64];
      for (int64_t o = begin; o < end; ++o) {
        const int64_t ch = order ? order[o] : o;
        rows[0] = xn + ch * hw;
        for (int64_t j = 1; j < j_count; ++j) rows[j] = xn + shifts[(j - 1) * c + ch] * hw;
        for (int64_t jk = 0; jk < j_count * k_count; ++jk) coefficients[jk] = a[jk * c + ch];
        fuse_rows(rows, coefficients, j_count, k_count, pi_data, outn + o * hw, hw);
      }
    });
  }
  return out;
}

TORCH_LIBRARY_FRAGMENT(micronet, m) {
  m.def(
      "fused_shift_max(Tensor x, Tensor fc1_weight_t, Tensor fc1_bias, Tensor fc2_weight_t, "
      "Tensor fc2_bias, Tensor low, Tensor high, Tensor shift_index, Tensor? output_index, "
      "Tensor? spatial_weight, Tensor? spatial_bias, float spatial_gamma) -> Tensor");
}

TORCH_LIBRARY_IMPL(micronet, CPU, m) { m.impl("fused_shift_max", &fused_shift_max); }

}  // namespace micronet
