// micronet::grouped_pointwise and the raw kernel grouped_pointwise (layers.h): MicroNet's grouped
// 1 x 1 convolutions with BN folded, NCHW float32.
//
// out[dest[o]] = act(bias[o] + sum_i W[o, i] * in[g * I/G + i]) (+ residual[dest[o]])
//
// MicroNet's groups are tiny matrix products: I/G = 2..72 inputs, O/G = 4..72 outputs, on planes
// of 49..3136 pixels. Each output channel is a contiguous plane, so the kernel is a register
// block of R <= 6 output channels x V vectors of pixels: the accumulators stay in registers
// while the loop runs over the group's inputs, each step loading V input vectors and doing
// R * V multiply-adds by weights broadcast straight from the layer's (O, I/G) rows. The bias
// starts the first input's products; ReLU6, the residual and the output permutation happen
// once per vector, on the way out. A plane whose size is not a whole number of vectors ends
// with one narrower vector (a half or quarter vector: half the cost of a whole one) that may
// overlap the pixels before it, recomputing and rewriting equal values, instead of a scalar
// tail; so `out` must not alias `in` or `residual` (it never does: a layer's result is a
// fresh buffer).
//
// Compiled per instruction set, picked at run time by CPU feature: AVX-512 (16-float vectors,
// 6 x 4 blocks in 32 registers), AVX2 + FMA (8-float vectors, 6 x 2 blocks in 16 registers;
// as fast on Zen 4, which splits 512-bit operations in two), baseline x86-64 (SSE). On Zen 4
// at one thread this reaches 35-50 GMAC/s (peak ~55) on M3's layers, 2-3x torch.baddbmm.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "dispatch.h"
#include "layers.h"

namespace micronet {
namespace {

typedef float V16 __attribute__((vector_size(64)));
typedef float V8 __attribute__((vector_size(32)));
typedef float V4 __attribute__((vector_size(16)));

// Floats per vector; a plain float is the scalar "vector" of planes smaller than 4 pixels.
template <typename Vec>
constexpr int64_t kWidth = sizeof(Vec) / sizeof(float);

// (references, not return values: a vector return value changes the baseline build's ABI)
template <typename Vec>
MICRONET_INLINE void load(Vec& v, const float* src) {
  std::memcpy(&v, src, sizeof(Vec));
}

template <typename Vec>
MICRONET_INLINE void store(float* dst, const Vec& v) {
  std::memcpy(dst, &v, sizeof(Vec));
}

// One register block's view of the layer: the group's input planes, and the block's weight
// rows, biases and destination planes.
struct Block {
  const float* in;        // the group's first input plane
  int64_t hw, inputs;     // plane size, inputs per group
  const float* weight;    // (R, inputs): the block's rows of the layer's weight
  const float* bias;      // (R)
  float* const* out;      // R output planes
  const float* const* residual;  // R residual planes or nullptr
  bool relu6;
};

// Marks a register block without a narrow tail vector.
struct NoTail {};

// min(max(y, 0), 6); NaN stays NaN, as in torch.clamp.
template <typename Vec>
MICRONET_INLINE void clamp_relu6(Vec& y) {
  const Vec zero{}, six = Vec{} + 6.0f;
  y = y < zero ? zero : y;
  y = y > six ? six : y;
}

#if defined(__x86_64__) && defined(__GNUC__)
// GCC compiles the comparisons above to compare + blend pairs; vmaxps / vminps take half the
// instructions (a third fewer cycles for the expansion layers, whose 4 - 12 inputs leave few
// multiply-adds per stored vector). Operand order: Intel `vmaxps y, zero, y` returns its last
// operand, y, when y is NaN. (Only in the AVX2 / AVX-512 builds, where these types are used.)
MICRONET_INLINE void clamp_relu6(V16& y) {
  const V16 zero{}, six = V16{} + 6.0f;
  asm("vmaxps %0, %1, %0\n\tvminps %0, %2, %0" : "+v"(y) : "v"(zero), "v"(six));
}

MICRONET_INLINE void clamp_relu6(V8& y) {
  const V8 zero{}, six = V8{} + 6.0f;
  asm("vmaxps %0, %1, %0\n\tvminps %0, %2, %0" : "+v"(y) : "v"(zero), "v"(six));
}
#endif

// Bias was added first; now ReLU6, the residual, and the store to out[r] + offset.
template <typename Vec>
MICRONET_INLINE void finish(const Block& b, int r, int64_t offset, const Vec& result) {
  Vec y = result;
  if (b.relu6) clamp_relu6(y);
  if (b.residual) {
    Vec res;
    load(res, b.residual[r] + offset);
    y += res;
  }
  store(b.out[r] + offset, y);
}

// R outputs x (V vectors at pixels p + v * width, plus, unless Tail is NoTail, one narrower
// Tail vector at pixel p + tail: the end of a plane, possibly overlapping the pixels before).
// The first input's products start from the bias; the loop over the others keeps all
// R * (V + 1) accumulators in registers.
template <typename Vec, typename Tail, int R, int V>
MICRONET_INLINE void register_block(const Block& b, int64_t p, int64_t tail) {
  constexpr int64_t W = kWidth<Vec>;
  constexpr bool kTail = !std::is_same_v<Tail, NoTail>;
  using T = std::conditional_t<kTail, Tail, float>;  // (unused without a tail)
  const float* w[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) w[r] = b.weight + r * b.inputs;
  Vec acc[R][V + 1];
  T tail_acc[R];
  const float* src = b.in + p;
  {
    Vec x[V + 1];
    T tx{};
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) load(x[v], src + v * W);
    if constexpr (kTail) load(tx, src + tail);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const float weight = w[r][0], bias = b.bias[r];
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[r][v] = weight * x[v] + bias;
      if constexpr (kTail) tail_acc[r] = weight * tx + bias;
    }
  }
  for (int64_t i = 1; i < b.inputs; ++i) {
    src += b.hw;
    Vec x[V + 1];
    T tx{};
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) load(x[v], src + v * W);
    if constexpr (kTail) load(tx, src + tail);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const float weight = w[r][i];
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[r][v] += weight * x[v];
      if constexpr (kTail) tail_acc[r] += weight * tx;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) finish(b, r, p + v * W, acc[r][v]);
    if constexpr (kTail) finish(b, r, p + tail, tail_acc[r]);
  }
}

