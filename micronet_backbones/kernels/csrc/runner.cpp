// micronet::Runner: a whole MicroNet inference form run in one native call.
//
// In eager PyTorch each of the inference form's ~50 layers costs a Python module call and a
// dispatcher round trip (several microseconds each, about as much as the layer's arithmetic
// at batch 1) plus a fresh output tensor. The runner holds the layers as a list of steps on
// a copy of the inference form's tensors (deploy.native_runner builds it) and runs them back
// to back on three activation buffers it keeps between calls, with the one-sample kernels of
// layers.h. Per step, the channels of a sample are split over the intra-op threads.
//
// Steps: a separable k x 1 / 1 x k pair (stem and depthwise pairs), a grouped 1 x 1 conv, a
// Dynamic Shift-Max; each with its activation, the channel permutation that follows it
// (`dest`) and, for a residual block's last layer, the block's input added. `tap` copies the
// current activation to an output (features); `set_head` adds the classifier head; `finish`
// ends the list.
//
// Memory. Called between other work (a detector, another model), a network of a few MB finds
// few of its weights in the caches, and most of them are the classifier head's (7.7 of M3's
// 10.5 MB), read once per call. `finish` copies all weights into one block in the order the
// steps read them (the head's matrices in column panels, read front to back), 2 MiB-aligned on
// transparent huge pages where Linux grants them (a handful of TLB entries instead of thousands
// of 4 KiB pages: the page walks of a cold call go), and the activation buffers kept between
// calls live on such a block too. (Prefetching the head's weights while the steps compute was
// tried: it evicts the activations from L2 and the steps lose what the head gains.)
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "layers.h"

namespace micronet {
namespace {

enum class Kind { kSeparable, kPointwise, kShiftMax, kBlockInput, kTap };

struct Step {
  Kind kind;
  SeparableConv separable{};
  GroupedPointwise pointwise{};
  ShiftMax shift_max{};
  const int64_t* dest = nullptr;
  bool residual = false;
};

at::Tensor checked_float(const at::Tensor& t, const char* what, int64_t numel) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(),
              "Runner: ", what, " must be a contiguous float32 CPU tensor");
  TORCH_CHECK(t.numel() == numel, "Runner: ", what, " must have ", numel, " elements, got ",
              t.numel());
  return t;
}

at::Tensor checked_index(const at::Tensor& t, const char* what, int64_t numel, int64_t bound) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kLong && t.is_contiguous() &&
                  t.numel() == numel,
              "Runner: ", what, " must be a contiguous int64 CPU tensor of ", numel,
              " elements");
  const int64_t* data = t.data_ptr<int64_t>();
  for (int64_t i = 0; i < numel; ++i) {
    TORCH_CHECK(data[i] >= 0 && data[i] < bound, "Runner: ", what, " holds ", data[i],
                " outside [0, ", bound, ")");
  }
  return t;
}

// min(max(v, 0), 6), written as selects: the loops over it vectorise (std::min and std::max
// take references and compile to branches there, mispredicted half the time on activations).
inline float relu6(float v) {
  v = v > 0.0f ? v : 0.0f;
  return v < 6.0f ? v : 6.0f;
}

// Hard swish: x * relu6(x + 3) / 6.
inline float hardswish(float v) { return v * relu6(v + 3.0f) / 6.0f; }

// The classifier head's matrices are stored in column panels: a (rows, n) matrix W becomes
// ceil(n / kPanel) panels, panel p holding columns [p * kPanel, (p + 1) * kPanel) of every row,
// row after row (columns past n are zeros). A matrix-vector product then reads the weights
// once, front to back (one stream the hardware prefetcher follows; the head is most of the
// weights a cold call reads from DRAM), with a panel's kPanel sums in registers.
constexpr int64_t kPanel = 64;

// (rows, n) -> (ceil(n / kPanel), rows, kPanel), zero-padded.
at::Tensor column_panels(const at::Tensor& matrix, int64_t rows, int64_t n) {
  const int64_t padded = (n + kPanel - 1) / kPanel * kPanel;
  return at::constant_pad_nd(matrix.view({rows, n}), {0, padded - n})
      .view({rows, padded / kPanel, kPanel})
      .permute({1, 0, 2})
      .contiguous();
}

