// PReLU's autograd function in C++, registered as the torch op RECTIFIERS_NS::prelu; see
// prelu_kernel.py. A Python autograd.Function around the kernel costs about as much per call as the
// kernel's own work on a small layer; this costs ReLU's.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <optional>
#include <vector>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// prelu_kernel.cpp's entry points, one build per dtype code (0 float, 1 double, 2 bfloat16), handed
// over by rectifiers_prelu_bind: the kernel is compiled with flags of its own, without torch headers.
using Forward = int (*)(int, const void*, void*, int, const void*, int64_t, int64_t, int64_t, int);
using Backward = int (*)(int, const void*, const void*, void*, int, const void*, void*, int64_t,
                         int64_t, int64_t, int, int);
Forward forward_of[3];
Backward backward_of[3];

int dtype_code(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return 0;
    case at::kDouble: return 1;
    case at::kBFloat16: return 2;
    default: TORCH_CHECK(false, "prelu kernel: unsupported dtype ", t.scalar_type());
  }
}

// x's memory as `outer` blocks of C channel runs of `inner` elements; for a dense tensor the channel
// axis' stride is `inner` whatever the layout: NCHW (N, C, H·W), NHWC (N·H·W, C, 1).
std::vector<int64_t> blocks(const at::Tensor& x, int64_t channel, int64_t slopes) {
  if (channel < 0 || slopes == 1) return {1, 1, x.numel()};
  int64_t c = x.size(channel), inner = x.stride(channel);
  return {x.numel() / (c * inner), c, inner};
}

at::Tensor slope_view(const at::Tensor& x, const at::Tensor& w, int64_t channel) {
  std::vector<int64_t> shape(x.dim(), 1);
  if (channel >= 0) shape[channel] = w.numel();
  return w.to(x.scalar_type()).view(shape);
}

// y = PReLU(x); `invertible`: every slope positive, so the backward may run from y (see the kernel).
at::Tensor run_forward(const at::Tensor& x, const at::Tensor& w, int64_t channel, bool* invertible) {
  at::Tensor y = at::empty_like(x);  // a dense x: the same strides
  *invertible = false;
  if (!x.numel()) return y;
  auto b = blocks(x, channel, w.numel());
  int status = forward_of[dtype_code(x)](dtype_code(x), x.const_data_ptr(), y.mutable_data_ptr(),
                                         dtype_code(w), w.const_data_ptr(), b[0], b[1], b[2],
                                         at::get_num_threads());
  *invertible = status == 0;
  return y;
}

// Eq. 2-3 in differentiable ops, for a backward that builds a graph or a batched gradient:
// ∂E/∂x = g·(1 or a), ∂E/∂a = Σ g·min(x, 0) per channel (from y: Σ g·min(y, 0) / a, whose two graph
// paths to a cancel, keeping double backward exact).
variable_list composite_backward(const at::Tensor& src, const at::Tensor& w, const at::Tensor& grad,
                                 int64_t channel, bool from_output) {
  at::Tensor positive = src > 0;
  at::Tensor slope = slope_view(src, w, channel);
  at::Tensor gx = at::where(positive, grad, slope * grad);
  at::Tensor summand = at::where(positive, at::Scalar(0), grad * src);
  at::Tensor gw;
  if (channel < 0 || w.numel() == 1) {
    gw = summand.sum().reshape(w.sizes());
  } else if (src.dim() == 1) {
    gw = summand;  // one position per channel: nothing to sum
  } else {
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < src.dim(); ++d)
      if (d != channel) dims.push_back(d);
    gw = summand.sum(dims);
  }
  if (from_output) gw = gw / slope.reshape(-1);
  return {gx, gw.to(w.scalar_type())};
}

// Whether the kernel can read g: a dense CPU tensor, not one of functorch's or vmap's wrappers.
bool plain(const at::Tensor& g) {
  static const c10::DispatchKeySet wrapped({c10::DispatchKey::Batched, c10::DispatchKey::FuncTorchBatched,
                                            c10::DispatchKey::FuncTorchGradWrapper});
  return g.is_cpu() && g.layout() == at::kStrided && !g.key_set().has_any(wrapped) &&
         g.unsafeGetTensorImpl()->has_storage();
}

