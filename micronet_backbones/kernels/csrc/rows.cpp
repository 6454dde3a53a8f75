// Dynamic Shift-Max's inference kernels: the one-sample ShiftMax kernels of layers.h
// (shift_max_coefficients, shift_max_apply) and the older row loops of rows.h.
//
// At batch 1 MicroNet's planes are short (7x7 to 56x56) and C reaches ~1000, so per-row
// function calls, per-row horizontal reductions, per-call allocations and the hyper-function's
// fc2 (S x J*K*C floats, up to ~0.5 MB) cost as much as the arithmetic. Here each pass is one
// function per instruction set with every row loop inlined into it:
// * 16-float vectors (GCC vector extensions: one AVX-512 register, two AVX2 ones, four SSE
//   ones); row tails as narrow (8-, 4-, 1-float) steps or one blended 16-float step;
// * pass 1: channel sums 16 channels at a time (one transpose-and-add instead of 16
//   horizontal reductions); fc1 and fc2 as register-blocked column strips (fc2 over the
//   non-zero hidden units only), each weight read once, the clamp fused into the store;
//   nothing allocated (hidden units on the stack, the channel means in the coefficient
//   buffer until the coefficients overwrite them);
// * pass 2: per channel, its J rows and J * K coefficients gathered once, then one row loop
//   (J = 2 with K = 2 or 1 compiled as such), the attention, residual and output plane folded
//   into the same loop.
// Pass 2 (4 multiply-adds and a max per output for J = K = 2) is bound by floating-point
// throughput, pass 1 by the bandwidth of the weights; on CPUs that split 512-bit operations
// in two (AMD Zen 4) the AVX-512 build runs about as fast as the AVX2 one.
#include "rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "dispatch.h"
#include "layers.h"