// out[0 .. n) = bias + sum_r x[r] * W[r, 0 .. n), W in column panels (column_panels).
__attribute__((target_clones("avx512f", "avx2,fma", "default"))) void panel_gemv(
    const float* x, const float* panels, const float* bias, int64_t rows, int64_t n,
    float* out) {
  for (int64_t first = 0; first < n; first += kPanel) {
    float sums[kPanel] = {};
    const float* w = panels + first * rows;
    for (int64_t r = 0; r < rows; ++r, w += kPanel) {
      const float a = x[r];
      for (int64_t j = 0; j < kPanel; ++j) sums[j] += a * w[j];
    }
    const int64_t width = std::min(kPanel, n - first);
    for (int64_t j = 0; j < width; ++j) out[first + j] = bias[first + j] + sums[j];
  }
}

// pooled[c] = hardswish(mean over the plane of relu6(x[c])) for a (channels, hw) map.
__attribute__((target_clones("avx512f", "avx2,fma", "default"))) void pool_relu6_hardswish(
    const float* x, int64_t channels, int64_t hw, float* pooled) {
  for (int64_t c = 0; c < channels; ++c) {
    const float* plane = x + c * hw;
    float total = 0.0f;
#pragma omp simd reduction(+ : total)
    for (int64_t p = 0; p < hw; ++p) total += relu6(plane[p]);
    pooled[c] = hardswish(total / static_cast<float>(hw));
  }
}

// values[i] = hardswish(values[i]) for i < n.
__attribute__((target_clones("avx512f", "avx2,fma", "default"))) void hardswish_in_place(
    float* values, int64_t n) {
  for (int64_t i = 0; i < n; ++i) values[i] = hardswish(values[i]);
}

struct FreeBlock {
  void operator()(char* p) const { std::free(p); }
};
using Block = std::unique_ptr<char, FreeBlock>;

// `bytes` (rounded up to 2 MiB) at a 2 MiB boundary, on transparent huge pages where Linux
// grants them (a hint: otherwise 4 KiB pages).
Block huge_page_block(int64_t& bytes) {
  constexpr int64_t kHugePage = int64_t{2} << 20;
  bytes = std::max<int64_t>((bytes + kHugePage - 1) / kHugePage * kHugePage, kHugePage);
  char* block = static_cast<char*>(std::aligned_alloc(kHugePage, bytes));
  TORCH_CHECK(block != nullptr, "Runner: cannot allocate ", bytes, " bytes");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(block, bytes, MADV_HUGEPAGE);
#endif
  return Block(block);
}

// The tensors the steps read, copied into one block in the order they were added.
class PackedWeights {
 public:
  // Registers `t` and returns its data pointer; pack moves it.
  template <class T>
  const T* add(const at::Tensor& t) {
    return add<T>(t, t);
  }

  // Registers `copied`, a tensor computed from `watched` (another layout of it): `copied` is
  // packed, `watched` checked by current().
  template <class T>
  const T* add(const at::Tensor& watched, const at::Tensor& copied) {
    sources_.push_back(copied);
    if (!watched.is_inference()) {
      counters_.push_back({watched.unsafeGetTensorImpl()->version_counter(), watched._version()});
    }
    return copied.data_ptr<T>();
  }

  // Copies every registered tensor into one huge_page_block (64-byte aligned each; tensors
  // starting at the same address once, at their largest size).
  void pack() {
    auto aligned = [](int64_t size) { return (size + 63) / 64 * 64; };
    std::unordered_map<const void*, int64_t> sizes;
    for (const auto& source : sources_) {
      int64_t& size = sizes[source.data_ptr()];
      size = std::max<int64_t>(size, source.nbytes());
    }
    int64_t bytes = 0;
    for (const auto& [data, size] : sizes) bytes += aligned(size);
    block_ = huge_page_block(bytes);
    int64_t offset = 0;
    for (const auto& source : sources_) {
      const void* data = source.data_ptr();
      if (moved_.count(data)) continue;
      std::memcpy(block_.get() + offset, data, sizes[data]);
      moved_.emplace(data, block_.get() + offset);
      offset += aligned(sizes[data]);
    }
  }