struct FusedPReLU : public torch::autograd::Function<FusedPReLU> {
  // Keeps x for the backward, or with save_output and every slope positive y, which the next layer
  // keeps anyway (Eq. 2's Σ g·x is then Σ g·y / a).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            std::optional<int64_t> channel, bool save_output) {
    int64_t ch = channel.value_or(-1);
    bool invertible;
    at::Tensor y = run_forward(x, w, ch, &invertible);
    bool from_output = save_output && invertible;
    ctx->saved_data["channel"] = ch;
    ctx->saved_data["from_output"] = from_output;
    ctx->saved_data["channels_last"] = !x.is_contiguous();  // the only other layout the kernel walks
    ctx->save_for_backward({from_output ? y : x, w});
    return y;
  }

  // `grads` by reference: CppNode hands over its own list, so a gradient no one else holds (no hook,
  // no retain_grad, not the caller's grad_outputs) can be taken over and overwritten with ∂E/∂x.
  static variable_list backward(AutogradContext* ctx, variable_list& grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &src = saved[0], &w = saved[1];
    int64_t ch = ctx->saved_data["channel"].toInt();
    bool from_output = ctx->saved_data["from_output"].toBool();
    bool need_x = ctx->needs_input_grad(0), need_w = ctx->needs_input_grad(1);
    at::Tensor grad = std::move(grads[0]);
    variable_list out{at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    if (at::GradMode::is_enabled() || !plain(grad)) {  // create_graph=True, or a batched gradient
      auto g = composite_backward(src, w, grad, ch, from_output);
      if (need_x) out[0] = g[0];
      if (need_w) out[1] = g[1];
      return out;
    }
    auto layout = src.dim() == 5 ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::ChannelsLast;
    grad = grad.contiguous(ctx->saved_data["channels_last"].toBool() ? layout : at::MemoryFormat::Contiguous);
    // Writing ∂E/∂x over g saves a fresh buffer's page faults and write-allocate traffic: 1-6% of a
    // small net's training step (benchmarks/RESULTS.md).
    bool take_over = grad.use_count() == 1 && !grad.is_view() && grad.storage().use_count() == 1 &&
                     grad.strides() == src.strides();
    if (need_x) out[0] = take_over ? grad : at::empty_like(src);
    if (need_w) out[1] = at::empty_like(w);
    if (src.numel()) {
      auto b = blocks(src, ch, w.numel());
      backward_of[dtype_code(src)](dtype_code(src), src.const_data_ptr(), grad.const_data_ptr(),
                                   need_x ? out[0].mutable_data_ptr() : nullptr, dtype_code(w),
                                   w.const_data_ptr(), need_w ? out[1].mutable_data_ptr() : nullptr,
                                   b[0], b[1], b[2], at::get_num_threads(), from_output);
    } else if (need_w) {
      out[1].zero_();
    }
    return out;
  }
};

at::Tensor prelu_autograd(const at::Tensor& x, const at::Tensor& w, std::optional<int64_t> channel,
                          bool save_output) {
  return FusedPReLU::apply(x, w, channel, save_output);
}

// Below autograd (inference mode, or no tensor needing a gradient): the kernel's forward alone.
at::Tensor prelu_cpu(const at::Tensor& x, const at::Tensor& w, std::optional<int64_t> channel,
                     bool save_output) {
  bool invertible;
  return run_forward(x, w, channel.value_or(-1), &invertible);
}

}  // namespace

TORCH_LIBRARY(RECTIFIERS_NS, m) {
  m.def("prelu(Tensor x, Tensor weight, int? channel, bool save_output) -> Tensor");
}
TORCH_LIBRARY_IMPL(RECTIFIERS_NS, Autograd, m) { m.impl("prelu", prelu_autograd); }
TORCH_LIBRARY_IMPL(RECTIFIERS_NS, CPU, m) { m.impl("prelu", prelu_cpu); }

extern "C" void rectifiers_prelu_bind(int dtype, void* forward, void* backward) {
  forward_of[dtype] = reinterpret_cast<Forward>(forward);
  backward_of[dtype] = reinterpret_cast<Backward>(backward);
}
