// micronet::separable_conv and the one-sample SeparableConv kernel of layers.h: a k x 1 conv
// (BN folded), then a depthwise 1 x k conv (BN folded), computed as the pair.
//
// MicroNet factorizes its depthwise k x k convolutions and its stem into such pairs. Merged
// into one k x k conv they cost k * k multiply-adds per output plus a border correction (the
// 1 x k conv zero-pads the *intermediate* map, whose bias the merged kernel would also count);
// computed as the pair they cost k per intermediate value plus k per output (5 x 5, stride 1:
// 10 instead of 25) and are exact everywhere with no correction. Per mid channel, a band of
// rows of the intermediate map T (16 KiB at most: it stays in L1) is made by the vertical pass
// and read back by the horizontal pass for the channel's m2 = out / mid outputs.
//
// Two implementations, picked per call:
// * AVX-512 (k = 3 or 5, padding k / 2, stride 1 or 2: MicroNet's layers; see "Fast path"
//   below). The work is multiply-add bound: the layouts waste few lanes (7 x 7
//   planes included) and each pass's zero padding costs load masks, not multiply-adds.
//   Stride-1 planes of up to 13 vectors (14 x 14, 7 x 7) keep the intermediate map in
//   registers ("a whole plane in registers").
// * Generic (any k, stride, padding, and CPUs without AVX-512): one zero-padded intermediate
//   row at a time, plain loops the compiler vectorises, compiled for AVX2 + FMA and for
//   baseline x86-64 (GCC function multi-versioning picks one at load time).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "layers.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(MICRONET_SEPARABLE_NO_AVX512)
#include <immintrin.h>
#define MICRONET_SEPARABLE_HAS_AVX512 1
#define MICRONET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#define MICRONET_AVX512_INLINE MICRONET_AVX512 __attribute__((always_inline)) inline
#define MICRONET_CLONES __attribute__((target_clones("avx2,fma", "default")))
#else
#define MICRONET_SEPARABLE_HAS_AVX512 0
#define MICRONET_CLONES
#endif

#define MICRONET_ALWAYS_INLINE __attribute__((always_inline)) inline

