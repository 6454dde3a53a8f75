// micronet::depthwise_conv: MicroNet's merged k x k depthwise convolution (NCHW, float32).
//
// out[n, o] = bias[o] + correction[o, 0, :] (per output column, optional)
//             + sum_{r, t} weight[o, 0, r, t] * x_padded[n, o / m, y * s + r, x * s + t]
// for m = O / C outputs per input channel (MicroNet's depthwise layers expand), k in {3, 5},
// stride s in {1, 2} (both axes), zero padding. Per input channel the padded plane is built
// once in a small buffer, split into its s x s stride phases so that every tap reads one
// contiguous run, and serves its m outputs; each vector of outputs accumulates all k * k taps
// in registers (oneDNN reorders MicroNet's small NCHW planes into blocked layouts and back on
// every call instead). The per-column correction is the exact border term of a merged k x 1 /
// 1 x k pair (deploy.MergedSeparableConv); adding it here costs nothing.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "dispatch.h"

namespace micronet {
namespace {

typedef float Vec8 __attribute__((vector_size(32)));

// (a macro, not a function: a vector return value would change the baseline build's ABI)
#define MICRONET_LOAD8(v, src) std::memcpy(&(v), (src), sizeof(Vec8))

// Geometry. The zero-padded input plane is split into its S x S phases (rows and columns
// taken modulo the stride), each (rows, row_stride), so that for every tap (r, t) the inputs
// of all outputs are one contiguous run: output q = y * row_stride + x (a flat index with
// row_stride - out_w junk columns per row) reads phase (r % S, t % S) at
// q + (r / S) * row_stride + t / S.
struct Plane {
  int64_t h, w;              // input plane
  int64_t out_h, out_w;      // output plane
  int64_t pad;               // zero padding (both axes)
  int64_t rows, row_stride;  // one phase
};

template <int S>
MICRONET_INLINE void split_phases(const float* in, const Plane& p, float* phases) {
  const int64_t phase_size = p.rows * p.row_stride;
  std::memset(phases, 0, sizeof(float) * phase_size * S * S);
  for (int64_t y = 0; y < p.h; ++y) {
    const int64_t py = y + p.pad;
    const float* src = in + y * p.w;
    if (S == 1) {
      std::memcpy(phases + py * p.row_stride + p.pad, src, sizeof(float) * p.w);
    } else {
      float* row = phases + (py % S) * S * phase_size + (py / S) * p.row_stride;
      for (int64_t phase = 0; phase < S; ++phase) {  // padded columns pad + x = phase mod S
        float* dst = row + phase * phase_size;
        const int64_t first = ((phase - p.pad) % S + S) % S;
        for (int64_t x = first; x < p.w; x += S) dst[(x + p.pad) / S] = src[x];
      }
    }
  }
}

// One output plane: all K * K taps accumulated in registers per vector of flat outputs.
template <int K, int S>
MICRONET_INLINE void conv_plane(const float* phases, const Plane& p, const float* w, float bias,
                                const float* correction, float* flat, float* out) {
  const int64_t phase_size = p.rows * p.row_stride;
  int64_t offset[K * K];
  for (int r = 0; r < K; ++r) {
    for (int t = 0; t < K; ++t) {
      offset[r * K + t] = ((r % S) * S + t % S) * phase_size + (r / S) * p.row_stride + t / S;
    }
  }
  // 16 outputs at a time in two 8-float vectors (GCC vector extensions: AVX registers in the
  // AVX2 build, pairs of SSE registers otherwise), every tap a broadcast multiply-add. The
  // flat length is rounded up to 16 (the buffers have room): no scalar tail.
  const int64_t length = p.out_h * p.row_stride;
  for (int64_t q = 0; q < length; q += 16) {
    Vec8 acc0 = Vec8{} + bias, acc1 = Vec8{} + bias;
    for (int tap = 0; tap < K * K; ++tap) {
      const float* src = phases + q + offset[tap];
      Vec8 v0, v1;
      MICRONET_LOAD8(v0, src);
      MICRONET_LOAD8(v1, src + 8);
      acc0 += w[tap] * v0;
      acc1 += w[tap] * v1;
    }
    std::memcpy(flat + q, &acc0, sizeof(Vec8));
    std::memcpy(flat + q + 8, &acc1, sizeof(Vec8));
  }
  for (int64_t y = 0; y < p.out_h; ++y) {
    const float* src = flat + y * p.row_stride;
    float* dst = out + y * p.out_w;
    if (correction) {
      for (int64_t x = 0; x < p.out_w; ++x) dst[x] = src[x] + correction[x];
    } else {
      std::memcpy(dst, src, sizeof(float) * p.out_w);
    }
  }
}

template <int K, int S>
MICRONET_INLINE void channel(const float* in, const Plane& p, const float* weight,
                             const float* bias, const float* correction, int64_t multiplier,
                             float* phases, float* flat, float* out) {
  split_phases<S>(in, p, phases);
  const int64_t plane = p.out_h * p.out_w;
  for (int64_t j = 0; j < multiplier; ++j) {
    conv_plane<K, S>(phases, p, weight + j * K * K, bias[j],
                     correction ? correction + j * p.out_w : nullptr, flat, out + j * plane);
  }
}

MICRONET_INLINE void depthwise_channel_impl(int k, int s, const float* in, const Plane& p,
                                       const float* weight, const float* bias,
                                       const float* correction, int64_t multiplier,
                                       float* phases, float* flat, float* out) {
  if (k == 3 && s == 1) channel<3, 1>(in, p, weight, bias, correction, multiplier, phases, flat, out);
  if (k == 3 && s == 2) channel<3, 2>(in, p, weight, bias, correction, multiplier, phases, flat, out);
  if (k == 5 && s == 1) channel<5, 1>(in, p, weight, bias, correction, multiplier, phases, flat, out);
  if (k == 5 && s == 2) channel<5, 2>(in, p, weight, bias, correction, multiplier, phases, flat, out);
}

// One input channel and its `multiplier` outputs, compiled per instruction set.
MICRONET_DISPATCH(void, depthwise_channel,
                  (int k, int s, const float* in, const Plane& p, const float* weight,
                   const float* bias, const float* correction, int64_t multiplier,
                   float* phases, float* flat, float* out),
                  (k, s, in, p, weight, bias, correction, multiplier, phases, flat, out))

}  // namespace

at::Tensor depthwise_conv(const at::Tensor& input, const at::Tensor& weight_in,
                          const at::Tensor& bias_in, int64_t stride, int64_t padding,
                          const std::optional<at::Tensor>& correction_in) {
  TORCH_CHECK(input.dim() == 4 && input.scalar_type() == at::kFloat && input.device().is_cpu(),
              "depthwise_conv: x must be a float32 CPU (N, C, H, W) tensor");
  TORCH_CHECK(weight_in.dim() == 4 && weight_in.size(1) == 1 &&
                  weight_in.size(2) == weight_in.size(3) && weight_in.size(0) % input.size(1) == 0,
              "depthwise_conv: weight must be (m * C, 1, k, k) for C = ", input.size(1),
              ", got ", weight_in.sizes());
  const int k = static_cast<int>(weight_in.size(2));
  TORCH_CHECK((k == 3 || k == 5) && (stride == 1 || stride == 2) && padding >= 0 &&
                  padding < k,
              "depthwise_conv supports k in {3, 5}, stride in {1, 2}, 0 <= padding < k");
  TORCH_CHECK(weight_in.scalar_type() == at::kFloat && bias_in.scalar_type() == at::kFloat &&
                  bias_in.numel() == weight_in.size(0),
              "depthwise_conv: float32 weight and bias (O) expected");
  const at::Tensor x = input.contiguous(), weight = weight_in.contiguous();
  const at::Tensor bias = bias_in.contiguous();
  const int64_t n_batch = x.size(0), c = x.size(1), o_count = weight.size(0);
  const int64_t multiplier = o_count / c;
  Plane p;
  p.h = x.size(2);
  p.w = x.size(3);
  p.pad = padding;
  p.out_h = (p.h + 2 * padding - k) / stride + 1;
  p.out_w = (p.w + 2 * padding - k) / stride + 1;
  TORCH_CHECK(p.out_h > 0 && p.out_w > 0, "depthwise_conv: input smaller than the kernel");
  // A phase holds ceil(padded / S) rows and columns; K more rows keep the junk columns of the
  // last output row inside the buffer.
  p.rows = (p.h + 2 * padding + stride - 1) / stride + k;
  p.row_stride = (p.w + 2 * padding + stride - 1) / stride;
  at::Tensor correction;
  if (correction_in.has_value()) {
    correction = correction_in->contiguous();
    TORCH_CHECK(correction.scalar_type() == at::kFloat && correction.numel() == o_count * p.out_w,
                "depthwise_conv: correction must be float32 (O, 1, W_out) = (", o_count, ", 1, ",
                p.out_w, "), got ", correction.sizes());
  }
  at::Tensor out = at::empty({n_batch, o_count, p.out_h, p.out_w}, x.options());
  const float* x_data = x.data_ptr<float>();
  const float* w_data = weight.data_ptr<float>();
  const float* b_data = bias.data_ptr<float>();
  const float* corr = correction.defined() ? correction.data_ptr<float>() : nullptr;
  float* out_data = out.data_ptr<float>();
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(multiplier * out_plane, 1));
  // + 16: the last vector of flat outputs reads and writes up to 15 values past the end.
  const int64_t phases_size = p.rows * p.row_stride * stride * stride + 16;
  const int64_t flat_size = p.out_h * p.row_stride + 16;
  at::parallel_for(0, n_batch * c, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> phases(phases_size), flat(flat_size);
    for (int64_t index = begin; index < end; ++index) {
      const int64_t n = index / c, i = index % c;
      depthwise_channel(k, static_cast<int>(stride), x_data + index * in_plane, p,
                        w_data + i * multiplier * k * k, b_data + i * multiplier,
                        corr ? corr + i * multiplier * p.out_w : nullptr, multiplier,
                        phases.data(), flat.data(), out_data + (n * o_count + i * multiplier) * out_plane);
    }
  });
  return out;
}

TORCH_LIBRARY_FRAGMENT(micronet, m) {
  m.def(
      "depthwise_conv(Tensor x, Tensor weight, Tensor bias, int stride, int padding, "
      "Tensor? correction) -> Tensor");
}

TORCH_LIBRARY_IMPL(micronet, CPU, m) { m.impl("depthwise_conv", &depthwise_conv); }

}  // namespace micronet