  // Points `p` (a pointer add returned, or nullptr) at the packed copy.
  template <class T>
  void relocate(const T*& p) const {
    if (p == nullptr) return;
    const auto it = moved_.find(p);
    TORCH_CHECK(it != moved_.end(), "Runner: a step reads memory that was not packed");
    p = static_cast<const T*>(it->second);
  }

  // After the last relocate: the registered tensors and the address map are no longer needed.
  void release_sources() {
    sources_.clear();
    moved_.clear();
  }

  // False once a registered tensor was changed in place (its version counter moved): the copy
  // is stale. (Inference tensors have no version counter and are not checked.) Each call
  // reads the counters from one array (a cold call pays one cache miss per counter, not the
  // two or three of going through each tensor).
  bool current() const {
    for (const auto& [counter, version] : counters_) {
      if (counter.current_version() != version) return false;
    }
    return true;
  }

 private:
  std::vector<at::Tensor> sources_;  // until release_sources
  std::unordered_map<const void*, const void*> moved_;
  std::vector<std::pair<c10::VariableVersion, uint32_t>> counters_;  // and versions when added
  Block block_;
};

}  // namespace

class Runner {
 public:
  Runner() = default;

  void add_separable(at::Tensor weight1, at::Tensor bias1, at::Tensor weight2, at::Tensor bias2,
                     int64_t in_channels, int64_t groups1, int64_t k, int64_t stride,
                     int64_t padding, bool relu6, std::optional<at::Tensor> dest) {
    TORCH_CHECK(in_channels == channels_, "Runner: separable step takes ", in_channels,
                " channels, the previous step gives ", channels_);
    TORCH_CHECK(groups1 > 0 && in_channels % groups1 == 0 && k > 0 && stride > 0 &&
                    padding >= 0,
                "Runner: bad separable geometry");
    const int64_t mid = bias1.numel(), out = bias2.numel();
    TORCH_CHECK(mid % groups1 == 0 && out % mid == 0, "Runner: separable widths ", in_channels,
                " -> ", mid, " -> ", out, " do not fit groups ", groups1);
    Step step{Kind::kSeparable};
    SeparableConv& conv = step.separable;
    conv.in_channels = in_channels;
    conv.mid_channels = mid;
    conv.out_channels = out;
    conv.groups1 = groups1;
    conv.k = k;
    conv.stride = stride;
    conv.pad = padding;
    conv.weight1 = keep(weight1, "weight1", mid * (in_channels / groups1) * k);
    conv.bias1 = keep(bias1, "bias1", mid);
    conv.weight2 = keep(weight2, "weight2", out * k);
    conv.bias2 = keep(bias2, "bias2", out);
    conv.relu6 = relu6;
    step.dest = keep_index(dest, out);
    push(step, out);
  }

  void add_pointwise(at::Tensor weight, at::Tensor bias, int64_t groups, bool relu6,
                     std::optional<at::Tensor> dest, bool residual) {
    const int64_t out = bias.numel();
    TORCH_CHECK(groups > 0 && channels_ % groups == 0 && out % groups == 0,
                "Runner: pointwise ", channels_, " -> ", out, " does not fit groups ", groups);
    Step step{Kind::kPointwise};
    GroupedPointwise& conv = step.pointwise;
    conv.in_channels = channels_;
    conv.out_channels = out;
    conv.groups = groups;
    conv.weight = keep(weight, "pointwise weight", out * (channels_ / groups));
    conv.bias = keep(bias, "pointwise bias", out);
    conv.relu6 = relu6;
    step.dest = keep_index(dest, out);
    step.residual = residual;
    check_residual(residual, out);
    push(step, out);
  }