// Vectors of half and a quarter the width (the tails of V16 / V8 planes).
template <typename Vec> struct Narrow { using Half = Vec; using Quarter = Vec; };
template <> struct Narrow<V16> { using Half = V8; using Quarter = V4; };
template <> struct Narrow<V8> { using Half = V4; using Quarter = V4; };

// `full` whole vectors at p and one Tail vector ending at `end`.
template <typename Vec, typename Tail, int R, int V>
MICRONET_INLINE void tail_block(const Block& b, int64_t p, int64_t full, int64_t end) {
  const int64_t tail = end - kWidth<Tail> - p;
  switch (full) {
    case 0: register_block<Vec, Tail, R, 0>(b, p, tail); break;
    case 1: register_block<Vec, Tail, R, 1>(b, p, tail); break;
    case 2: if constexpr (V > 2) register_block<Vec, Tail, R, 2>(b, p, tail); break;
    case 3: if constexpr (V > 3) register_block<Vec, Tail, R, 3>(b, p, tail); break;
    default: break;
  }
}

// The last block of a range: `full` whole vectors at p, then the `rest` pixels left (less than
// a vector) as one overlapping tail vector as narrow as fits (a quarter or half vector costs
// half the multiply-adds of a whole one).
template <typename Vec, int R, int V>
MICRONET_INLINE void last_block(const Block& b, int64_t p, int64_t full, int64_t rest,
                                int64_t end) {
  using Half = typename Narrow<Vec>::Half;
  using Quarter = typename Narrow<Vec>::Quarter;
  if (rest == 0) {
    switch (full) {
      case 1: register_block<Vec, NoTail, R, 1>(b, p, 0); break;
      case 2: if constexpr (V > 2) register_block<Vec, NoTail, R, 2>(b, p, 0); break;
      case 3: if constexpr (V > 3) register_block<Vec, NoTail, R, 3>(b, p, 0); break;
      default: break;
    }
  } else if (rest <= kWidth<Quarter>) {
    tail_block<Vec, Quarter, R, V>(b, p, full, end);
  } else if (rest <= kWidth<Half>) {
    tail_block<Vec, Half, R, V>(b, p, full, end);
  } else {
    tail_block<Vec, Vec, R, V>(b, p, full, end);
  }
}

