// micronet::shift_max and micronet::shift_max_backward: the training path of Dynamic Shift-Max.
//
// Forward: y[n, c] = max_k sum_j a[n, k, j, c] * x[n, shift_j(c)]  (times attention[n, 0] when
// given), with the core's group shift: channel c = (g, m) of the (G, C / G) view reads
// ((g + j) mod G, (m + j) mod (C / G)). Backward recomputes the K fusions from x and a (nothing
// else is saved) and sends the gradient through the max exactly as torch.maximum's backward
// does for the reference's chain max(max(f0, f1), f2) ...: to the larger side, halved on ties.
//
// Shapes: x (N, C, H, W); coefficients (N, K, J, C), the core's (k, j, c) order; attention
// (N, 1, H, W) or None. float32, float64, bfloat16 and float16 (accumulated in float).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <tuple>
#include <vector>

namespace micronet {
namespace {

constexpr int64_t kMaxFusions = 8;
constexpr int64_t kMaxShifts = 8;

struct Shape {
  int64_t n, c, hw, k, j, groups;
};

Shape check_inputs(const at::Tensor& x, const at::Tensor& coefficients, int64_t groups,
                   const std::optional<at::Tensor>& attention) {
  TORCH_CHECK(x.dim() == 4, "shift_max: x must be (N, C, H, W), got ", x.sizes());
  TORCH_CHECK(coefficients.dim() == 4 && coefficients.size(0) == x.size(0) &&
                  coefficients.size(3) == x.size(1),
              "shift_max: coefficients must be (N, K, J, C) for x of shape ", x.sizes(),
              ", got ", coefficients.sizes());
  TORCH_CHECK(coefficients.scalar_type() == x.scalar_type(),
              "shift_max: coefficients must have x's dtype ", x.scalar_type(), ", got ",
              coefficients.scalar_type());
  TORCH_CHECK(x.device().is_cpu() && coefficients.device().is_cpu(),
              "shift_max: CPU tensors expected");
  Shape s{x.size(0), x.size(1), x.size(2) * x.size(3), coefficients.size(1),
          coefficients.size(2), groups};
  TORCH_CHECK(s.k >= 1 && s.k <= kMaxFusions && s.j >= 1 && s.j <= kMaxShifts,
              "shift_max: supports 1 <= K, J <= 8, got K = ", s.k, ", J = ", s.j);
  TORCH_CHECK(groups >= 1 && s.c % groups == 0, "shift_max: groups = ", groups,
              " must divide C = ", s.c);
  if (attention.has_value()) {
    const auto& att = *attention;
    TORCH_CHECK(att.dim() == 4 && att.size(0) == s.n && att.size(1) == 1 &&
                    att.size(2) == x.size(2) && att.size(3) == x.size(3),
                "shift_max: attention must be (N, 1, H, W), got ", att.sizes());
    TORCH_CHECK(att.scalar_type() == x.scalar_type() && att.device().is_cpu(),
                "shift_max: attention must have x's dtype and device");
  }
  return s;
}

// source[j * C + c]: the channel that shift j reads for output channel c.
std::vector<int64_t> group_shift_sources(const Shape& s) {
  const int64_t per_group = s.c / s.groups;
  std::vector<int64_t> source(s.j * s.c);
  for (int64_t j = 0; j < s.j; ++j) {
    for (int64_t c = 0; c < s.c; ++c) {
      const int64_t g = c / per_group, m = c % per_group;
      source[j * s.c + c] = ((g + j) % s.groups) * per_group + (m + j) % per_group;
    }
  }
  return source;
}

// KC, JC: compile-time K and J (0: use the runtime values) so the common cases unroll.
template <typename scalar_t, int KC, int JC>
void forward_kernel(const scalar_t* x, const scalar_t* a, const scalar_t* att, scalar_t* out,
                    const Shape& s, const int64_t* source) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t K = KC ? KC : s.k, J = JC ? JC : s.j, C = s.c, HW = s.hw;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(HW, 1));
  at::parallel_for(0, s.n * C, grain, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t n = idx / C, c = idx % C;
      const scalar_t* rows[kMaxShifts];
      acc_t coef[kMaxFusions * kMaxShifts];
      for (int64_t j = 0; j < J; ++j) rows[j] = x + (n * C + source[j * C + c]) * HW;
      for (int64_t kj = 0; kj < K * J; ++kj) coef[kj] = a[(n * K * J + kj) * C + c];
      const scalar_t* pi = att ? att + n * HW : nullptr;
      scalar_t* y = out + idx * HW;
      for (int64_t p = 0; p < HW; ++p) {
        acc_t best = 0;
        for (int64_t k = 0; k < K; ++k) {
          acc_t fused = coef[k * J] * static_cast<acc_t>(rows[0][p]);
          for (int64_t j = 1; j < J; ++j) fused += coef[k * J + j] * static_cast<acc_t>(rows[j][p]);
          best = k == 0 ? fused : std::max(best, fused);
        }
        if (pi) best *= static_cast<acc_t>(pi[p]);
        y[p] = static_cast<scalar_t>(best);
      }
    }
  });
}