namespace micronet {
namespace {

// Floats of intermediate rows per band on the fast path: 16 KiB, half of an L1 data cache.
constexpr int64_t kBandFloats = 4096;
// Floats kept free around each intermediate buffer (taps and stores reach a little outside).
constexpr int64_t kSlack = 32;

// Sizes of one call, the same for every mid channel.
struct Geometry {
  int64_t h, w, out_h, out_w;
  int64_t k, s, p;
  int64_t per_group_in, mid_per_group, m2;  // I / groups1, M / groups1, O / M
  // Fast path (see its comment): a band's intermediate rows.
  int64_t row;        // floats per intermediate row: w (the banded path runs stride 1)
  int64_t band_rows;  // output rows per band
  int64_t vectors;    // 16-float vectors of a full band (mask tables)
  int64_t buffer;     // floats of one intermediate buffer, slack included
};

Geometry geometry(const SeparableConv& c, int64_t h, int64_t w) {
  Geometry g{};
  g.h = h;
  g.w = w;
  g.k = c.k;
  g.s = c.stride;
  g.p = c.pad;
  g.out_h = separable_out_size(h, c);
  g.out_w = separable_out_size(w, c);
  g.per_group_in = c.in_channels / c.groups1;
  g.mid_per_group = c.mid_channels / c.groups1;
  g.m2 = c.out_channels / c.mid_channels;
  g.row = std::max<int64_t>(w, 1);
  const int64_t rows = std::max<int64_t>(g.out_h, 1);
  const int64_t most = std::max<int64_t>(kBandFloats / g.row, 1);  // rows a band
  const int64_t bands = (rows + most - 1) / most;
  g.band_rows = (rows + bands - 1) / bands;  // bands of equal height (the last one shorter)
  g.vectors = (g.band_rows * g.row + 15) / 16;
  g.buffer = g.band_rows * g.row + 2 * kSlack;
  return g;
}

// The fast path's geometry: k = 3 or 5 with "same" padding, stride 1 or 2 (MicroNet's).
bool fast_geometry(const SeparableConv& c) {
  return (c.k == 3 || c.k == 5) && c.pad == c.k / 2 && (c.stride == 1 || c.stride == 2);
}

// Fast path workspace: two mask tables (horizontal and vertical pass), one uint16 per
// (vector, tap), then two intermediate buffers (one is written while the other is read).
int64_t mask_floats(const Geometry& g) { return (g.vectors * g.k + 1) / 2 + 1; }
int64_t fast_workspace(const Geometry& g) {
  return std::max(2 * mask_floats(g) + 2 * g.buffer + kSlack, g.w + 32);
}

// Generic path workspace: one zero-padded intermediate row, and a row of zeros.
int64_t generic_row_floats(const Geometry& g) { return g.w + 2 * g.p + g.s + g.k + 16; }
int64_t generic_workspace(const Geometry& g) { return generic_row_floats(g) + g.w; }

// Output plane of result channel o.
inline int64_t plane_of(const int64_t* dest, int64_t o) { return dest ? dest[o] : o; }

// ---------------------------------------------------------------------------------------------
// Generic path: one intermediate row at a time (any k, stride and padding).

// row[p .. p + w) = T row y of mid channel m; the padding around it stays zero.
MICRONET_ALWAYS_INLINE void generic_vertical_row(const SeparableConv& c, const Geometry& g,
                                                 const float* in, int64_t m, int64_t y,
                                                 float* __restrict row) {
  const int64_t hw = g.h * g.w, group = m / g.mid_per_group;
  const float* w1 = c.weight1 + m * g.per_group_in * g.k;
  float* __restrict dst = row + g.p;
  const float bias = c.bias1[m];
  for (int64_t x = 0; x < g.w; ++x) dst[x] = bias;
  for (int64_t i = 0; i < g.per_group_in; ++i) {
    const float* plane = in + (group * g.per_group_in + i) * hw;
    for (int64_t r = 0; r < g.k; ++r) {
      const int64_t source = y * g.s - g.p + r;
      if (source < 0 || source >= g.h) continue;  // the k x 1 conv's zero padding
      const float* __restrict src = plane + source * g.w;
      const float weight = w1[i * g.k + r];
      for (int64_t x = 0; x < g.w; ++x) dst[x] += weight * src[x];
    }
  }
}

// dst[x] = act(bias + sum_t w2[t] * row[x * S + t]); S = 0: stride `s` at run time.
template <int S>
MICRONET_ALWAYS_INLINE void generic_horizontal_row(const float* __restrict row, const float* w2,
                                                   float bias, const Geometry& g, bool relu6,
                                                   float* __restrict dst) {
  const int64_t s = S ? S : g.s;
  for (int64_t x = 0; x < g.out_w; ++x) dst[x] = bias;
  for (int64_t t = 0; t < g.k; ++t) {
    const float weight = w2[t];
    const float* __restrict src = row + t;
    for (int64_t x = 0; x < g.out_w; ++x) dst[x] += weight * src[x * s];
  }
  if (relu6) {
    for (int64_t x = 0; x < g.out_w; ++x) dst[x] = std::min(std::max(dst[x], 0.0f), 6.0f);
  }
}

template <int S>
MICRONET_ALWAYS_INLINE void generic_channels(const SeparableConv& c, const Geometry& g,
                                             const float* in, float* out, const int64_t* dest,
                                             float* row, int64_t begin, int64_t end) {
  const int64_t out_hw = g.out_h * g.out_w;
  std::fill(row, row + generic_row_floats(g), 0.0f);
  for (int64_t m = begin; m < end; ++m) {
    for (int64_t y = 0; y < g.out_h; ++y) {
      generic_vertical_row(c, g, in, m, y, row);
      for (int64_t j = 0; j < g.m2; ++j) {
        const int64_t o = m * g.m2 + j;
        generic_horizontal_row<S>(row, c.weight2 + o * g.k, c.bias2[o], g, c.relu6,
                                  out + plane_of(dest, o) * out_hw + y * g.out_w);
      }
    }
  }
}

// The same with k = K and stride S known at compile time (MicroNet's): each output is one
// expression over the K taps, so the loops over x vectorise with the sums in registers
// (taps in the zero padding read a zero row instead).
template <int K, int S>
MICRONET_ALWAYS_INLINE void generic_channels_k(const SeparableConv& c, const Geometry& g,
                                               const float* in, float* out,
                                               const int64_t* dest, float* workspace,
                                               int64_t begin, int64_t end) {
  const int64_t hw = g.h * g.w, out_hw = g.out_h * g.out_w;
  float* row = workspace;  // T row y at row[p .. p + w), zeros around it
  float* zeros = workspace + generic_row_floats(g);
  std::fill(workspace, workspace + generic_workspace(g), 0.0f);
  for (int64_t m = begin; m < end; ++m) {
    const float* planes = in + (m / g.mid_per_group) * g.per_group_in * hw;
    for (int64_t y = 0; y < g.out_h; ++y) {
      float* __restrict dst = row + g.p;
      for (int64_t i = 0; i < g.per_group_in; ++i) {
        const float* w1 = c.weight1 + (m * g.per_group_in + i) * K;
        const float* src[K];
        for (int r = 0; r < K; ++r) {
          const int64_t source = y * S - g.p + r;
          src[r] = source >= 0 && source < g.h ? planes + i * hw + source * g.w : zeros;
        }
        const float b = i == 0 ? c.bias1[m] : 0.0f;
        for (int64_t x = 0; x < g.w; ++x) {
          float sum = i == 0 ? b : dst[x];
          for (int r = 0; r < K; ++r) sum += w1[r] * src[r][x];
          dst[x] = sum;
        }
      }
      for (int64_t j = 0; j < g.m2; ++j) {
        const int64_t o = m * g.m2 + j;
        const float* w2 = c.weight2 + o * K;
        const float b2 = c.bias2[o];
        float* __restrict y_out = out + plane_of(dest, o) * out_hw + y * g.out_w;
        for (int64_t x = 0; x < g.out_w; ++x) {
          float sum = b2;
          for (int t = 0; t < K; ++t) sum += w2[t] * row[x * S + t];
          y_out[x] = c.relu6 ? std::min(std::max(sum, 0.0f), 6.0f) : sum;
        }
      }
    }
  }
}

// Mid channels [begin, end), compiled for AVX2 + FMA and for baseline x86-64.
MICRONET_CLONES void generic_path(const SeparableConv& c, const Geometry& g, const float* in,
                                  float* out, const int64_t* dest, float* workspace,
                                  int64_t begin, int64_t end) {
  const int key = static_cast<int>(g.k * 10 + g.s);
  if (key == 31) return generic_channels_k<3, 1>(c, g, in, out, dest, workspace, begin, end);
  if (key == 32) return generic_channels_k<3, 2>(c, g, in, out, dest, workspace, begin, end);
  if (key == 51) return generic_channels_k<5, 1>(c, g, in, out, dest, workspace, begin, end);
  if (key == 52) return generic_channels_k<5, 2>(c, g, in, out, dest, workspace, begin, end);
  if (g.s == 1) return generic_channels<1>(c, g, in, out, dest, workspace, begin, end);
  if (g.s == 2) return generic_channels<2>(c, g, in, out, dest, workspace, begin, end);
  generic_channels<0>(c, g, in, out, dest, workspace, begin, end);
}

// ---------------------------------------------------------------------------------------------
// Fast path (AVX-512), k = 3 or 5 (K below, a compile-time constant), padding P = K / 2.
//
// Both passes run over vectors of 16 floats, U vectors at a time (4 to 8 accumulators), each
// doing all K taps; the work is multiply-add bound, so the layouts waste few lanes and the
// zero padding of either pass costs load masks, not multiply-adds. A band of the
// intermediate map lives in a buffer:
// * stride 1: T flat (row stride w, rows back to back). T vector q = b1 + sum_r w1[r] *
//   input[q + (r - P) * w] and output vector q = b2 + sum_t w2[t] * T[q + t - P]: vectors
//   span rows (a 7 x 7 plane is 4 vectors), so taps that cross the top or bottom of the plane
//   (vertical) or a row's ends (horizontal) are masked per lane by (vector, tap) tables.
//   Planes of up to 13 vectors skip the buffer: T stays in registers (see "Stride 1, a whole
//   plane in registers").
// * stride 2: no buffer; both passes run in registers, two output rows and up to four mid
//   channels of a group at a time (see "Stride 2, both passes in registers").

#if MICRONET_SEPARABLE_HAS_AVX512

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
}

// Lanes [lo, hi) of a 16-lane mask, bounds clamped to [0, 16].
inline __mmask16 lanes(int64_t lo, int64_t hi) {
  lo = std::clamp<int64_t>(lo, 0, 16);
  hi = std::clamp<int64_t>(hi, 0, 16);
  if (hi <= lo) return 0;
  return static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

// Clears the lanes of flat indices [q0, q1) of tap t in a (vector, tap) mask table.
void clear_lanes(uint16_t* masks, int64_t k, int64_t t, int64_t q0, int64_t q1) {
  for (int64_t q = q0; q < q1; ++q) masks[(q / 16) * k + t] &= uint16_t(~(1u << (q % 16)));
}

// masks[v * k + t]: lanes of output vector v of a band whose tap t reads inside the
// intermediate row (columns x * s + t - p in [0, w)); bands start at a row, so one table
// serves every band.
void build_horizontal_masks(const Geometry& g, uint16_t* masks) {
  std::fill(masks, masks + g.vectors * g.k, uint16_t(0xFFFF));
  for (int64_t t = 0; t < g.k; ++t) {
    // Columns x with x * s + t - p in [0, w): [first, last).
    const int64_t first = std::clamp<int64_t>((g.p - t + g.s - 1) / g.s, 0, g.out_w);
    const int64_t below = g.w - 1 - t + g.p;
    const int64_t last = std::clamp<int64_t>(below >= 0 ? below / g.s + 1 : 0, first, g.out_w);
    for (int64_t row = 0; row < g.band_rows; ++row) {
      clear_lanes(masks, g.k, t, row * g.out_w, row * g.out_w + first);
      clear_lanes(masks, g.k, t, row * g.out_w + last, (row + 1) * g.out_w);
    }
    clear_lanes(masks, g.k, t, g.band_rows * g.out_w, g.vectors * 16);
  }
}

// masks[v * k + r] (stride 1): lanes of T vector v of the band [y0, y1) whose tap r reads an
// input row inside the plane (rows y - p + r in [0, h)) and that lie in the band.
void build_vertical_masks(const Geometry& g, int64_t y0, int64_t y1, uint16_t* masks) {
  std::fill(masks, masks + g.vectors * g.k, uint16_t(0xFFFF));
  for (int64_t r = 0; r < g.k; ++r) {
    for (int64_t y = y0; y < y1; ++y) {
      const int64_t row = y - g.p + r;
      if (row < 0 || row >= g.h) clear_lanes(masks, g.k, r, (y - y0) * g.w, (y - y0 + 1) * g.w);
    }
    clear_lanes(masks, g.k, r, (y1 - y0) * g.w, g.vectors * 16);
  }
}

// ---- Vertical pass, stride 1.

// U vectors of T from flat index q (of n in the band): t[q] = b1 + sum_{i, r} w1[i * K + r] *
// rows[i * hw + q + r * w], `rows` being the band's first input row y0 - P. Masked: tap r
// masked by masks[v * K + r]; else every tap reads inside the plane (only lanes past n are).
template <int K, int U, bool Masked>
MICRONET_AVX512_INLINE void vertical_s1(const Geometry& g, const float* w1, float b1,
                                        const float* rows, const uint16_t* masks, int64_t q,
                                        int64_t n, float* t) {
  const int64_t hw = g.h * g.w;
  __m512 acc[U];
  __mmask16 tail[U];
  for (int u = 0; u < U; ++u) {
    acc[u] = _mm512_set1_ps(b1);
    tail[u] = lanes(0, n - q - 16 * u);
  }
  const int64_t v = q / 16;
  for (int64_t i = 0; i < g.per_group_in; ++i) {
    const float* row = rows + i * hw + q;
#pragma GCC unroll 5
    for (int r = 0; r < K; ++r) {
      const __m512 weight = _mm512_set1_ps(w1[i * K + r]);
      for (int u = 0; u < U; ++u) {
        const __mmask16 mask = Masked ? masks[(v + u) * K + r] : tail[u];
        const __m512 x = _mm512_maskz_loadu_ps(mask, row + r * g.w + 16 * u);
        acc[u] = _mm512_fmadd_ps(x, weight, acc[u]);
      }
    }
  }
  for (int u = 0; u < U; ++u) _mm512_mask_storeu_ps(t + q + 16 * u, tail[u], acc[u]);
}

// T vectors [v0, v1) of the band, four at a time.
template <int K, bool Masked>
MICRONET_AVX512_INLINE void vertical_s1_vectors(const Geometry& g, const float* w1, float b1,
                                                const float* rows, const uint16_t* masks,
                                                int64_t v0, int64_t v1, int64_t n, float* t) {
  int64_t v = v0;
  for (; v + 4 <= v1; v += 4) vertical_s1<K, 4, Masked>(g, w1, b1, rows, masks, 16 * v, n, t);
  if (v + 2 <= v1) {
    vertical_s1<K, 2, Masked>(g, w1, b1, rows, masks, 16 * v, n, t);
    v += 2;
  }
  if (v < v1) vertical_s1<K, 1, Masked>(g, w1, b1, rows, masks, 16 * v, n, t);
}

// T of the band [y0, y1): vectors whose taps may leave the plane masked (masks = null: none).
template <int K>
MICRONET_AVX512_INLINE void band_vertical_s1(const Geometry& g, const float* w1, float b1,
                                             const float* planes, const uint16_t* masks,
                                             int64_t y0, int64_t y1, float* t) {
  constexpr int P = K / 2;
  const float* rows = planes + (y0 - P) * g.w;
  const int64_t n = (y1 - y0) * g.w, vectors = (n + 15) / 16;
  int64_t lo = 0, hi = vectors;  // vectors [lo, hi) read inside the plane with every tap
  if (masks) {
    lo = std::clamp<int64_t>(((P - y0) * g.w + 15) / 16, 0, vectors);
    hi = std::clamp<int64_t>(std::min(n, (g.h - y0 - K + 1 + P) * g.w) / 16, lo, vectors);
  }
  vertical_s1_vectors<K, true>(g, w1, b1, rows, masks, 0, lo, n, t);
  vertical_s1_vectors<K, false>(g, w1, b1, rows, masks, lo, hi, n, t);
  vertical_s1_vectors<K, true>(g, w1, b1, rows, masks, hi, vectors, n, t);
}

// ---- Stride 2, both passes in registers.
//
// T is never stored: per two output rows y, y + 1 and chunk c, the vertical pass makes T
// columns [32c, 32c + 32) of M <= 4 mid channels of a group at once (one input load feeds up
// to 2M multiply-adds) and splits them into even and odd columns. Output lane l of chunk c
// is column j = 16c - E + l (E = P / 2), whose tap t reads T column 2j + t - P: an even (t - P
// even) or odd column 16c + l + floor((t - P) / 2) - E, i.e. this chunk's vector shifted by
// 0 to 2 lanes, the previous chunk's last lanes in front. No tap reads ahead; T columns
// outside [0, w) are zero (the 1 x k conv's padding) and input rows outside [0, h) read a
// row of zeros. Planes at most 16 wide take a packed variant (see narrow_s2_block).

// Input rows 2y - P + n (n < N) of the group: input i's at base[n] + i * step[n] (step 0:
// the row of zeros).
template <int N>
struct InputRows {
  const float* base[N];
  int64_t step[N];
};

// The input rows that T rows y .. y + R - 1 read.
template <int K, int R>
MICRONET_AVX512_INLINE InputRows<K + 2 * R - 2> input_rows(const Geometry& g,
                                                          const float* planes,
                                                          const float* zeros, int64_t y) {
  InputRows<K + 2 * R - 2> rows;
  for (int n = 0; n < K + 2 * R - 2; ++n) {
    const int64_t source = 2 * y - K / 2 + n;
    const bool inside = source >= 0 && source < g.h;
    rows.base[n] = inside ? planes + source * g.w : zeros;
    rows.step[n] = inside ? g.h * g.w : 0;
  }
  return rows;
}

// Lanes moved up by -S (0 to 2) lanes, the last ones of `before` in front.
template <int S>
MICRONET_AVX512_INLINE __m512 shifted(__m512 now, __m512 before) {
  if (S == 0) return now;
  return _mm512_castsi512_ps(
      _mm512_alignr_epi32(_mm512_castps_si512(now), _mm512_castps_si512(before), 16 + S));
}

// T rows y .. y + R - 1 of mid channels m0 .. m0 + M - 1 at columns offset + [0, 16 * V) (lanes
// past mask[] read as zero input): t[v][u][vector] (rows y and y + 1 share input row 2y + 1).
template <int K, int M, int R, int V, bool Masked>
MICRONET_AVX512_INLINE void fused_s2_vertical(const SeparableConv& c, const Geometry& g,
                                              const InputRows<K + 2 * R - 2>& rows, int64_t m0,
                                              int64_t offset, const __mmask16* mask,
                                              __m512 (*t)[M][V]) {
  const float* w1 = c.weight1 + m0 * g.per_group_in * K;
  for (int v = 0; v < R; ++v) {
    for (int u = 0; u < M; ++u) {
      for (int e = 0; e < V; ++e) t[v][u][e] = _mm512_set1_ps(c.bias1[m0 + u]);
    }
  }
  for (int64_t i = 0; i < g.per_group_in; ++i) {
#pragma GCC unroll 9
    for (int n = 0; n < K + 2 * R - 2; ++n) {
      const float* src = rows.base[n] + i * rows.step[n] + offset;
      __m512 x[V];
      for (int e = 0; e < V; ++e) {
        x[e] = Masked ? _mm512_maskz_loadu_ps(mask[e], src + 16 * e)
                      : _mm512_loadu_ps(src + 16 * e);
      }
      for (int v = 0; v < R; ++v) {
        const int r = n - 2 * v;  // the tap of row y + v that reads input row n
        if (r < 0 || r >= K) continue;
        for (int u = 0; u < M; ++u) {
          const __m512 weight = _mm512_set1_ps(w1[(u * g.per_group_in + i) * K + r]);
          for (int e = 0; e < V; ++e) t[v][u][e] = _mm512_fmadd_ps(x[e], weight, t[v][u][e]);
        }
      }
    }
  }
}

// Chunk `chunk` of output rows y .. y + R - 1 for mid channels m0 .. m0 + M - 1; even[v][u],
// odd[v][u]: T_even, T_odd of the previous chunk, replaced by this one's. Partial: T columns
// reach w or beyond.
template <int K, int M, int R, bool Partial>
MICRONET_AVX512_INLINE void fused_s2_chunk(const SeparableConv& c, const Geometry& g,
                                           const InputRows<K + 2 * R - 2>& rows, int64_t m0,
                                           float* out, const int64_t* dest, int64_t y,
                                           int64_t chunk, __m512 (*even)[M],
                                           __m512 (*odd)[M]) {
  constexpr int P = K / 2, E = P / 2;
  const __mmask16 mask[2] = {Partial ? lanes(0, g.w - 32 * chunk) : __mmask16(0xFFFF),
                             Partial ? lanes(0, g.w - 32 * chunk - 16) : __mmask16(0xFFFF)};
  __m512 t[R][M][2];  // T columns 32 * chunk + [0, 16), [16, 32) of row y + v, mid m0 + u
  fused_s2_vertical<K, M, R, 2, Partial>(c, g, rows, m0, 32 * chunk, mask, t);
  const __m512i even_lanes =
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd_lanes =
      _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const int64_t first = 16 * chunk - E;  // output column of lane 0
  const __mmask16 store = lanes(-first, g.out_w - first);
  const int64_t out_hw = g.out_h * g.out_w;
  // ReLU6 or none, without a branch: clamp to [0, 6] or to [-inf, inf].
  const __m512 low = _mm512_set1_ps(c.relu6 ? 0.0f : -INFINITY);
  const __m512 high = _mm512_set1_ps(c.relu6 ? 6.0f : INFINITY);
#pragma GCC unroll 4
  for (int u = 0; u < M; ++u) {
    __m512 tap[R][K];  // tap t of row y + v: T column 2j + t - P
    for (int v = 0; v < R; ++v) {
      if (Partial) {  // T columns from w on are the 1 x k conv's zero padding
        t[v][u][0] = _mm512_maskz_mov_ps(mask[0], t[v][u][0]);
        t[v][u][1] = _mm512_maskz_mov_ps(mask[1], t[v][u][1]);
      }
      const __m512 t_even = _mm512_permutex2var_ps(t[v][u][0], even_lanes, t[v][u][1]);
      const __m512 t_odd = _mm512_permutex2var_ps(t[v][u][0], odd_lanes, t[v][u][1]);
      if (K == 3) {
        tap[v][0] = shifted<-1>(t_odd, odd[v][u]);
        tap[v][1] = t_even;
        tap[v][2] = t_odd;
      } else {
        tap[v][0] = shifted<-2>(t_even, even[v][u]);
        tap[v][1] = shifted<-2>(t_odd, odd[v][u]);
        tap[v][2] = shifted<-1>(t_even, even[v][u]);
        tap[v][3] = shifted<-1>(t_odd, odd[v][u]);
        tap[v][K - 1] = t_even;
      }
      even[v][u] = t_even;
      odd[v][u] = t_odd;
    }
    for (int64_t j = 0; j < g.m2; ++j) {
      const int64_t o = (m0 + u) * g.m2 + j;
      const float* w2 = c.weight2 + o * K;
      float* row = out + plane_of(dest, o) * out_hw + y * g.out_w + first;
      for (int v = 0; v < R; ++v) {
        __m512 acc = _mm512_set1_ps(c.bias2[o]);
        for (int t = 0; t < K; ++t) {
          acc = _mm512_fmadd_ps(tap[v][t], _mm512_set1_ps(w2[t]), acc);
        }
        acc = _mm512_min_ps(_mm512_max_ps(acc, low), high);
        _mm512_mask_storeu_ps(row + v * g.out_w, store, acc);
      }
    }
  }
}

// Output rows [y, y + R) of mid channels m0 .. m0 + M - 1, all chunks.
template <int K, int M, int R>
MICRONET_AVX512_INLINE void fused_s2_rows(const SeparableConv& c, const Geometry& g,
                                          const float* planes, float* out,
                                          const int64_t* dest, const float* zeros,
                                          int64_t m0, int64_t y) {
  constexpr int E = K / 4;
  const InputRows<K + 2 * R - 2> rows = input_rows<K, R>(g, planes, zeros, y);
  __m512 even[R][M], odd[R][M];
  for (int v = 0; v < R; ++v) {
    for (int u = 0; u < M; ++u) even[v][u] = odd[v][u] = _mm512_setzero_ps();
  }
  const int64_t full = g.w / 32, chunks = (g.out_w + E + 15) / 16;
  int64_t chunk = 0;
  for (; chunk < std::min(full, chunks); ++chunk) {
    fused_s2_chunk<K, M, R, false>(c, g, rows, m0, out, dest, y, chunk, even, odd);
  }
  for (; chunk < chunks; ++chunk) {
    fused_s2_chunk<K, M, R, true>(c, g, rows, m0, out, dest, y, chunk, even, odd);
  }
}

// Mid channels m0 .. m0 + M - 1 (one group) and their outputs, two rows at a time. A function
// of its own: inlined into fast_path, GCC allocated registers worse (10-20% slower).
template <int K, int M>
MICRONET_AVX512 __attribute__((noinline)) void fused_s2_block(
    const SeparableConv& conv, const Geometry& geometry, const float* in, float* out,
    const int64_t* dest, const float* zeros, int64_t m0) {
  // Local copies: the compiler may then keep their fields in registers across the stores
  // (an intrinsic's store may alias anything).
  const SeparableConv c = conv;
  const Geometry g = geometry;
  const float* planes = in + (m0 / g.mid_per_group) * g.per_group_in * g.h * g.w;
  int64_t y = 0;
  for (; y + 2 <= g.out_h; y += 2) fused_s2_rows<K, M, 2>(c, g, planes, out, dest, zeros, m0, y);
  if (y < g.out_h) fused_s2_rows<K, M, 1>(c, g, planes, out, dest, zeros, m0, y);
}

// Narrow planes (w <= 16): a row is one vector, so two rows of T are made at once and the
// horizontal pass packs their outputs (out_w <= 8 each) into one vector, lane l being output
// row y + l / out_w, column l % out_w: tap t gathers its T columns 2j + t - P from the two
// rows with one two-source permute, lanes in the padding zeroed by its mask.
struct NarrowTaps {
  alignas(64) int32_t index[5][16];
  __mmask16 mask[5];
};

NarrowTaps narrow_taps(const Geometry& g) {
  NarrowTaps taps{};
  for (int64_t t = 0; t < g.k; ++t) {
    for (int64_t l = 0; l < std::min<int64_t>(16, 2 * g.out_w); ++l) {
      const int64_t row = l / g.out_w, column = 2 * (l % g.out_w) + t - g.p;
      if (column < 0 || column >= g.w) continue;
      taps.index[t][l] = static_cast<int32_t>(16 * row + column);
      taps.mask[t] |= static_cast<__mmask16>(1u << l);
    }
  }
  return taps;
}

// Mid channels m0 .. m0 + M - 1 (one group) and their outputs, two rows at a time.
template <int K, int M>
MICRONET_AVX512 __attribute__((noinline)) void narrow_s2_block(
    const SeparableConv& conv, const Geometry& geometry, const NarrowTaps& narrow,
    const float* in, float* out, const int64_t* dest, const float* zeros, int64_t m0) {
  const SeparableConv c = conv;  // local copies, as in fused_s2_block
  const Geometry g = geometry;
  __m512i index[K];
  __mmask16 mask[K];
  for (int k = 0; k < K; ++k) {
    index[k] = _mm512_load_si512(narrow.index[k]);
    mask[k] = narrow.mask[k];
  }
  const float* planes = in + (m0 / g.mid_per_group) * g.per_group_in * g.h * g.w;
  const int64_t out_hw = g.out_h * g.out_w;
  const __mmask16 columns = lanes(0, g.w);
  const __m512 low = _mm512_set1_ps(c.relu6 ? 0.0f : -INFINITY);
  const __m512 high = _mm512_set1_ps(c.relu6 ? 6.0f : INFINITY);
  for (int64_t y = 0; y < g.out_h; y += 2) {
    __m512 t[2][M][1];
    if (y + 1 < g.out_h) {
      fused_s2_vertical<K, M, 2, 1, true>(c, g, input_rows<K, 2>(g, planes, zeros, y), m0, 0,
                                          &columns, t);
    } else {  // a last row alone
      fused_s2_vertical<K, M, 1, 1, true>(c, g, input_rows<K, 1>(g, planes, zeros, y), m0, 0,
                                          &columns, t);
      for (int u = 0; u < M; ++u) t[1][u][0] = _mm512_setzero_ps();
    }
    const __mmask16 store = lanes(0, std::min<int64_t>(2, g.out_h - y) * g.out_w);
#pragma GCC unroll 4
    for (int u = 0; u < M; ++u) {
      __m512 tap[K];
      for (int k = 0; k < K; ++k) {
        tap[k] = _mm512_maskz_permutex2var_ps(mask[k], t[0][u][0], index[k], t[1][u][0]);
      }
      for (int64_t j = 0; j < g.m2; ++j) {
        const int64_t o = (m0 + u) * g.m2 + j;
        const float* w2 = c.weight2 + o * K;
        __m512 acc = _mm512_set1_ps(c.bias2[o]);
        for (int k = 0; k < K; ++k) acc = _mm512_fmadd_ps(tap[k], _mm512_set1_ps(w2[k]), acc);
        acc = _mm512_min_ps(_mm512_max_ps(acc, low), high);
        _mm512_mask_storeu_ps(out + plane_of(dest, o) * out_hw + y * g.out_w, store, acc);
      }
    }
  }
}

// Mid channels [begin, end), up to four of a group at a time.
template <int K>
MICRONET_AVX512_INLINE void fused_s2(const SeparableConv& c, const Geometry& g,
                                     const float* in, float* out, const int64_t* dest,
                                     float* zeros, int64_t begin, int64_t end) {
  std::fill(zeros, zeros + g.w + 32, 0.0f);
  const bool narrow = g.w <= 16;
  const NarrowTaps taps = narrow ? narrow_taps(g) : NarrowTaps{};
  for (int64_t m = begin; m < end;) {
    const int64_t group_end = (m / g.mid_per_group + 1) * g.mid_per_group;
    const int64_t count = std::min<int64_t>({4, group_end - m, end - m});
    if (narrow) {
      if (count == 4) narrow_s2_block<K, 4>(c, g, taps, in, out, dest, zeros, m);
      if (count == 3) narrow_s2_block<K, 3>(c, g, taps, in, out, dest, zeros, m);
      if (count == 2) narrow_s2_block<K, 2>(c, g, taps, in, out, dest, zeros, m);
      if (count == 1) narrow_s2_block<K, 1>(c, g, taps, in, out, dest, zeros, m);
    } else {
      if (count == 4) fused_s2_block<K, 4>(c, g, in, out, dest, zeros, m);
      if (count == 3) fused_s2_block<K, 3>(c, g, in, out, dest, zeros, m);
      if (count == 2) fused_s2_block<K, 2>(c, g, in, out, dest, zeros, m);
      if (count == 1) fused_s2_block<K, 1>(c, g, in, out, dest, zeros, m);
    }
    m += count;
  }
}

// ---- Horizontal pass.

// M2 output channels, U vectors from flat output v * 16 (of n in the band): out[j][q] =
// act(b2[j] + sum_t weight[j * K + t] * src[t][q]), tap t masked by masks[v * K + t].
template <int K, int M2, int U>
MICRONET_AVX512_INLINE void horizontal(const float* const* src, const uint16_t* masks,
                                       const __m512* weight, const float* b2, bool relu6,
                                       float* const* out, int64_t v, int64_t n) {
  __m512 acc[M2][U];
  for (int j = 0; j < M2; ++j) {
    for (int u = 0; u < U; ++u) acc[j][u] = _mm512_set1_ps(b2[j]);
  }
#pragma GCC unroll 5
  for (int t = 0; t < K; ++t) {
    __m512 x[U];
    for (int u = 0; u < U; ++u) {
      x[u] = _mm512_maskz_loadu_ps(masks[(v + u) * K + t], src[t] + (v + u) * 16);
    }
    for (int j = 0; j < M2; ++j) {
      for (int u = 0; u < U; ++u) acc[j][u] = _mm512_fmadd_ps(x[u], weight[j * K + t], acc[j][u]);
    }
  }
  const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
  for (int j = 0; j < M2; ++j) {
    for (int u = 0; u < U; ++u) {
      __m512 y = acc[j][u];
      if (relu6) y = _mm512_min_ps(_mm512_max_ps(y, zero), six);
      _mm512_mask_storeu_ps(out[j] + (v + u) * 16, lanes(0, n - (v + u) * 16), y);
    }
  }
}

// All n outputs of a band of M2 output channels.
template <int K, int M2>
MICRONET_AVX512_INLINE void band_horizontal(const float* const* src, const uint16_t* masks,
                                            const float* w2, const float* b2, bool relu6,
                                            float* const* out, int64_t n) {
  constexpr int U = M2 <= 2 ? 4 : 2;  // accumulators: 4 to 8
  __m512 weight[M2 * K];
  for (int i = 0; i < M2 * K; ++i) weight[i] = _mm512_set1_ps(w2[i]);
  const int64_t vectors = (n + 15) / 16;
  int64_t v = 0;
  for (; v + U <= vectors; v += U) {
    horizontal<K, M2, U>(src, masks, weight, b2, relu6, out, v, n);
  }
  if (U == 4 && v + 2 <= vectors) {
    horizontal<K, M2, 2>(src, masks, weight, b2, relu6, out, v, n);
    v += 2;
  }
  for (; v < vectors; ++v) horizontal<K, M2, 1>(src, masks, weight, b2, relu6, out, v, n);
}

// ---- Per mid channel and band.

// T of mid channel m for the band [y0, y1).
template <int K>
MICRONET_AVX512_INLINE void band_vertical(const SeparableConv& c, const Geometry& g,
                                          const float* in, int64_t m, int64_t y0, int64_t y1,
                                          const uint16_t* masks, float* t) {
  const float* planes = in + (m / g.mid_per_group) * g.per_group_in * g.h * g.w;
  const float* w1 = c.weight1 + m * g.per_group_in * K;
  band_vertical_s1<K>(g, w1, c.bias1[m], planes, masks, y0, y1, t);
}

// The m2 outputs of mid channel m over a band (rows rows from y0), up to three at a time
// (they share the intermediate loads).
template <int K>
MICRONET_AVX512_INLINE void band_outputs(const SeparableConv& c, const Geometry& g,
                                         const float* t, const uint16_t* masks, int64_t m,
                                         int64_t y0,
                                         int64_t rows, float* out, const int64_t* dest) {
  constexpr int P = K / 2;
  const float* src[K];  // where tap t reads for output 0 of the band
  for (int tap = 0; tap < K; ++tap) src[tap] = t + tap - P;
  const int64_t out_hw = g.out_h * g.out_w, n = rows * g.out_w;
  for (int64_t j = 0; j < g.m2;) {
    const int64_t o = m * g.m2 + j, count = std::min<int64_t>(3, g.m2 - j);
    float* planes[3];
    for (int64_t i = 0; i < count; ++i) {
      planes[i] = out + plane_of(dest, o + i) * out_hw + y0 * g.out_w;
    }
    const float* w2 = c.weight2 + o * K;
    const float* b2 = c.bias2 + o;
    if (count == 1) band_horizontal<K, 1>(src, masks, w2, b2, c.relu6, planes, n);
    if (count == 2) band_horizontal<K, 2>(src, masks, w2, b2, c.relu6, planes, n);
    if (count == 3) band_horizontal<K, 3>(src, masks, w2, b2, c.relu6, planes, n);
    j += count;
  }
}

// Mid channels [begin, end) and their outputs, band by band. Software-pipelined: the
// vertical pass of the next mid channel runs before the horizontal pass of this one, into the
// other buffer, so the horizontal pass does not wait for stores still in flight (its shifted,
// masked loads cannot be forwarded from them).
template <int K>
MICRONET_AVX512_INLINE void fast_channels(const SeparableConv& c, const Geometry& g,
                                          const float* in, float* out, const int64_t* dest,
                                          float* workspace, int64_t begin, int64_t end) {
  constexpr int P = K / 2;
  uint16_t* horizontal_masks = reinterpret_cast<uint16_t*>(workspace);
  uint16_t* vertical_masks = reinterpret_cast<uint16_t*>(workspace + mask_floats(g));
  build_horizontal_masks(g, horizontal_masks);
  float* buffers = workspace + 2 * mask_floats(g) + kSlack;
  float* t[2] = {buffers, buffers + g.buffer};
  for (int64_t y0 = 0; y0 < g.out_h; y0 += g.band_rows) {
    const int64_t y1 = std::min(g.out_h, y0 + g.band_rows);
    // Masks where the band's input rows [y0 - P, y1 - P + K - 1) leave the plane.
    const uint16_t* masks = nullptr;
    if (y0 - P < 0 || y1 - P + K - 1 > g.h) {
      build_vertical_masks(g, y0, y1, vertical_masks);
      masks = vertical_masks;
    }
    band_vertical<K>(c, g, in, begin, y0, y1, masks, t[0]);
    for (int64_t m = begin; m < end; ++m) {
      float* now = t[(m - begin) % 2];
      if (m + 1 < end) {
        float* next = t[(m + 1 - begin) % 2];
        band_vertical<K>(c, g, in, m + 1, y0, y1, masks, next);
      }
      band_outputs<K>(c, g, now, horizontal_masks, m, y0, y1 - y0, out, dest);
    }
  }
}

// ---- Stride 1, a whole plane in registers.
//
// When a plane is at most kPlaneVectors vectors (MicroNet's 14 x 14 and 7 x 7 planes: 13 and
// 4), a mid channel's T stays in registers: the vertical pass makes its V vectors (rows
// outside the plane masked, as above), and each output tap's lanes are cut from two
// neighbouring T vectors by valignd (shifted_lanes). No intermediate buffer, no stores and
// reloads of T (whose misaligned reloads could not be forwarded from the stores), and no
// per-band bookkeeping, which on planes this small cost more than the multiply-adds.
constexpr int kPlaneVectors = 13;

// Lanes of T shifted by D (-P <= D <= P) for vector u of `around` (T vectors, around[u + 1]
// the one in place): cut from two neighbours by valignd, tap mask applied (zeros elsewhere).
template <int D>
MICRONET_AVX512_INLINE __m512 shifted_lanes(const __m512i* around, int u, __mmask16 mask) {
  if constexpr (D == 0) {
    return _mm512_maskz_mov_ps(mask, _mm512_castsi512_ps(around[u + 1]));
  } else if constexpr (D > 0) {
    return _mm512_castsi512_ps(_mm512_maskz_alignr_epi32(mask, around[u + 2], around[u + 1], D));
  } else {
    return _mm512_castsi512_ps(_mm512_maskz_alignr_epi32(mask, around[u + 1], around[u], 16 + D));
  }
}


// y + sum over the taps of output vector v (T vectors in t, see plane_channel).
template <int K, int... Taps>
MICRONET_AVX512_INLINE __m512 plane_output(const __m512i* t, int v, const uint16_t* masks,
                                           const __m512* weight, __m512 y,
                                           std::integer_sequence<int, Taps...>) {
  ((y = _mm512_fmadd_ps(shifted_lanes<Taps - K / 2>(t, v, masks[v * K + Taps]), weight[Taps],
                        y)),
   ...);
  return y;
}

template <int K, int V>
MICRONET_AVX512_INLINE void plane_channel(const SeparableConv& c, const Geometry& g,
                                          const float* in, int64_t m,
                                          const uint16_t* vertical_masks,
                                          const uint16_t* horizontal_masks, float* out,
                                          const int64_t* dest) {
  constexpr int P = K / 2;
  const int64_t hw = g.h * g.w;
  const float* planes = in + (m / g.mid_per_group) * g.per_group_in * hw;
  const float* w1 = c.weight1 + m * g.per_group_in * K;
  __m512 acc[V];
  for (int v = 0; v < V; ++v) acc[v] = _mm512_set1_ps(c.bias1[m]);
  for (int64_t i = 0; i < g.per_group_in; ++i) {
    const float* plane = planes + i * hw;
    for (int r = 0; r < K; ++r) {
      const __m512 weight = _mm512_set1_ps(w1[i * K + r]);
      const float* row = plane + (r - P) * g.w;
      for (int v = 0; v < V; ++v) {
        const __m512 x = _mm512_maskz_loadu_ps(vertical_masks[v * K + r], row + 16 * v);
        acc[v] = _mm512_fmadd_ps(x, weight, acc[v]);
      }
    }
  }
  __m512i t[V + 2];  // T vectors, with a zero vector on either side
  t[0] = t[V + 1] = _mm512_setzero_si512();
  for (int v = 0; v < V; ++v) t[v + 1] = _mm512_castps_si512(acc[v]);
  const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
  for (int64_t j = 0; j < g.m2; ++j) {
    const int64_t o = m * g.m2 + j;
    __m512 weight[K];
    for (int tap = 0; tap < K; ++tap) weight[tap] = _mm512_set1_ps(c.weight2[o * K + tap]);
    float* dst = out + plane_of(dest, o) * hw;
    for (int v = 0; v < V; ++v) {
      __m512 y = _mm512_set1_ps(c.bias2[o]);
      y = plane_output<K>(t, v, horizontal_masks, weight, y, std::make_integer_sequence<int, K>());
      if (c.relu6) y = _mm512_min_ps(_mm512_max_ps(y, zero), six);
      _mm512_mask_storeu_ps(dst + 16 * v, lanes(0, hw - 16 * v), y);
    }
  }
}

template <int K, int V>
MICRONET_AVX512_INLINE void plane_channels(const SeparableConv& c, const Geometry& g,
                                           const float* in, float* out, const int64_t* dest,
                                           float* workspace, int64_t begin, int64_t end) {
  uint16_t* horizontal_masks = reinterpret_cast<uint16_t*>(workspace);
  uint16_t* vertical_masks = reinterpret_cast<uint16_t*>(workspace + mask_floats(g));
  build_horizontal_masks(g, horizontal_masks);
  build_vertical_masks(g, 0, g.h, vertical_masks);
  for (int64_t m = begin; m < end; ++m) {
    plane_channel<K, V>(c, g, in, m, vertical_masks, horizontal_masks, out, dest);
  }
}

// Planes of V = 1 .. kPlaneVectors vectors, one instantiation each.
template <int K, int... V>
MICRONET_AVX512_INLINE void plane_path(const SeparableConv& c, const Geometry& g,
                                       const float* in, float* out, const int64_t* dest,
                                       float* workspace, int64_t begin, int64_t end,
                                       std::integer_sequence<int, V...>) {
  ((g.vectors == V + 1 ? plane_channels<K, V + 1>(c, g, in, out, dest, workspace, begin, end)
                       : void()),
   ...);
}

// Stride 1 with the whole plane in one band of at most kPlaneVectors vectors.
bool plane_fits(const Geometry& g) {
  return g.s == 1 && g.band_rows >= g.out_h && g.vectors <= kPlaneVectors;
}

MICRONET_AVX512 void fast_path(const SeparableConv& c, const Geometry& g, const float* in,
                               float* out, const int64_t* dest, float* workspace,
                               int64_t begin, int64_t end) {
  if (g.s == 2) {
    if (g.k == 3) return fused_s2<3>(c, g, in, out, dest, workspace, begin, end);
    return fused_s2<5>(c, g, in, out, dest, workspace, begin, end);
  }
  constexpr auto sizes = std::make_integer_sequence<int, kPlaneVectors>();
  if (plane_fits(g)) {
    if (g.k == 3) {
      plane_path<3>(c, g, in, out, dest, workspace, begin, end, sizes);
    } else {
      plane_path<5>(c, g, in, out, dest, workspace, begin, end, sizes);
    }
  } else if (g.k == 3) {
    fast_channels<3>(c, g, in, out, dest, workspace, begin, end);
  } else {
    fast_channels<5>(c, g, in, out, dest, workspace, begin, end);
  }
}

bool use_fast_path(const SeparableConv& c) {
  static const bool avx512 = cpu_has_avx512();
  return avx512 && fast_geometry(c);
}

#else
bool use_fast_path(const SeparableConv&) { return false; }
#endif  // MICRONET_SEPARABLE_HAS_AVX512

}  // namespace

int64_t separable_out_size(int64_t size, const SeparableConv& conv) {
  return (size + 2 * conv.pad - conv.k) / conv.stride + 1;
}

int64_t separable_conv_workspace(const SeparableConv& conv, int64_t h, int64_t w) {
  const Geometry g = geometry(conv, h, w);
  return std::max(fast_geometry(conv) ? fast_workspace(g) : 0, generic_workspace(g));
}

void separable_conv(const SeparableConv& conv, const float* in, int64_t h, int64_t w,
                    float* out, const int64_t* dest, float* workspace, int64_t begin,
                    int64_t end) {
  const Geometry g = geometry(conv, h, w);
  if (g.out_h <= 0 || g.out_w <= 0 || begin >= end) return;
#if MICRONET_SEPARABLE_HAS_AVX512
  if (use_fast_path(conv)) {
    fast_path(conv, g, in, out, dest, workspace, begin, end);
    return;
  }
#endif
  generic_path(conv, g, in, out, dest, workspace, begin, end);
}

// ---------------------------------------------------------------------------------------------
// The operator.

namespace {

// (M, I / groups1, k, 1) or (M, I / groups1, k) -> (M, I / groups1, k); (O, 1, 1, k) or
// (O, k) -> (O, k): checked, contiguous float32.
at::Tensor first_weight(const at::Tensor& weight, int64_t per_group_in) {
  const bool shape_ok = (weight.dim() == 3 || (weight.dim() == 4 && weight.size(3) == 1)) &&
                        weight.size(1) == per_group_in && weight.size(0) > 0 &&
                        weight.size(2) > 0;
  TORCH_CHECK(shape_ok, "separable_conv: weight1 must be (M, I / groups1, k) or (M, I / groups1",
              ", k, 1) with I / groups1 = ", per_group_in, ", got ", weight.sizes());
  TORCH_CHECK(weight.scalar_type() == at::kFloat && weight.device().is_cpu(),
              "separable_conv: weight1 must be a float32 CPU tensor");
  return weight.contiguous();  // (M, I / groups1, k) floats either way
}

at::Tensor second_weight(const at::Tensor& weight) {
  const bool shape_ok =
      (weight.dim() == 2 && weight.size(1) > 0) ||
      (weight.dim() == 4 && weight.size(1) == 1 && weight.size(2) == 1 && weight.size(3) > 0);
  TORCH_CHECK(shape_ok, "separable_conv: weight2 must be (O, k) or (O, 1, 1, k), got ",
              weight.sizes());
  TORCH_CHECK(weight.scalar_type() == at::kFloat && weight.device().is_cpu(),
              "separable_conv: weight2 must be a float32 CPU tensor");
  return weight.contiguous();  // (O, k) floats either way
}

at::Tensor checked_bias(const at::Tensor& bias, int64_t n, const char* what) {
  TORCH_CHECK(bias.scalar_type() == at::kFloat && bias.device().is_cpu() && bias.numel() == n,
              "separable_conv: ", what, " must be float32 CPU with ", n, " elements, got ",
              bias.sizes());
  return bias.contiguous();
}

// dest = inverse(index) for y = result[:, index], index checked to be a permutation.
std::vector<int64_t> destinations(const at::Tensor& index, int64_t n) {
  TORCH_CHECK(index.scalar_type() == at::kLong && index.device().is_cpu() && index.dim() == 1 &&
                  index.numel() == n,
              "separable_conv: output_index must be an int64 CPU (O,) tensor with O = ", n,
              ", got ", index.sizes());
  const at::Tensor values = index.contiguous();
  const int64_t* data = values.data_ptr<int64_t>();
  std::vector<int64_t> dest(n, -1);
  for (int64_t o = 0; o < n; ++o) {
    const int64_t c = data[o];
    TORCH_CHECK(c >= 0 && c < n && dest[c] < 0,
                "separable_conv: output_index is not a permutation of 0 .. ", n - 1, " (",
                c, " at position ", o, ")");
    dest[c] = o;
  }
  return dest;
}

at::Tensor separable_conv_op(const at::Tensor& input, const at::Tensor& weight1_in,
                             const at::Tensor& bias1_in, const at::Tensor& weight2_in,
                             const at::Tensor& bias2_in, int64_t groups1, int64_t stride,
                             int64_t padding, bool relu6,
                             const std::optional<at::Tensor>& output_index) {
  TORCH_CHECK(input.dim() == 4 && input.scalar_type() == at::kFloat && input.device().is_cpu(),
              "separable_conv: x must be a float32 CPU (N, I, H, W) tensor, got ",
              input.sizes(), " ", input.scalar_type());
  const int64_t in_channels = input.size(1);
  TORCH_CHECK(groups1 > 0 && in_channels % groups1 == 0, "separable_conv: groups1 = ",
              groups1, " does not divide the ", in_channels, " input channels");
  TORCH_CHECK(stride > 0 && padding >= 0, "separable_conv: stride must be > 0 and padding >= 0,",
              " got stride ", stride, ", padding ", padding);
  const at::Tensor weight1 = first_weight(weight1_in, in_channels / groups1);
  const at::Tensor weight2 = second_weight(weight2_in);
  const int64_t mid = weight1.size(0), out_channels = weight2.size(0), k = weight1.size(2);
  TORCH_CHECK(weight2.size(-1) == k, "separable_conv: weight1 has k = ", k,
              ", weight2 has k = ", weight2.size(-1));
  TORCH_CHECK(mid % groups1 == 0 && out_channels % mid == 0, "separable_conv: widths ",
              in_channels, " -> ", mid, " -> ", out_channels, " do not fit groups1 = ", groups1,
              " and a whole number of outputs per mid channel");
  const at::Tensor bias1 = checked_bias(bias1_in, mid, "bias1");
  const at::Tensor bias2 = checked_bias(bias2_in, out_channels, "bias2");
  std::vector<int64_t> dest;
  if (output_index.has_value()) dest = destinations(*output_index, out_channels);

  SeparableConv conv{in_channels, mid, out_channels, groups1, k, stride, padding,
                     weight1.data_ptr<float>(), bias1.data_ptr<float>(),
                     weight2.data_ptr<float>(), bias2.data_ptr<float>(), relu6};
  const at::Tensor x = input.contiguous();
  const int64_t batch = x.size(0), h = x.size(2), w = x.size(3);
  const int64_t out_h = separable_out_size(h, conv), out_w = separable_out_size(w, conv);
  TORCH_CHECK(out_h > 0 && out_w > 0, "separable_conv: input ", h, " x ", w,
              " is too small for k = ", k, ", padding ", padding);
  at::Tensor out = at::empty({batch, out_channels, out_h, out_w}, x.options());
  const float* x_data = x.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  const int64_t* dest_data = dest.empty() ? nullptr : dest.data();
  const int64_t workspace_size = separable_conv_workspace(conv, h, w);
  const int64_t per_mid = (out_channels / mid) * out_h * out_w;  // outputs per mid channel
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(per_mid, 1));
  // Units: (sample, mid channel); each task takes a run of them, sample by sample.
  at::parallel_for(0, batch * mid, grain, [&](int64_t begin, int64_t end) {
    std::unique_ptr<float[]> workspace(new float[workspace_size]);
    while (begin < end) {
      const int64_t n = begin / mid, first = begin % mid;
      const int64_t last = std::min(mid, first + (end - begin));
      separable_conv(conv, x_data + n * in_channels * h * w, h, w,
                     out_data + n * out_channels * out_h * out_w, dest_data, workspace.get(),
                     first, last);
      begin += last - first;
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(micronet, m) {
  m.def(
      "separable_conv(Tensor x, Tensor weight1, Tensor bias1, Tensor weight2, Tensor bias2, "
      "int groups1, int stride, int padding, bool relu6, Tensor? output_index) -> Tensor");
}

TORCH_LIBRARY_IMPL(micronet, CPU, m) { m.impl("separable_conv", &separable_conv_op); }

}  // namespace micronet