namespace micronet {

// --- the older row loops of rows.h (AVX2 + FMA or baseline, dispatch.h) -----------------------

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

// --- ShiftMax (layers.h) ---------------------------------------------------------------------

namespace {

// Vectors of 16, 8 and 4 floats (GCC vector extensions); the loops below are templates over
// the width (float = one lane). Values never cross a non-inlined call (no vector-ABI issue).
typedef float V16 __attribute__((vector_size(64)));
typedef float V8 __attribute__((vector_size(32)));
typedef float V4 __attribute__((vector_size(16)));
typedef int32_t I16 __attribute__((vector_size(64)));

// Row loops pass their bodies as lambdas; inlined always (an out-of-line lambda would be
// compiled for the baseline instruction set, whatever its caller's target).
#if defined(__GNUC__)
#define MICRONET_INLINE_LAMBDA __attribute__((always_inline))
#else
#define MICRONET_INLINE_LAMBDA
#endif

constexpr I16 kLane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

template <typename V>
MICRONET_INLINE void load(V& v, const float* p) {
  std::memcpy(&v, p, sizeof(V));
}
template <typename V>
MICRONET_INLINE void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// The lanes' sum of v, as a tree (a short dependency chain).
MICRONET_INLINE float lane_sum(const V16& v) {
  V8 lo, hi;
  std::memcpy(&lo, &v, sizeof(V8));
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(V8), sizeof(V8));
  const V8 s8 = lo + hi;
  V4 l4, h4;
  std::memcpy(&l4, &s8, sizeof(V4));
  std::memcpy(&h4, reinterpret_cast<const char*>(&s8) + sizeof(V4), sizeof(V4));
  const V4 s4 = l4 + h4;
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

// A row loop over [0, n): body.template operator()<V, Tail>(p, first) in 16-float steps, then
// the rest (r < 16 floats) as one 8-, one 4- and up to three 1-float steps when that takes at
// most two steps (narrow steps cost half a 16-float one or less), else, on rows of n >= 16, as
// one more 16-float step at n - 16 (Tail = true) whose lanes below `first` the steps before
// have done: the body keeps what those lanes hold (no masked loads or stores, nothing counted
// twice).
template <typename Body>
MICRONET_INLINE void for_row(int64_t n, Body&& body) {
  int64_t p = 0;
  for (; p + 16 <= n; p += 16) body.template operator()<V16, false>(p, 0);
  const int64_t rest = n - p;
  if (rest == 0) return;
  const int64_t narrow_steps = (rest >= 8) + ((rest & 4) != 0) + (rest & 3);
  if (n >= 16 && narrow_steps > 2) {
    body.template operator()<V16, true>(n - 16, p - (n - 16));
    return;
  }
  if (p + 8 <= n) {
    body.template operator()<V8, false>(p, 0);
    p += 8;
  }
  if (p + 4 <= n) {
    body.template operator()<V4, false>(p, 0);
    p += 4;
  }
  for (; p < n; ++p) body.template operator()<float, false>(p, 0);
}

// Stores y at out + p; a Tail step keeps the lanes below `first` (already final).
template <typename V, bool Tail>
MICRONET_INLINE void store_step(float* out, int64_t p, int64_t first, const V& value) {
  V y = value;
  if constexpr (Tail) {
    V old;
    load(old, out + p);
    y = kLane >= static_cast<int32_t>(first) ? y : old;
  }
  store(out + p, y);
}

// Lane-wise partial sums of row[0, n) (their lanes add up to the row's sum): four
// accumulators on long rows (the add latency), a zeroed-lanes tail.
MICRONET_INLINE void row_partial_sums(const float* row, int64_t n, V16& sums) {
  V16 acc0 = V16{}, acc1 = V16{}, acc2 = V16{}, acc3 = V16{};
  int64_t p = 0;
  for (; p + 64 <= n; p += 64) {
    V16 v0, v1, v2, v3;
    load(v0, row + p);
    load(v1, row + p + 16);
    load(v2, row + p + 32);
    load(v3, row + p + 48);
    acc0 += v0;
    acc1 += v1;
    acc2 += v2;
    acc3 += v3;
  }
  for (; p + 16 <= n; p += 16) {
    V16 v;
    load(v, row + p);
    acc1 += v;
  }
  if (p < n && n >= 16) {
    V16 v;
    load(v, row + n - 16);
    acc2 += kLane >= static_cast<int32_t>(p - (n - 16)) ? v : V16{};
  } else {
    for (; p < n; ++p) acc3[0] += row[p];
  }
  sums = (acc0 + acc1) + (acc2 + acc3);
}

// sums[i] (16 vectors of partial sums, one per channel) -> lane i = the sum of sums[i]'s lanes:
// four rounds of pairwise two-source shuffles and adds (45 vector ops for 16 channels instead
// of 16 horizontal reductions).
MICRONET_INLINE void transpose_add(V16* sums, V16& total) {
  for (int i = 0; i < 8; ++i) {  // lanes 0-7: channel 2i's 8 partial sums, 8-15: 2i + 1's
    const V16 a = sums[2 * i], b = sums[2 * i + 1];
    sums[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22,
                                      23) +
              __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28,
                                      29, 30, 31);
  }
  for (int i = 0; i < 4; ++i) {  // 4 lanes per channel: 4i, 4i + 1, 4i + 2, 4i + 3
    const V16 a = sums[2 * i], b = sums[2 * i + 1];
    sums[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25,
                                      26, 27) +
              __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29,
                                      30, 31);
  }
  for (int i = 0; i < 2; ++i) {  // 2 lanes per channel: 8i .. 8i + 7
    const V16 a = sums[2 * i], b = sums[2 * i + 1];
    sums[i] = __builtin_shufflevector(a, b, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25,
                                      28, 29) +
              __builtin_shufflevector(a, b, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27,
                                      30, 31);
  }
  total = __builtin_shufflevector(sums[0], sums[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22,
                                  24, 26, 28, 30) +
          __builtin_shufflevector(sums[0], sums[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23,
                                  25, 27, 29, 31);
}

// Sum of row[0, n).
MICRONET_INLINE float sum_row(const float* row, int64_t n) {
  V16 sums;
  row_partial_sums(row, n, sums);
  return lane_sum(sums);
}

// out[0, n) += weight * row[0, n)
MICRONET_INLINE void axpy_row(float weight, const float* row, float* out, int64_t n) {
  for_row(n, [&]<typename V, bool Tail>(int64_t p, int64_t first) MICRONET_INLINE_LAMBDA {
    V r, o;
    load(r, row + p);
    load(o, out + p);
    store_step<V, Tail>(out, p, first, o + r * weight);
  });
}

// Pass 1 without attention: pooled[c] = mean of channel c, 16 channels at a time.
MICRONET_INLINE void channel_means(const float* x, int64_t channels, int64_t hw, float* pooled) {
  const float inv_hw = 1.0f / static_cast<float>(hw);
  int64_t c = 0;
  for (; c + 16 <= channels; c += 16) {
    V16 sums[16], total;
    for (int i = 0; i < 16; ++i) row_partial_sums(x + (c + i) * hw, hw, sums[i]);
    transpose_add(sums, total);
    store(pooled + c, total * inv_hw);
  }
  for (; c < channels; ++c) pooled[c] = sum_row(x + c * hw, hw) * inv_hw;
}

// Pass 1 with attention: pooled as above, logits[p] = bias + sum_c weight[c] * x[c, p] (the
// attention's logits, accumulated channel by channel into an L1-sized row).
MICRONET_INLINE void channel_means_and_logits(const float* x, int64_t channels, int64_t hw,
                                              const float* weight, float bias, float* pooled,
                                              float* logits) {
  const float inv_hw = 1.0f / static_cast<float>(hw);
  std::fill(logits, logits + hw, bias);
  for (int64_t c = 0; c < channels; ++c) {
    const float* row = x + c * hw;
    pooled[c] = sum_row(row, hw) * inv_hw;
    axpy_row(weight[c], row, logits, hw);
  }
}

// pi = min(gamma * hw * softmax(logits), 1), in place (the sum in double, as before).
MICRONET_INLINE void attention_from_logits(float* pi, int64_t hw, float gamma) {
  const float top = *std::max_element(pi, pi + hw);
  double total = 0.0;
  for (int64_t p = 0; p < hw; ++p) {
    pi[p] = std::exp(pi[p] - top);
    total += pi[p];
  }
  const float scale = static_cast<float>(static_cast<double>(gamma) * hw / total);
  for (int64_t p = 0; p < hw; ++p) pi[p] = std::min(pi[p] * scale, 1.0f);
}

// Columns [0, width) of a small matrix product as N vectors of V at offsets[u]: every column
// in [start, start + N * lanes) once, except that the last vector of a width that is not a
// multiple of the lanes starts at width - lanes and so overlaps its neighbour (in bounds; both
// compute the overlapping columns identically, so storing both is harmless).
template <typename V, int N>
MICRONET_INLINE void strip_offsets(int64_t start, int64_t width, int64_t* offsets) {
  constexpr int64_t lanes = sizeof(V) / sizeof(float);
  for (int u = 0; u < N; ++u) offsets[u] = std::min(start + u * lanes, width - lanes);
}

// hidden[strip] = b1 + sum_c pooled[c] * W1t[c, strip], N vectors per strip kept in registers
// over the channels, two sets of accumulators (even and odd channels) against the FMA latency.
template <typename V, int N>
MICRONET_INLINE void fc1_strip(const ShiftMax& op, const float* pooled, int64_t start,
                               float* hidden) {
  const int64_t s = op.squeeze, c_count = op.channels;
  int64_t offsets[N];
  strip_offsets<V, N>(start, s, offsets);
  V even[N], odd[N];
  for (int u = 0; u < N; ++u) {
    load(even[u], op.fc1_bias + offsets[u]);
    odd[u] = V{};
  }
  int64_t c = 0;
  for (; c + 2 <= c_count; c += 2) {
    const float* w0 = op.fc1_weight_t + c * s;
    const float* w1 = w0 + s;
    for (int u = 0; u < N; ++u) {
      V a, b;
      load(a, w0 + offsets[u]);
      load(b, w1 + offsets[u]);
      even[u] += a * pooled[c];
      odd[u] += b * pooled[c + 1];
    }
  }
  if (c < c_count) {
    for (int u = 0; u < N; ++u) {
      V a;
      load(a, op.fc1_weight_t + c * s + offsets[u]);
      even[u] += a * pooled[c];
    }
  }
  for (int u = 0; u < N; ++u) store(hidden + offsets[u], even[u] + odd[u]);
}

// All S hidden units, 64 (or fewer: 8, 4, 1 columns wide) at a time.
template <typename V>
MICRONET_INLINE void fc1_strips(const ShiftMax& op, const float* pooled, float* hidden) {
  constexpr int64_t lanes = sizeof(V) / sizeof(float);
  const int64_t s = op.squeeze;
  int64_t start = 0;
  for (; start + 4 * lanes <= s; start += 4 * lanes) fc1_strip<V, 4>(op, pooled, start, hidden);
  const int64_t rest = (s - start + lanes - 1) / lanes;  // vectors left, <= 4
  if (rest == 4) fc1_strip<V, 4>(op, pooled, start, hidden);
  if (rest == 3) fc1_strip<V, 3>(op, pooled, start, hidden);
  if (rest == 2) fc1_strip<V, 2>(op, pooled, start, hidden);
  if (rest == 1) fc1_strip<V, 1>(op, pooled, start, hidden);
}

// The hidden units: hidden = relu(b1 + pooled @ W1t), (S); returns how many are non-zero,
// compacted to (index[i], hidden[i]) for fc2, which skips the zeros.
MICRONET_INLINE int64_t hidden_units(const ShiftMax& op, const float* pooled, float* hidden,
                                     int64_t* index) {
  const int64_t s = op.squeeze;
  if (s >= 16) {
    fc1_strips<V16>(op, pooled, hidden);
  } else if (s >= 8) {
    fc1_strips<V8>(op, pooled, hidden);
  } else if (s >= 4) {
    fc1_strips<V4>(op, pooled, hidden);
  } else {
    fc1_strips<float>(op, pooled, hidden);
  }
  int64_t count = 0;
  for (int64_t i = 0; i < s; ++i) {
    if (hidden[i] > 0.0f) {
      hidden[count] = hidden[i];
      index[count++] = i;
    }
  }
  return count;
}

// a[strip] = clamp(b2 + sum_i value[i] * W2t[index[i], strip], low, high): N vectors held in
// registers over the non-zero hidden units (one read of each weight), clamped as stored.
template <typename V, int N>
MICRONET_INLINE void fc2_strip(const ShiftMax& op, int64_t width, const float* value,
                               const int64_t* index, int64_t count, int64_t start, float* a) {
  int64_t offsets[N];
  strip_offsets<V, N>(start, width, offsets);
  V acc[N];
  for (int u = 0; u < N; ++u) load(acc[u], op.fc2_bias + offsets[u]);
  for (int64_t i = 0; i < count; ++i) {
    const float* w = op.fc2_weight_t + index[i] * width;
    const float h = value[i];
    for (int u = 0; u < N; ++u) {
      V wv;
      load(wv, w + offsets[u]);
      acc[u] += wv * h;
    }
  }
  for (int u = 0; u < N; ++u) {
    V lo, hi;
    load(lo, op.low + offsets[u]);
    load(hi, op.high + offsets[u]);
    V v = acc[u] > lo ? acc[u] : lo;
    v = v < hi ? v : hi;
    store(a + offsets[u], v);
  }
}

// All J * K * C coefficients, 64 columns at a time, then what is left (< 64).
MICRONET_INLINE void hyper_output(const ShiftMax& op, const float* value, const int64_t* index,
                                  int64_t count, float* a) {
  const int64_t width = op.num_shifts * op.num_fusions * op.channels;
  if (width < 16) {  // (a 1- to 3-channel layer)
    int64_t start = 0;
    for (; start + 4 <= width; start += 4) fc2_strip<V4, 1>(op, width, value, index, count, start, a);
    for (; start < width; ++start) fc2_strip<float, 1>(op, width, value, index, count, start, a);
    return;
  }
  int64_t start = 0;
  for (; start + 64 <= width; start += 64) {
    fc2_strip<V16, 4>(op, width, value, index, count, start, a);
  }
  const int64_t rest = (width - start + 15) / 16;  // vectors left, <= 4
  if (rest == 4) fc2_strip<V16, 4>(op, width, value, index, count, start, a);
  if (rest == 3) fc2_strip<V16, 3>(op, width, value, index, count, start, a);
  if (rest == 2) fc2_strip<V16, 2>(op, width, value, index, count, start, a);
  if (rest == 1) fc2_strip<V16, 1>(op, width, value, index, count, start, a);
}

// Hidden units up to this many live on the stack (MicroNet's S <= 44); more on the heap.
constexpr int64_t kStackHidden = 512;

MICRONET_INLINE void coefficients_impl(const ShiftMax& op, const float* x, int64_t hw,
                                       float* coefficients) {
  const int64_t c = op.channels;
  // The means go to the first C coefficients (J * K * C >= C), overwritten once used.
  float* pooled = coefficients;
  if (op.spatial_weight != nullptr) {
    float* logits = coefficients + op.num_shifts * op.num_fusions * c;
    channel_means_and_logits(x, c, hw, op.spatial_weight, op.spatial_bias, pooled, logits);
    attention_from_logits(logits, hw, op.spatial_gamma);
  } else {
    channel_means(x, c, hw, pooled);
  }
  float hidden_stack[kStackHidden];
  int64_t index_stack[kStackHidden];
  std::vector<float> hidden_heap;
  std::vector<int64_t> index_heap;
  float* hidden = hidden_stack;
  int64_t* index = index_stack;
  if (op.squeeze > kStackHidden) {
    hidden_heap.resize(op.squeeze);
    index_heap.resize(op.squeeze);
    hidden = hidden_heap.data();
    index = index_heap.data();
  }
  const int64_t count = hidden_units(op, pooled, hidden, index);
  hyper_output(op, hidden, index, count, coefficients);
}

// Pass 2, one channel: out[p] = max_k sum_j a[j * K + k] * rows[j][p] (* pi[p]) (+ res[p]).
// J, K fixed at compile time (> 0) or taken from the arguments (0). HasPi / HasRes: attention,
// residual. `res` may be `out` itself (each lane is read before it is written).
template <int J, int K, bool HasPi, bool HasRes>
MICRONET_INLINE void fuse_channel(int64_t num_shifts, int64_t num_fusions,
                                  const float* const* rows, const float* a, const float* pi,
                                  const float* res, float* out, int64_t hw) {
  const int64_t shifts = J > 0 ? J : num_shifts, fusions = K > 0 ? K : num_fusions;
  for_row(hw, [&]<typename V, bool Tail>(int64_t p, int64_t first) MICRONET_INLINE_LAMBDA {
    V y{};
    if constexpr (J > 0) {
      V xs[J];
      for (int j = 0; j < J; ++j) load(xs[j], rows[j] + p);
      for (int k = 0; k < K; ++k) {
        V f = xs[0] * a[k];
        for (int j = 1; j < J; ++j) f += xs[j] * a[j * K + k];
        y = k == 0 ? f : (y > f ? y : f);
      }
    } else {
      for (int64_t k = 0; k < fusions; ++k) {
        V xj;
        load(xj, rows[0] + p);
        V f = xj * a[k];
        for (int64_t j = 1; j < shifts; ++j) {
          load(xj, rows[j] + p);
          f += xj * a[j * fusions + k];
        }
        y = k == 0 ? f : (y > f ? y : f);
      }
    }
    if constexpr (HasPi) {
      V w;
      load(w, pi + p);
      y *= w;
    }
    if constexpr (HasRes) {
      V r;
      load(r, res + p);
      y += r;
    }
    store_step<V, Tail>(out, p, first, y);
  });
}

// Pass 2 over channels [begin, end): gathers each channel's rows and coefficients, then one
// inlined row loop into its output plane.
template <int J, int K, bool HasPi, bool HasRes>
MICRONET_INLINE void apply_channels(const ShiftMax& op, const float* x, int64_t hw,
                                    const float* coefficients, float* out, const int64_t* dest,
                                    const float* residual, int64_t begin, int64_t end) {
  const int64_t c_count = op.channels, j_count = op.num_shifts;
  const int64_t jk = j_count * op.num_fusions;
  const float* pi = HasPi ? coefficients + jk * c_count : nullptr;
  // One channel's rows and coefficients: on the stack up to J = 16, J * K = 64 (any MicroNet
  // layer), else on the heap (once per call).
  constexpr int64_t kMaxShifts = 16, kMaxCoefficients = 64;
  const float* rows_stack[kMaxShifts];
  float a_stack[kMaxCoefficients];
  std::vector<const float*> rows_heap;
  std::vector<float> a_heap;
  const float** rows = rows_stack;
  float* a = a_stack;
  if (j_count > kMaxShifts || jk > kMaxCoefficients) {
    rows_heap.resize(j_count);
    a_heap.resize(jk);
    rows = rows_heap.data();
    a = a_heap.data();
  }
  for (int64_t c = begin; c < end; ++c) {
    const int64_t plane = dest != nullptr ? dest[c] : c;
    rows[0] = x + c * hw;
    for (int64_t j = 1; j < j_count; ++j) {
      rows[j] = x + op.shift_index[(j - 1) * c_count + c] * hw;
    }
    for (int64_t i = 0; i < jk; ++i) a[i] = coefficients[i * c_count + c];
    fuse_channel<J, K, HasPi, HasRes>(j_count, op.num_fusions, rows, a, pi,
                                      HasRes ? residual + plane * hw : nullptr,
                                      out + plane * hw, hw);
  }
}

template <int J, int K>
MICRONET_INLINE void apply_fixed(const ShiftMax& op, const float* x, int64_t hw,
                                 const float* coefficients, float* out, const int64_t* dest,
                                 const float* residual, int64_t begin, int64_t end) {
  const bool pi = op.spatial_weight != nullptr, res = residual != nullptr;
  if (pi && res) {
    apply_channels<J, K, true, true>(op, x, hw, coefficients, out, dest, residual, begin, end);
  } else if (pi) {
    apply_channels<J, K, true, false>(op, x, hw, coefficients, out, dest, residual, begin, end);
  } else if (res) {
    apply_channels<J, K, false, true>(op, x, hw, coefficients, out, dest, residual, begin, end);
  } else {
    apply_channels<J, K, false, false>(op, x, hw, coefficients, out, dest, residual, begin, end);
  }
}

// MicroNet's two forms get their own loops (J = 2 with K = 2 after the first layer and the
// depthwise convs, K = 1 after the squeezing pointwise convs); any other J, K the generic one.
MICRONET_INLINE void apply_impl(const ShiftMax& op, const float* x, int64_t hw,
                                const float* coefficients, float* out, const int64_t* dest,
                                const float* residual, int64_t begin, int64_t end) {
  if (op.num_shifts == 2 && op.num_fusions == 2) {
    apply_fixed<2, 2>(op, x, hw, coefficients, out, dest, residual, begin, end);
  } else if (op.num_shifts == 2 && op.num_fusions == 1) {
    apply_fixed<2, 1>(op, x, hw, coefficients, out, dest, residual, begin, end);
  } else {
    apply_fixed<0, 0>(op, x, hw, coefficients, out, dest, residual, begin, end);
  }
}

// One build of each pass per instruction set, picked once by CPU feature: AVX-512 (one
// register per 16-float vector), AVX2 + FMA (two), baseline x86-64 (four SSE registers).
#if defined(__x86_64__) && defined(__GNUC__)
#define MICRONET_SHIFT_MAX_AVX512 \
  __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))