template <typename scalar_t, int KC, int JC>
void backward_kernel(const scalar_t* grad, const scalar_t* x, const scalar_t* a,
                     const scalar_t* att, at::opmath_type<scalar_t>* grad_x,
                     scalar_t* grad_a, scalar_t* grad_att, const Shape& s,
                     const int64_t* source) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t K = KC ? KC : s.k, J = JC ? JC : s.j, C = s.c, HW = s.hw;
  constexpr int64_t kChunk = 256;  // float partial sums, then double totals
  // One task per sample (each writes its own grad rows); samples of < 64k values go together.
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(C * HW, 1));
  at::parallel_for(0, s.n, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> att_grad(att ? HW : 0);
    for (int64_t n = begin; n < end; ++n) {
      const scalar_t* pi = att ? att + n * HW : nullptr;
      std::fill(att_grad.begin(), att_grad.end(), acc_t(0));
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* rows[kMaxShifts];
        acc_t* grad_rows[kMaxShifts];
        acc_t coef[kMaxFusions * kMaxShifts];
        double total[kMaxFusions * kMaxShifts] = {};
        for (int64_t j = 0; j < J; ++j) {
          rows[j] = x + (n * C + source[j * C + c]) * HW;
          grad_rows[j] = grad_x + (n * C + source[j * C + c]) * HW;
        }
        for (int64_t kj = 0; kj < K * J; ++kj) coef[kj] = a[(n * K * J + kj) * C + c];
        const scalar_t* g = grad + (n * C + c) * HW;
        for (int64_t start = 0; start < HW; start += kChunk) {
          const int64_t stop = std::min(HW, start + kChunk);
          acc_t partial[kMaxFusions * kMaxShifts] = {};
          for (int64_t p = start; p < stop; ++p) {
            acc_t fused[kMaxFusions], prefix[kMaxFusions], weight[kMaxFusions];
            for (int64_t k = 0; k < K; ++k) {
              acc_t f = coef[k * J] * static_cast<acc_t>(rows[0][p]);
              for (int64_t j = 1; j < J; ++j) f += coef[k * J + j] * static_cast<acc_t>(rows[j][p]);
              fused[k] = f;
              prefix[k] = k == 0 ? f : std::max(prefix[k - 1], f);
            }
            acc_t upstream = static_cast<acc_t>(g[p]);
            if (pi) {
              att_grad[p] += upstream * prefix[K - 1];
              upstream *= static_cast<acc_t>(pi[p]);
            }
            // torch.maximum's backward along the chain, last max first.
            for (int64_t k = K - 1; k >= 1; --k) {
              const acc_t left = prefix[k - 1], right = fused[k];
              if (right > left) {
                weight[k] = upstream;
                upstream = 0;
              } else if (right == left) {
                weight[k] = upstream / 2;
                upstream = upstream / 2;
              } else {
                weight[k] = 0;
              }
            }
            weight[0] = upstream;
            for (int64_t j = 0; j < J; ++j) {
              acc_t to_x = 0;
              const acc_t xv = static_cast<acc_t>(rows[j][p]);
              for (int64_t k = 0; k < K; ++k) {
                to_x += weight[k] * coef[k * J + j];
                partial[k * J + j] += weight[k] * xv;
              }
              grad_rows[j][p] += to_x;
            }
          }
          for (int64_t kj = 0; kj < K * J; ++kj) total[kj] += static_cast<double>(partial[kj]);
        }
        for (int64_t kj = 0; kj < K * J; ++kj) {
          grad_a[(n * K * J + kj) * C + c] = static_cast<scalar_t>(total[kj]);
        }
      }
      if (att) {
        for (int64_t p = 0; p < HW; ++p) grad_att[n * HW + p] = static_cast<scalar_t>(att_grad[p]);
      }
    }
  });
}

