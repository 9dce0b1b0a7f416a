// Fused non-causal linear attention on CPU: cosFormer and elu+1 feature maps, forward and
// backward. The math, the saved tensors and why are in mixnas/attention/fused.py; this file
// holds the blocked loops. Per (batch, head) slice, rows are processed in blocks of `block`:
// the features phi of one block live in a (block, D) scratch buffer, never a (L, D) tensor.
//
//   forward:  S = sum_j phi(k_j) [v_j, 1]^T (D, dv+1: the last column is z)
//             num_i = phi(q_i)^T S,  out_i = num_i[:dv] / max(num_i[dv], eps)
//   backward: G_i = [g_out_i / c_i, -(g_out_i . out_i) / c_i * (den_i >= eps)], c_i = max(den_i, eps)
//             g_phi(q_i) = S G_i,  g_S = sum_i phi(q_i) G_i^T (+ the gradient of the returned S)
//             g_phi(k_j) = g_S [v_j, 1],  g_v_j = g_S[:, :dv]^T phi(k_j)
// with the features recomputed from q and k in the backward. S is stored transposed, S^T
// (dv+1, D): the accumulation S^T += [V, 1]^T P then has D (not dv+1 = 65) as its wide
// dimension, which MKL runs ~20% faster.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "fused_common.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

namespace {

struct Call {
  int64_t kind, d, big_d, dv, block;
  double eps;
  std::vector<double> trig;  // cosFormer: sin, cos of row i at 2i, 2i + 1
  const bool* mask;          // (B, Lk) contiguous, true = padded key; nullptr: no mask
  int64_t lk;

  Call(int64_t kind_, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
       const c10::optional<at::Tensor>& mask_, int64_t m, double eps_, int64_t block_)
      : kind(kind_), d(q.size(3)), big_d(kind_ == kCos ? 2 * q.size(3) : q.size(3)), dv(v.size(3)),
        block(std::max<int64_t>(block_, 1)), eps(eps_), mask(nullptr), lk(k.size(2)) {
    TORCH_CHECK(kind == kElu || kind == kCos, "fused linear attention: unknown feature kind ", kind);
    if (kind == kCos) {
      int64_t rows = std::max(q.size(2), k.size(2));
      TORCH_CHECK(m >= rows, "fused cosformer: positions up to ", rows - 1, " need M > them, got M=", m);
      trig.resize(2 * rows);
      for (int64_t i = 0; i < rows; ++i) {
        double a = M_PI / (2.0 * static_cast<double>(m)) * static_cast<double>(i);
        trig[2 * i] = std::sin(a);
        trig[2 * i + 1] = std::cos(a);
      }
    }
    if (mask_.has_value()) mask = mask_->data_ptr<bool>();
  }

  // Features of rows [r0, r0 + n) of x (an (L, d) slice with unit column stride) into P (n, D);
  // `batch` >= 0 zeroes the rows of padded keys of that batch row.
  template <typename T>
  void features(const at::Tensor& x, int64_t r0, int64_t n, at::Tensor& p, int64_t batch) const {
    if (kind == kElu) {
      at::elu_out(p, x.narrow(0, r0, n));  // ATen's vectorised exp
      p.add_(1);
    } else {
      cos_features(x.data_ptr<T>() + r0 * x.stride(0), x.stride(0), n, d, trig.data() + 2 * r0, p.data_ptr<T>());
    }
    if (batch >= 0 && mask != nullptr) {
      T* pp = p.data_ptr<T>();
      for (int64_t i = 0; i < n; ++i)
        if (mask[batch * lk + r0 + i]) std::fill(pp + i * big_d, pp + (i + 1) * big_d, T(0));
    }
  }