MICRONET_SHIFT_MAX_AVX512 void coefficients_avx512(const ShiftMax& op, const float* x,
                                                   int64_t hw, float* coefficients) {
  coefficients_impl(op, x, hw, coefficients);
}
MICRONET_AVX2 void coefficients_avx2(const ShiftMax& op, const float* x, int64_t hw,
                                     float* coefficients) {
  coefficients_impl(op, x, hw, coefficients);
}
void coefficients_baseline(const ShiftMax& op, const float* x, int64_t hw,
                           float* coefficients) {
  coefficients_impl(op, x, hw, coefficients);
}

MICRONET_SHIFT_MAX_AVX512 void apply_avx512(const ShiftMax& op, const float* x, int64_t hw,
                                            const float* coefficients, float* out,
                                            const int64_t* dest, const float* residual,
                                            int64_t begin, int64_t end) {
  apply_impl(op, x, hw, coefficients, out, dest, residual, begin, end);
}
MICRONET_AVX2 void apply_avx2(const ShiftMax& op, const float* x, int64_t hw,
                              const float* coefficients, float* out, const int64_t* dest,
                              const float* residual, int64_t begin, int64_t end) {
  apply_impl(op, x, hw, coefficients, out, dest, residual, begin, end);
}
void apply_baseline(const ShiftMax& op, const float* x, int64_t hw, const float* coefficients,
                    float* out, const int64_t* dest, const float* residual, int64_t begin,
                    int64_t end) {
  apply_impl(op, x, hw, coefficients, out, dest, residual, begin, end);
}