// Runs body.template operator()<KC, JC>() with compile-time K, J for the released shapes.
template <typename F>
void with_static_shape(const Shape& s, F&& body) {
  if (s.k == 2 && s.j == 2) {
    body.template operator()<2, 2>();
  } else if (s.k == 1 && s.j == 2) {
    body.template operator()<1, 2>();
  } else {
    body.template operator()<0, 0>();
  }
}

}  // namespace

at::Tensor shift_max_forward(const at::Tensor& x_in, const at::Tensor& coefficients_in,
                             int64_t groups, const std::optional<at::Tensor>& attention) {
  const Shape s = check_inputs(x_in, coefficients_in, groups, attention);
  const at::Tensor x = x_in.contiguous(), a = coefficients_in.contiguous();
  const at::Tensor att = attention.has_value() ? attention->contiguous() : at::Tensor();
  at::Tensor out = at::empty(x.sizes(), x.options());
  const std::vector<int64_t> source = group_shift_sources(s);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "shift_max", [&] {
    with_static_shape(s, [&]<int KC, int JC>() {
      forward_kernel<scalar_t, KC, JC>(x.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(),
                                       att.defined() ? att.data_ptr<scalar_t>() : nullptr,
                                       out.data_ptr<scalar_t>(), s, source.data());
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> shift_max_backward(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& coefficients_in,
    int64_t groups, const std::optional<at::Tensor>& attention) {
  const Shape s = check_inputs(x_in, coefficients_in, groups, attention);
  TORCH_CHECK(grad_in.sizes() == x_in.sizes(), "shift_max_backward: grad must be shaped like x");
  const at::Tensor x = x_in.contiguous(), a = coefficients_in.contiguous();
  const at::Tensor grad = grad_in.to(x.scalar_type()).contiguous();
  const at::Tensor att = attention.has_value() ? attention->contiguous() : at::Tensor();
  const at::ScalarType acc_type = at::toOpMathType(x.scalar_type());
  at::Tensor grad_x = at::zeros(x.sizes(), x.options().dtype(acc_type));
  at::Tensor grad_a = at::empty(a.sizes(), a.options());
  at::Tensor grad_att = att.defined() ? at::empty(att.sizes(), att.options())
                                      : at::empty({0}, x.options());
  const std::vector<int64_t> source = group_shift_sources(s);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "shift_max_backward",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_static_shape(s, [&]<int KC, int JC>() {
      backward_kernel<scalar_t, KC, JC>(
          grad.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(),
          att.defined() ? att.data_ptr<scalar_t>() : nullptr, grad_x.data_ptr<acc_t>(),
          grad_a.data_ptr<scalar_t>(), att.defined() ? grad_att.data_ptr<scalar_t>() : nullptr,
          s, source.data());
    });
  });
  return {grad_x.to(x.scalar_type()), grad_a, grad_att};
}

TORCH_LIBRARY_FRAGMENT(micronet, m) {
  m.def("shift_max(Tensor x, Tensor coefficients, int groups, Tensor? attention) -> Tensor");
  m.def(
      "shift_max_backward(Tensor grad, Tensor x, Tensor coefficients, int groups, "
      "Tensor? attention) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(micronet, CPU, m) {
  m.impl("shift_max", &shift_max_forward);
  m.impl("shift_max_backward", &shift_max_backward);
}

}  // namespace micronet