  // Chain rule through phi: g_x (rows [r0, r0 + n) of the contiguous (L, d) gx) from g_phi
  // (n, D), the features p (n, D) and the inputs x; padded keys get 0.
  template <typename T>
  void chain(const at::Tensor& x, int64_t r0, int64_t n, const at::Tensor& gp, const at::Tensor& p,
             at::Tensor& gx, int64_t batch) const {
    const T* __restrict__ xp = x.data_ptr<T>();
    const T* __restrict__ g = gp.data_ptr<T>();
    const T* __restrict__ pp = p.data_ptr<T>();
    T* __restrict__ out = gx.data_ptr<T>() + r0 * d;
    for (int64_t i = 0; i < n; ++i) {
      T* __restrict__ oi = out + i * d;
      if (batch >= 0 && mask != nullptr && mask[batch * lk + r0 + i]) {
        std::fill(oi, oi + d, T(0));
        continue;
      }
      if (kind == kElu) {
        elu_chain(pp + i * d, g + i * big_d, d, oi);
      } else {
        cos_chain(xp + (r0 + i) * x.stride(0), g + i * big_d, static_cast<T>(trig[2 * (r0 + i)]),
                  static_cast<T>(trig[2 * (r0 + i) + 1]), d, oi);
      }
    }
  }
};

// Returns (out (B, H, Lq, dv), S^T (B, H, dv+1, D), den (B, H, Lq): phi(q_i) . z before the clamp).
std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_forward(
    const at::Tensor& q_, const at::Tensor& k_, const at::Tensor& v_, const c10::optional<at::Tensor>& mask,
    int64_t kind, int64_t m, double eps, int64_t block) {
  at::Tensor q = last_dim_contiguous(q_), k = last_dim_contiguous(k_), v = v_;
  Call call(kind, q, k, v, mask, m, eps, block);
  const int64_t bsz = q.size(0), heads = q.size(1), lq = q.size(2), lk = k.size(2), dv = call.dv;
  at::Tensor out = at::empty({bsz, heads, lq, dv}, q.options());
  at::Tensor s_all = at::zeros({bsz, heads, dv + 1, call.big_d}, q.options());
  at::Tensor den = at::empty({bsz, heads, lq}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "fused_linear_forward", [&] {
    for_each_head(bsz, heads, (lq + lk) * call.big_d * (dv + 1), [&](int64_t b, int64_t h) {
      const int64_t rows = std::min(call.block, std::max(lq, lk));
      at::Tensor p = at::empty({rows, call.big_d}, q.options());
      at::Tensor v1 = at::ones({rows, dv + 1}, q.options());  // [v_j, 1]: column dv stays 1
      at::Tensor num = at::empty({rows, dv + 1}, q.options());
      at::Tensor qs = q[b][h], ks = k[b][h], vs = v[b][h], st = s_all[b][h];
      for (int64_t r0 = 0; r0 < lk; r0 += call.block) {
        const int64_t n = std::min(call.block, lk - r0);
        at::Tensor pn = p.narrow(0, 0, n), vn = v1.narrow(0, 0, n);
        call.features<scalar_t>(ks, r0, n, pn, b);
        vn.narrow(1, 0, dv).copy_(vs.narrow(0, r0, n));
        st.addmm_(vn.t(), pn);
      }
      scalar_t* op = out[b][h].data_ptr<scalar_t>();
      scalar_t* dp = den[b][h].data_ptr<scalar_t>();
      for (int64_t r0 = 0; r0 < lq; r0 += call.block) {
        const int64_t n = std::min(call.block, lq - r0);
        at::Tensor pn = p.narrow(0, 0, n), nn = num.narrow(0, 0, n);
        call.features<scalar_t>(qs, r0, n, pn, -1);
        at::mm_out(nn, pn, st.t());
        readout(nn.data_ptr<scalar_t>(), n, dv, static_cast<scalar_t>(eps), op + r0 * dv, dp + r0);
      }
    });
  });
  return {out, s_all, den};
}

// Returns (g_q, g_k, g_v). g_s: gradient of the returned S^T (B, H, dv+1, D) or None.
std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_backward(
    const at::Tensor& q_, const at::Tensor& k_, const at::Tensor& v_, const c10::optional<at::Tensor>& mask,
    const at::Tensor& out, const at::Tensor& s_all, const at::Tensor& den, const at::Tensor& g_out,
    const c10::optional<at::Tensor>& g_s, int64_t kind, int64_t m, double eps, int64_t block) {
  at::Tensor q = last_dim_contiguous(q_), k = last_dim_contiguous(k_), v = v_;
  Call call(kind, q, k, v, mask, m, eps, block);
  const int64_t bsz = q.size(0), heads = q.size(1), lq = q.size(2), lk = k.size(2), d = call.d, dv = call.dv;
  at::Tensor gq = at::empty({bsz, heads, lq, d}, q.options());
  at::Tensor gk = at::empty({bsz, heads, lk, d}, q.options());
  at::Tensor gv = at::empty({bsz, heads, lk, dv}, q.options());
  at::Tensor gs_all = g_s.has_value() ? g_s->clone(at::MemoryFormat::Contiguous) : at::zeros_like(s_all);
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "fused_linear_backward", [&] {
    for_each_head(bsz, heads, (lq + lk) * call.big_d * (dv + 1), [&](int64_t b, int64_t h) {
      const int64_t rows = std::min(call.block, std::max(lq, lk));
      at::Tensor p = at::empty({rows, call.big_d}, q.options());
      at::Tensor gp = at::empty({rows, call.big_d}, q.options());
      at::Tensor g1 = at::ones({rows, dv + 1}, q.options());  // G, then [v_j, 1]
      at::Tensor qs = q[b][h], ks = k[b][h], vs = v[b][h], st = s_all[b][h], gst = gs_all[b][h];
      at::Tensor gqs = gq[b][h], gks = gk[b][h], gvs = gv[b][h], gos = g_out[b][h];
      const scalar_t* op = out[b][h].data_ptr<scalar_t>();  // contiguous: made by fused_forward
      const scalar_t* dp = den[b][h].data_ptr<scalar_t>();
      for (int64_t r0 = 0; r0 < lq; r0 += call.block) {
        const int64_t n = std::min(call.block, lq - r0);
        at::Tensor pn = p.narrow(0, 0, n), gpn = gp.narrow(0, 0, n), gn = g1.narrow(0, 0, n);
        call.features<scalar_t>(qs, r0, n, pn, -1);
        gn.narrow(1, 0, dv).copy_(gos.narrow(0, r0, n));  // any strides (sum().backward() expands)
        readout_grad(gn.data_ptr<scalar_t>(), op + r0 * dv, dp + r0, n, dv, static_cast<scalar_t>(eps));
        at::mm_out(gpn, gn, st);
        call.chain<scalar_t>(qs, r0, n, gpn, pn, gqs, -1);
        gst.addmm_(gn.t(), pn);
      }
      g1.narrow(1, dv, 1).fill_(1);
      for (int64_t r0 = 0; r0 < lk; r0 += call.block) {
        const int64_t n = std::min(call.block, lk - r0);
        at::Tensor pn = p.narrow(0, 0, n), gpn = gp.narrow(0, 0, n), vn = g1.narrow(0, 0, n);
        call.features<scalar_t>(ks, r0, n, pn, b);
        vn.narrow(1, 0, dv).copy_(vs.narrow(0, r0, n));
        at::mm_out(gpn, vn, gst);
        call.chain<scalar_t>(ks, r0, n, gpn, pn, gks, b);
        at::Tensor gvn = gvs.narrow(0, r0, n);
        at::mm_out(gvn, pn, gst.narrow(0, 0, dv).t());
      }
    });
  });
  return {gq, gk, gv};
}

}  // namespace

TORCH_LIBRARY(mixnas_fused, lib) {
  lib.def("linear_forward", &fused_forward);
  lib.def("linear_backward", &fused_backward);
}