// Pixels [begin, end) of R output planes: blocks of V vectors, then one last block. Needs
// end >= the vector width.
template <typename Vec, int R, int V>
MICRONET_INLINE void pixel_range(const Block& b, int64_t begin, int64_t end) {
  constexpr int64_t W = kWidth<Vec>;
  int64_t p = begin;
  for (; p + V * W <= end; p += V * W) register_block<Vec, NoTail, R, V>(b, p, 0);
  if (p < end) last_block<Vec, R, V>(b, p, (end - p) / W, (end - p) % W, end);
}

template <typename Vec, int V>
MICRONET_INLINE void pixel_range_of(int r, const Block& b, int64_t begin, int64_t end) {
  switch (r) {
    case 1: pixel_range<Vec, 1, V>(b, begin, end); break;
    case 2: pixel_range<Vec, 2, V>(b, begin, end); break;
    case 3: pixel_range<Vec, 3, V>(b, begin, end); break;
    case 4: pixel_range<Vec, 4, V>(b, begin, end); break;
    case 5: pixel_range<Vec, 5, V>(b, begin, end); break;
    case 6: pixel_range<Vec, 6, V>(b, begin, end); break;
    default: break;
  }
}

constexpr int kMaxR = 6;               // output channels per register block
constexpr int64_t kTileFloats = 4096;  // input floats per pixel tile (16 KiB: stays in L1)

// Output channels [o0, o1) of one group (V vectors per block): pixel tiles (each tile's inputs
// read from L1 by every block), register blocks of near-equal size inside (10 outputs: 5 + 5).
template <typename Vec, int V>
MICRONET_INLINE void group_outputs(const GroupedPointwise& conv, const float* in, int64_t hw,
                                   float* out, const int64_t* dest, const float* residual,
                                   int64_t o0, int64_t o1) {
  constexpr int64_t W = kWidth<Vec>;
  const int64_t inputs = conv.in_channels / conv.groups;
  const int64_t per_group = conv.out_channels / conv.groups;
  const float* group_in = in + (o0 / per_group) * inputs * hw;
  const int64_t n = o1 - o0, blocks = (n + kMaxR - 1) / kMaxR;
  // Pixel tiles: a whole number of blocks of V vectors, at least one.
  const int64_t step = V * W;
  const int64_t tile = std::max<int64_t>(step, kTileFloats / inputs / step * step);
  float* planes[kMaxR];
  const float* residual_planes[kMaxR];
  for (int64_t p = 0; p < hw; p += tile) {
    const int64_t p_end = std::min(hw, p + tile);
    for (int64_t k = 0; k < blocks; ++k) {
      const int64_t first = o0 + k * n / blocks, r_count = o0 + (k + 1) * n / blocks - first;
      for (int64_t r = 0; r < r_count; ++r) {
        const int64_t plane = (dest ? dest[first + r] : first + r) * hw;
        planes[r] = out + plane;
        if (residual) residual_planes[r] = residual + plane;
      }
      const Block b{group_in,          hw,     inputs, conv.weight + first * inputs,
                    conv.bias + first, planes, residual ? residual_planes : nullptr,
                    conv.relu6};
      pixel_range_of<Vec, V>(static_cast<int>(r_count), b, p, p_end);
    }
  }
}