  void add_shift_max(at::Tensor fc1_weight_t, at::Tensor fc1_bias, at::Tensor fc2_weight_t,
                     at::Tensor fc2_bias, at::Tensor low, at::Tensor high,
                     at::Tensor shift_index, int64_t num_fusions,
                     std::optional<at::Tensor> spatial_weight, double spatial_bias,
                     double spatial_gamma, std::optional<at::Tensor> dest, bool residual) {
    const int64_t c = channels_;
    TORCH_CHECK(shift_index.dim() == 2 && shift_index.size(1) == c,
                "Runner: shift_index must be (J - 1, C) for C = ", c);
    const int64_t j = shift_index.size(0) + 1, s = fc1_bias.numel();
    const int64_t m = j * num_fusions * c;
    Step step{Kind::kShiftMax};
    ShiftMax& op = step.shift_max;
    op.channels = c;
    op.squeeze = s;
    op.num_shifts = j;
    op.num_fusions = num_fusions;
    op.fc1_weight_t = keep(fc1_weight_t, "fc1_weight_t", c * s);
    op.fc1_bias = keep(fc1_bias, "fc1_bias", s);
    op.fc2_weight_t = keep(fc2_weight_t, "fc2_weight_t", s * m);
    op.fc2_bias = keep(fc2_bias, "fc2_bias", m);
    op.low = keep(low, "low", m);
    op.high = keep(high, "high", m);
    op.shift_index = keep_index(shift_index, (j - 1) * c);
    op.spatial_weight = nullptr;
    if (spatial_weight.has_value()) {
      op.spatial_weight = keep(*spatial_weight, "spatial_weight", c);
    }
    op.spatial_bias = static_cast<float>(spatial_bias);
    op.spatial_gamma = static_cast<float>(spatial_gamma);
    step.dest = keep_index(dest, c);
    step.residual = residual;
    check_residual(residual, c);
    push(step, c);
  }

  // The current activation is the input of a residual block (added by its last step).
  void begin_block() {
    check_open();
    Step step{Kind::kBlockInput};
    steps_.push_back(step);
    block_channels_ = channels_;
  }

  // The current activation is one of the outputs (features_only), in order.
  void tap() {
    check_open();
    steps_.push_back(Step{Kind::kTap});
    ++taps_;
  }

  // Classifier head of deploy.FusedClassifierHead: ReLU6, global mean, h-swish,
  // fc1 (C, hidden), h-swish, fc2 (hidden, classes), h-swish.
  void set_head(at::Tensor fc1_weight_t, at::Tensor fc1_bias, at::Tensor fc2_weight_t,
                at::Tensor fc2_bias) {
    const int64_t hidden = fc1_bias.numel(), classes = fc2_bias.numel();
    TORCH_CHECK(!finished_ && !head_.defined(), "Runner: one head, before finish()");
    Head head;
    head.hidden = hidden;
    head.classes = classes;
    // Biases first: the packed block ends with the weights, read last.
    head.fc1_bias = keep(fc1_bias, "head fc1_bias", hidden);
    head.fc2_bias = keep(fc2_bias, "head fc2_bias", classes);
    head.fc1_panels = keep_panels(fc1_weight_t, "head fc1_weight_t", channels_, hidden);
    head.fc2_panels = keep_panels(fc2_weight_t, "head fc2_weight_t", hidden, classes);
    head_ = head;  // only once every tensor passed its checks
  }

  // Ends the list of steps: packs the weights (see the top of this file). Needed before run.
  void finish() {
    TORCH_CHECK(!finished_, "Runner: finish() called twice");
    weights_.pack();
    for (Step& step : steps_) {
      weights_.relocate(step.separable.weight1);
      weights_.relocate(step.separable.bias1);
      weights_.relocate(step.separable.weight2);
      weights_.relocate(step.separable.bias2);
      weights_.relocate(step.pointwise.weight);
      weights_.relocate(step.pointwise.bias);
      ShiftMax& op = step.shift_max;
      for (const float** p : {&op.fc1_weight_t, &op.fc1_bias, &op.fc2_weight_t, &op.fc2_bias,
                              &op.low, &op.high, &op.spatial_weight}) {
        weights_.relocate(*p);
      }
      weights_.relocate(op.shift_index);
      weights_.relocate(step.dest);
    }
    for (const float** p :
         {&head_.fc1_panels, &head_.fc1_bias, &head_.fc2_panels, &head_.fc2_bias}) {
      weights_.relocate(*p);
    }
    weights_.release_sources();
    finished_ = true;
  }

