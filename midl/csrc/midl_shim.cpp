// midl's C++ entry point for SparseMIDLayer's evaluation pass: one call from Python checks every tensor and runs the C
// kernels of midl_kernels.c (their addresses handed over by midl/native.py, which loaded them with ctypes). Built with
// -fopenmp: at::parallel_for then runs on PyTorch's own OpenMP threads (the loaded libgomp.so.1 is torch's), the
// threads nn.Linear uses, instead of threads of its own that would compete with them for the cores.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/impl/TorchDispatchModeTLS.h>
#include <torch/csrc/utils/pybind.h>
#include <limits>
#include <optional>
#include <vector>
using Opt = std::optional<at::Tensor>;
typedef void (*gate_t)(const float*, const float*, const float*, const float*, float*, float*, int64_t, int64_t, int64_t, int64_t);
typedef void (*mix_t)(const float*, const float*, const int64_t*, const float*, const float*, float*,
                      int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
typedef int (*sel_t)(const float*, const float*, const float*, const float*, int64_t*, float*, int64_t, int64_t, int64_t, int64_t);
typedef int (*selmix_t)(const float*, const float*, const float*, const float*, const float*, const float*, const float*, float*,
                        int64_t, int64_t, int64_t, int64_t, int64_t);
static gate_t GATE; static mix_t MIX; static sel_t SEL; static selmix_t SELMIX;   /* the C kernels, loaded by ctypes; set once */

void set_kernels(int64_t gate, int64_t mix, int64_t sel, int64_t selmix) {
  GATE = (gate_t)gate; MIX = (mix_t)mix; SEL = (sel_t)sel; SELMIX = (selmix_t)selmix;
}

static bool fits(const at::Tensor& t, at::IntArrayRef shape) {   /* what the C kernels read: contiguous float32 CPU memory */
  return t.scalar_type() == at::kFloat && t.device().is_cpu() && t.layout() == at::kStrided && t.is_contiguous()
         && !t.unsafeGetTensorImpl()->is_python_dispatch() && t.sizes() == shape;
}
static bool fits(const Opt& t, at::IntArrayRef shape) { return !t || fits(*t, shape); }
static const float* ptr(const Opt& t) { return t ? t->data_ptr<float>() : nullptr; }

/* SparseMIDLayer's evaluation pass; nullopt (None) where the Python path must run instead: gradients recorded, a
   dispatch mode active (FlopCounterMode and other counters see PyTorch ops only), anything but float32 CPU tensors of
   the layer's shapes, the dense path (rows * k > budget * d_out) */
Opt forward(const at::Tensor& x, const at::Tensor& D, const at::Tensor& Ua, const Opt& ba, const at::Tensor& Uc, const Opt& bc,
            const at::Tensor& W, const Opt& b, int64_t k, double budget, int64_t parallel_min) {
  if (at::GradMode::is_enabled() || c10::impl::TorchDispatchModeTLS::stack_len() > 0) return std::nullopt;
  const int64_t d_in = W.dim() == 2 ? W.size(1) : 0, d_out = W.dim() == 2 ? W.size(0) : 0, r = D.dim() == 2 ? D.size(0) : 0;
  if (x.dim() == 0 || x.size(-1) != d_in || x.scalar_type() != at::kFloat || !x.device().is_cpu() || x.layout() != at::kStrided
      || x.unsafeGetTensorImpl()->is_python_dispatch()) return std::nullopt;
  const int64_t rows = x.numel() / d_in;
  if (k < 1 || k > d_out || (double)(rows * k) > budget * (double)d_out) return std::nullopt;
  if (!(fits(D, {r, d_in}) && fits(Ua, {d_out, r}) && fits(ba, {d_out}) && fits(Uc, {d_out, r}) && fits(bc, {d_out})
        && fits(W, {d_out, d_in}) && fits(b, {d_out}))) return std::nullopt;
  at::Tensor xc = x.contiguous();
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end()); shape.back() = d_out;
  at::Tensor out = at::empty(shape, x.options());
  if (rows == 0) return out;
  std::vector<float> scratch(rows * (r + d_out));                   /* h and alpha: plain memory, cheaper than a tensor */
  float *hp = scratch.data(), *ap = hp + rows * r, *op = out.data_ptr<float>();
  const float *xp = xc.data_ptr<float>(), *wp = W.data_ptr<float>(), *bp = ptr(b), *up = Uc.data_ptr<float>(), *cp = ptr(bc);
  GATE(xp, D.data_ptr<float>(), Ua.data_ptr<float>(), ptr(ba), hp, ap, rows, r, d_in, d_out);   /* h = D x, alpha: midl_gate */
  const int parts = rows * k * d_in < parallel_min ? 1 : (int)std::min<int64_t>(at::get_num_threads(), k);
  at::Tensor idx;
  int status;
  if (parts == 1) status = SELMIX(ap, hp, up, cp, wp, bp, xp, op, rows, k, r, d_in, d_out);   /* all in one call */
  else {
    idx = at::empty({rows, k}, x.options().dtype(at::kLong));
    status = SEL(ap, hp, up, cp, idx.data_ptr<int64_t>(), op, rows, k, r, d_out);
  }
  TORCH_CHECK(status != 2, "SparseMIDLayer's native kernel could not allocate its scratch space");
  TORCH_CHECK(status != 3, "SparseMIDLayer's native kernel: k=", k, " is outside 1..", d_out);
  if (status == 0 && parts == 1) return out;
  if (status == 1) {                                                /* the k-th place tied: torch.topk decides, as topk_indices */
    const double inf = std::numeric_limits<double>::infinity();
    at::Tensor alpha = at::from_blob(ap, {rows, d_out}, x.options());
    idx = std::get<1>(at::topk(at::nan_to_num(alpha, -inf, inf, -inf), k, -1, true, false));
  }
  idx = std::get<0>(idx.sort(-1)).contiguous();
  const int64_t* ip = idx.data_ptr<int64_t>();
  /* disjoint neurons per part (top-k indices are distinct), on PyTorch's intra-op threads */
  at::parallel_for(0, k, (k + parts - 1) / parts, [&](int64_t t0, int64_t t1) {
    MIX(wp, bp, ip, xp, ap, op, rows, k, d_in, d_out, t0, t1);
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("set_kernels", &set_kernels);
  m.def("forward", &forward);
}