enum class Isa { kAvx512, kAvx2, kBaseline };

Isa best_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw")) {
    return Isa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
  return Isa::kBaseline;
}

const Isa kIsa = best_isa();
#endif

}  // namespace

int64_t shift_max_coefficients_size(const ShiftMax& op, int64_t hw) {
  return op.num_shifts * op.num_fusions * op.channels + (op.spatial_weight != nullptr ? hw : 0);
}

void shift_max_coefficients(const ShiftMax& op, const float* x, int64_t hw,
                            float* coefficients) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (kIsa == Isa::kAvx512) return coefficients_avx512(op, x, hw, coefficients);
  if (kIsa == Isa::kAvx2) return coefficients_avx2(op, x, hw, coefficients);
  return coefficients_baseline(op, x, hw, coefficients);
#else
  coefficients_impl(op, x, hw, coefficients);
#endif
}

void shift_max_apply(const ShiftMax& op, const float* x, int64_t hw, const float* coefficients,
                     float* out, const int64_t* dest, const float* residual, int64_t begin,
                     int64_t end) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (kIsa == Isa::kAvx512) {
    return apply_avx512(op, x, hw, coefficients, out, dest, residual, begin, end);
  }
  if (kIsa == Isa::kAvx2) {
    return apply_avx2(op, x, hw, coefficients, out, dest, residual, begin, end);
  }
  return apply_baseline(op, x, hw, coefficients, out, dest, residual, begin, end);
#else
  apply_impl(op, x, hw, coefficients, out, dest, residual, begin, end);
#endif
}

}  // namespace micronet