// Output channels [begin, end), group by group, with vectors of `Vec` (hw >= its width).
template <typename Vec, int V>
MICRONET_INLINE void outputs(const GroupedPointwise& conv, const float* in, int64_t hw,
                             float* out, const int64_t* dest, const float* residual,
                             int64_t begin, int64_t end) {
  const int64_t per_group = conv.out_channels / conv.groups;
  for (int64_t o = begin; o < end;) {
    const int64_t stop = std::min(end, (o / per_group + 1) * per_group);
    group_outputs<Vec, V>(conv, in, hw, out, dest, residual, o, stop);
    o = stop;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define MICRONET_POINTWISE_AVX512 __attribute__((target("avx512f")))

// The widest vector that fits the plane; blocks of 4 x 16, 2 x 8, 2 x 4 floats.
MICRONET_POINTWISE_AVX512 void pointwise_avx512(const GroupedPointwise& conv, const float* in,
                                                int64_t hw, float* out, const int64_t* dest,
                                                const float* residual, int64_t begin,
                                                int64_t end) {
  if (hw >= 16) return outputs<V16, 4>(conv, in, hw, out, dest, residual, begin, end);
  if (hw >= 8) return outputs<V8, 2>(conv, in, hw, out, dest, residual, begin, end);
  if (hw >= 4) return outputs<V4, 2>(conv, in, hw, out, dest, residual, begin, end);
  outputs<float, 4>(conv, in, hw, out, dest, residual, begin, end);
}

MICRONET_AVX2 void pointwise_avx2(const GroupedPointwise& conv, const float* in, int64_t hw,
                                  float* out, const int64_t* dest, const float* residual,
                                  int64_t begin, int64_t end) {
  if (hw >= 8) return outputs<V8, 2>(conv, in, hw, out, dest, residual, begin, end);
  if (hw >= 4) return outputs<V4, 2>(conv, in, hw, out, dest, residual, begin, end);
  outputs<float, 4>(conv, in, hw, out, dest, residual, begin, end);
}

bool pointwise_cpu_has_avx512f() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}
#endif

void pointwise_baseline(const GroupedPointwise& conv, const float* in, int64_t hw, float* out,
                        const int64_t* dest, const float* residual, int64_t begin,
                        int64_t end) {
  if (hw >= 4) return outputs<V4, 2>(conv, in, hw, out, dest, residual, begin, end);
  outputs<float, 4>(conv, in, hw, out, dest, residual, begin, end);
}

using PointwiseFn = void (*)(const GroupedPointwise&, const float*, int64_t, float*,
                             const int64_t*, const float*, int64_t, int64_t);

PointwiseFn pick_pointwise() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (pointwise_cpu_has_avx512f()) return pointwise_avx512;
  if (cpu_has_avx2_fma()) return pointwise_avx2;
#endif
  return pointwise_baseline;
}

}  // namespace

void grouped_pointwise(const GroupedPointwise& conv, const float* in, int64_t hw, float* out,
                       const int64_t* dest, const float* residual, int64_t begin, int64_t end) {
  static const PointwiseFn impl = pick_pointwise();
  if (begin < end && hw > 0) impl(conv, in, hw, out, dest, residual, begin, end);
}

// ---------------------------------------------------------------------------------------------
// The operator: micronet::grouped_pointwise(x, weight, bias, relu6, output_index, residual).
//   x (N, I, H, W) float32; weight (G, O/G, I/G) (deploy.FusedPointwise's buffer) or
//   (O, I/G, 1, 1) (groups = I / (I/G)); bias with O elements ((O) or (G, O/G, 1));
//   output_index (O) int64 permutation or None: y = result[:, output_index];
//   residual (N, O, H, W) or None, added after the activation (in y's channel order).

namespace {

// dest = inverse(index), checking that index is a permutation of [0, channels).
std::vector<int64_t> inverse_of(const at::Tensor& index_in, int64_t channels) {
  TORCH_CHECK(index_in.device().is_cpu() && index_in.scalar_type() == at::kLong &&
                  index_in.dim() == 1 && index_in.numel() == channels,
              "grouped_pointwise: output_index must be an int64 CPU tensor of shape (",
              channels, "), got ", index_in.scalar_type(), " ", index_in.sizes());
  const at::Tensor index = index_in.contiguous();
  const int64_t* data = index.data_ptr<int64_t>();
  std::vector<int64_t> dest(channels, -1);
  for (int64_t j = 0; j < channels; ++j) {
    const int64_t c = data[j];
    TORCH_CHECK(c >= 0 && c < channels, "grouped_pointwise: output_index holds channel ", c,
                " outside [0, ", channels, ")");
    TORCH_CHECK(dest[c] < 0, "grouped_pointwise: output_index is not a permutation (channel ",
                c, " appears twice)");
    dest[c] = j;
  }
  return dest;
}

void check_float_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, "grouped_pointwise: ", name,
              " must be a float32 CPU tensor, got ", t.scalar_type(), " on ", t.device());
}

}  // namespace