  // The input: (N, channels, H, W) with H, W >= min_size.
  void set_input_channels(int64_t channels, int64_t min_size) {
    TORCH_CHECK(steps_.empty(), "Runner: set the input channels before adding steps");
    TORCH_CHECK(channels > 0 && min_size > 0, "Runner: bad input channels or size");
    input_channels_ = channels_ = channels;
    min_input_size_ = min_size;
  }

  // The outputs (logits first, then the taps), or nothing when `input` is not a float32 CPU
  // tensor (the caller takes another path). Raises on a bad shape. The inference form calls
  // this first thing: these checks cost next to nothing here and microseconds each in Python
  // when the caches are cold.
  std::optional<std::vector<at::Tensor>> run(const at::Tensor& input) const {
    if (!input.device().is_cpu() || input.scalar_type() != at::kFloat) return std::nullopt;
    TORCH_CHECK(input.dim() == 4 && input.size(1) == input_channels_ &&
                    input.size(2) >= min_input_size_ && input.size(3) >= min_input_size_,
                "Runner: input must be (N, ", input_channels_, ", H, W) with H, W >= ",
                min_input_size_, ", got ", input.sizes());
    TORCH_CHECK(finished_, "Runner: call finish() after the last step");
    TORCH_CHECK(weights_.current(), "Runner: a tensor it copied was changed in place after ",
                "finish(); build a new runner");
    TORCH_CHECK(head_.defined() || taps_ > 0, "Runner: no head and no tap: nothing to return");
    const at::Tensor x = input.contiguous();
    const int64_t batch = x.size(0);

    // Shapes of every step for this input size: buffer and workspace sizes.
    std::vector<int64_t> heights, widths;
    int64_t h = x.size(2), w = x.size(3), largest = 0, workspace = 0;
    int64_t channels = input_channels_;
    std::vector<std::vector<int64_t>> tap_shapes;
    for (const Step& step : steps_) {
      if (step.kind == Kind::kSeparable) {
        workspace = std::max(workspace, separable_conv_workspace(step.separable, h, w));
        h = separable_out_size(h, step.separable);
        w = separable_out_size(w, step.separable);
        TORCH_CHECK(h > 0 && w > 0, "Runner: input ", x.sizes(), " too small for the network");
        channels = step.separable.out_channels;
      } else if (step.kind == Kind::kPointwise) {
        channels = step.pointwise.out_channels;
      } else if (step.kind == Kind::kShiftMax) {
        workspace = std::max(workspace, shift_max_coefficients_size(step.shift_max, h * w));
      } else if (step.kind == Kind::kTap) {
        tap_shapes.push_back({batch, channels, h, w});
      }
      heights.push_back(h);
      widths.push_back(w);
      largest = std::max(largest, channels * h * w);
    }

    if (head_.defined()) {  // the head's pooled and hidden vectors
      workspace = std::max(workspace, channels + head_.hidden);
    }
    std::vector<at::Tensor> outputs;
    for (const auto& shape : tap_shapes) outputs.push_back(at::empty(shape, x.options()));
    at::Tensor logits;
    if (head_.defined()) {
      logits = at::empty({batch, head_.classes}, x.options());
    }
    // Three activation buffers (current, next, a residual block's input), the kernels'
    // workspace per thread, and the head's vectors.
    const int64_t threads = at::get_num_threads();
    const int64_t floats = 3 * largest + threads * (workspace + 16) + 16;
    // The buffers of the previous call are reused (fresh pages of a large allocation cost
    // page faults every call; huge pages, TLB misses); a concurrent call gets its own.
    std::unique_lock<std::mutex> lock(memory_mutex_, std::try_to_lock);
    Block own_memory;
    float* memory = nullptr;
    if (lock.owns_lock()) {
      if (memory_bytes_ < floats * static_cast<int64_t>(sizeof(float))) {
        memory_bytes_ = floats * sizeof(float);
        memory_ = huge_page_block(memory_bytes_);
      }
      memory = reinterpret_cast<float*>(memory_.get());
    } else {
      int64_t bytes = floats * sizeof(float);
      own_memory = huge_page_block(bytes);
      memory = reinterpret_cast<float*>(own_memory.get());
    }
    float* buffers[3] = {memory, memory + largest, memory + 2 * largest};
    float* workspaces = buffers[2] + largest;

    for (int64_t n = 0; n < batch; ++n) {
      const float* current = x.data_ptr<float>() + n * x.stride(0);
      int64_t c = input_channels_, ch = x.size(2), cw = x.size(3);
      const float* block_input = nullptr;
      int tap_index = 0;
      for (size_t index = 0; index < steps_.size(); ++index) {
        const Step& step = steps_[index];
        if (step.kind == Kind::kBlockInput) {
          block_input = current;
          continue;
        }
        if (step.kind == Kind::kTap) {
          float* dst = outputs[tap_index].data_ptr<float>() + n * c * ch * cw;
          std::memcpy(dst, current, sizeof(float) * c * ch * cw);
          ++tap_index;
          continue;
        }
        // The output buffer: neither the current activation nor a live block input.
        float* out = nullptr;
        for (float* candidate : buffers) {
          if (candidate != current && candidate != block_input) {
            out = candidate;
            break;
          }
        }
        const float* residual = step.residual ? block_input : nullptr;
        TORCH_CHECK(!step.residual || residual, "Runner: residual step without a block input");
        run_step(step, current, ch, cw, out, residual, workspaces, workspace + 16);
        if (step.kind == Kind::kSeparable) c = step.separable.out_channels;
        if (step.kind == Kind::kPointwise) c = step.pointwise.out_channels;
        ch = heights[index];
        cw = widths[index];
        current = out;
        if (step.residual) block_input = nullptr;
      }
      if (logits.defined()) {
        head(current, c, ch * cw, logits.data_ptr<float>() + n * logits.size(1),
             workspaces);
      }
    }
    if (logits.defined()) outputs.insert(outputs.begin(), logits);
    return outputs;
  }