at::Tensor grouped_pointwise_op(const at::Tensor& input, const at::Tensor& weight_in,
                                const at::Tensor& bias_in, bool relu6,
                                const std::optional<at::Tensor>& output_index,
                                const std::optional<at::Tensor>& residual_in) {
  TORCH_CHECK(input.dim() == 4, "grouped_pointwise: x must be (N, I, H, W), got ",
              input.sizes());
  check_float_cpu(input, "x");
  check_float_cpu(weight_in, "weight");
  check_float_cpu(bias_in, "bias");
  const int64_t n_batch = input.size(0), in_channels = input.size(1);
  const int64_t hw = input.size(2) * input.size(3);
  int64_t groups = 0, out_channels = 0, per_group_in = 0;
  if (weight_in.dim() == 3) {  // (G, O/G, I/G)
    groups = weight_in.size(0);
    out_channels = groups * weight_in.size(1);
    per_group_in = weight_in.size(2);
  } else if (weight_in.dim() == 4 && weight_in.size(2) == 1 && weight_in.size(3) == 1) {
    per_group_in = weight_in.size(1);
    out_channels = weight_in.size(0);
    groups = per_group_in > 0 ? in_channels / per_group_in : 0;
  }
  TORCH_CHECK(groups > 0 && per_group_in > 0 && groups * per_group_in == in_channels &&
                  out_channels % groups == 0,
              "grouped_pointwise: weight must be (G, O/G, I/G) or (O, I/G, 1, 1) with G * I/G = ",
              in_channels, " input channels and O divisible by G, got ", weight_in.sizes());
  TORCH_CHECK(bias_in.numel() == out_channels, "grouped_pointwise: bias must have ",
              out_channels, " elements, got ", bias_in.numel());
  std::vector<int64_t> dest;
  if (output_index.has_value()) dest = inverse_of(*output_index, out_channels);
  at::Tensor residual;
  if (residual_in.has_value()) {
    residual = residual_in->contiguous();
    check_float_cpu(residual, "residual");
    TORCH_CHECK(residual.dim() == 4 && residual.size(0) == n_batch &&
                    residual.size(1) == out_channels && residual.size(2) == input.size(2) &&
                    residual.size(3) == input.size(3),
                "grouped_pointwise: residual must be (", n_batch, ", ", out_channels, ", ",
                input.size(2), ", ", input.size(3), "), got ", residual.sizes());
  }
  const at::Tensor x = input.contiguous(), weight = weight_in.contiguous();
  const at::Tensor bias = bias_in.contiguous();
  at::Tensor out = at::empty({n_batch, out_channels, input.size(2), input.size(3)}, x.options());
  if (out.numel() == 0) return out;

  GroupedPointwise conv;
  conv.in_channels = in_channels;
  conv.out_channels = out_channels;
  conv.groups = groups;
  conv.weight = weight.data_ptr<float>();
  conv.bias = bias.data_ptr<float>();
  conv.relu6 = relu6;
  const float* x_data = x.data_ptr<float>();
  const float* res_data = residual.defined() ? residual.data_ptr<float>() : nullptr;
  float* out_data = out.data_ptr<float>();
  const int64_t* dest_data = dest.empty() ? nullptr : dest.data();
  // Tasks: (sample, slice of output channels) of ~16k output floats: whole groups while a
  // group is smaller than that (a slice through a group would leave narrow register blocks),
  // else near-equal parts of a group.
  const int64_t per_group = out_channels / groups, group_floats = per_group * hw;
  const int64_t group_step = std::clamp<int64_t>(16384 / group_floats, 1, groups);
  const int64_t parts = std::clamp<int64_t>(group_floats / 16384, 1, per_group);
  const int64_t slices = parts > 1 ? groups * parts : (groups + group_step - 1) / group_step;
  at::parallel_for(0, n_batch * slices, 1, [&](int64_t task_begin, int64_t task_end) {
    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t n = task / slices, slice = task % slices;
      int64_t begin = slice * group_step * per_group;
      int64_t end = std::min(out_channels, begin + group_step * per_group);
      if (parts > 1) {
        const int64_t first = slice / parts * per_group, part = slice % parts;
        begin = first + part * per_group / parts;
        end = first + (part + 1) * per_group / parts;
      }
      grouped_pointwise(conv, x_data + n * in_channels * hw, hw,
                        out_data + n * out_channels * hw, dest_data,
                        res_data ? res_data + n * out_channels * hw : nullptr, begin, end);
    }
  });
  return out;
}

TORCH_LIBRARY_FRAGMENT(micronet, m) {
  m.def(
      "grouped_pointwise(Tensor x, Tensor weight, Tensor bias, bool relu6, "
      "Tensor? output_index, Tensor? residual) -> Tensor");
}

TORCH_LIBRARY_IMPL(micronet, CPU, m) { m.impl("grouped_pointwise", &grouped_pointwise_op); }

}  // namespace micronet