  int64_t num_steps() const { return static_cast<int64_t>(steps_.size()); }

  // False once a tensor the runner copied was changed in place (run then raises): build a new
  // runner.
  bool current() const { return weights_.current(); }

 private:
  // A float32 tensor of `numel` values a step reads (checked, then packed by finish).
  const float* keep(const at::Tensor& t, const char* what, int64_t numel) {
    return weights_.add<float>(checked_float(t, what, numel));
  }

  // A (rows, n) float32 matrix, packed in column panels (see column_panels).
  const float* keep_panels(const at::Tensor& t, const char* what, int64_t rows, int64_t n) {
    checked_float(t, what, rows * n);
    return weights_.add<float>(t, column_panels(t, rows, n));
  }

  const int64_t* keep_index(const std::optional<at::Tensor>& t, int64_t numel) {
    if (!t.has_value()) return nullptr;
    return keep_index(*t, numel);
  }

  const int64_t* keep_index(const at::Tensor& t, int64_t numel) {
    const int64_t bound = t.dim() == 2 ? channels_ : numel;
    return weights_.add<int64_t>(checked_index(t, "index", numel, bound));
  }

  void check_residual(bool residual, int64_t out) const {
    TORCH_CHECK(!residual || (block_channels_ == out && !steps_.empty()),
                "Runner: a residual step must output its block's input width ", block_channels_);
  }

  void check_open() const {
    TORCH_CHECK(!head_.defined() && !finished_, "Runner: no steps after the head or finish()");
  }

  void push(const Step& step, int64_t out_channels) {
    check_open();
    steps_.push_back(step);
    channels_ = out_channels;
  }

  // One step on one sample, its channels split over the intra-op threads.
  static void run_step(const Step& step, const float* in, int64_t h, int64_t w, float* out,
                       const float* residual, float* workspaces, int64_t workspace_stride) {
    const int64_t hw = h * w;
    auto workspace_of_thread = [&]() {
      return workspaces + at::get_thread_num() * workspace_stride;
    };
    if (step.kind == Kind::kSeparable) {
      const SeparableConv& conv = step.separable;
      const int64_t out_hw = separable_out_size(h, conv) * separable_out_size(w, conv);
      const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(out_hw, 1));
      at::parallel_for(0, conv.mid_channels, grain, [&](int64_t begin, int64_t end) {
        separable_conv(conv, in, h, w, out, step.dest, workspace_of_thread(), begin, end);
      });
    } else if (step.kind == Kind::kPointwise) {
      const GroupedPointwise& conv = step.pointwise;
      const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(hw, 1));
      at::parallel_for(0, conv.out_channels, grain, [&](int64_t begin, int64_t end) {
        grouped_pointwise(conv, in, hw, out, step.dest, residual, begin, end);
      });
    } else {
      const ShiftMax& op = step.shift_max;
      float* coefficients = workspaces;  // filled once, read by every thread
      shift_max_coefficients(op, in, hw, coefficients);
      const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(hw, 1));
      at::parallel_for(0, op.channels, grain, [&](int64_t begin, int64_t end) {
        shift_max_apply(op, in, hw, coefficients, out, step.dest, residual, begin, end);
      });
    }
  }

  void head(const float* x, int64_t channels, int64_t hw, float* logits,
            float* scratch) const {
    const int64_t hidden = head_.hidden, classes = head_.classes;
    float* pooled = scratch;
    float* hidden_values = scratch + channels;
    pool_relu6_hardswish(x, channels, hw, pooled);
    panel_gemv(pooled, head_.fc1_panels, head_.fc1_bias, channels, hidden, hidden_values);
    hardswish_in_place(hidden_values, hidden);
    panel_gemv(hidden_values, head_.fc2_panels, head_.fc2_bias, hidden, classes, logits);
    hardswish_in_place(logits, classes);
  }

  std::vector<Step> steps_;
  PackedWeights weights_;  // what the steps and the head read (packed by finish)
  bool finished_ = false;
  int64_t input_channels_ = 3, channels_ = 3, block_channels_ = -1, taps_ = 0;
  int64_t min_input_size_ = 1;
  struct Head {  // deploy.FusedClassifierHead's tensors (packed by finish)
    int64_t hidden = 0, classes = 0;
    const float* fc1_panels = nullptr;    // (channels, hidden) in column panels
    const float* fc1_bias = nullptr;      // (hidden)
    const float* fc2_panels = nullptr;    // (hidden, classes) in column panels
    const float* fc2_bias = nullptr;      // (classes)
    bool defined() const { return classes > 0; }
  } head_;
  mutable std::mutex memory_mutex_;
  mutable Block memory_;  // activation buffers and workspaces, kept between calls
  mutable int64_t memory_bytes_ = 0;
};

// Python class micronet_backbones.kernels._C.Runner (a pybind11 class: a call costs a few
// microseconds, a tenth of a TorchScript custom class method's when the caches are cold). `run`
// releases the GIL.
void bind_runner(pybind11::module_& module) {
  namespace py = pybind11;
  py::class_<Runner>(module, "Runner", "A MicroNet inference form as one native call")
      .def(py::init<>())
      .def("set_input_channels", &Runner::set_input_channels, py::arg("channels"),
           py::arg("min_size") = 1)
      .def("add_separable", &Runner::add_separable)
      .def("add_pointwise", &Runner::add_pointwise)
      .def("add_shift_max", &Runner::add_shift_max)
      .def("begin_block", &Runner::begin_block)
      .def("tap", &Runner::tap)
      .def("set_head", &Runner::set_head)
      .def("finish", &Runner::finish)
      .def("num_steps", &Runner::num_steps)
      .def("current", &Runner::current)
      .def("run", &Runner::run, py::call_guard<py::gil_scoped_release>());
}

}  // namespace micronet
