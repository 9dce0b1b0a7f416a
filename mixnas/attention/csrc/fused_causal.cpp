// Fused causal linear attention on CPU: cosFormer and elu+1 feature maps, forward and backward,
// with an initial state and the final state returned. The math, the saved tensors and why are in
// mixnas/attention/fused.py (`fused_causal_linear_attention`); this file holds the chunk loops.
//
// Per (batch, head) slice the rows go in chunks of C. With F the "score features" (cosFormer:
// relu(x); elu: elu(x) + 1), P the state features (cosFormer: [relu(x) sin a, relu(x) cos a];
// elu: P = F), V1 = [V, 1] and W (C x C) = tril * w(i - j) (cosFormer: w(t) = cos(pi t / 2M),
// elu: 1) -- since sin a_i sin a_j + cos a_i cos a_j = cos(a_i - a_j), P_q P_k^T = (F_q F_k^T) o W
// inside a chunk: the C x C scores cost d, not 2d, multiply-adds per entry:
//   forward:  A = (F_q F_k^T) o W,  num = A V1 + P_q S,  out = num[:, :dv] / max(num[:, dv], eps),
//             then S += P_k^T V1   (S: D x (dv+1), its last column is z)
//   backward (chunks in reverse, g_S = the gradient of the state after the chunk):
//             G = [g_out / c, -(g_out . out) / c]  (0 where den was clamped),  gA = (G V1^T) o W
//             g_F_q = gA F_k,  g_F_k = gA^T F_q,  g_V = A^T G[:, :dv] + P_k g_S[:, :dv]
//             g_P_q = G S^T,  g_P_k = V1 g_S^T,  then g_S += P_q^T G
// The state before a chunk is needed again in the backward: the forward stores it every
// `every` chunks, and the backward rebuilds the states inside such a segment from its
// checkpoint (one P_k^T V1 per chunk) before running the segment in reverse.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "fused_common.h"

extern "C" {
// The Fortran BLAS that torch links (MKL in the official wheels): a chunk's products are small
// (64 x 128 x 65), where at::mm's dispatch costs as much as the product. Declared weak: where
// torch exports no such symbol the pointer is null and gemm() below uses at::mm instead. The
// dimensions go as 64-bit integers: an LP64 BLAS (32-bit integers) reads their low halves, which
// on a little-endian CPU are the values themselves, and an ILP64 BLAS reads them whole.
void sgemm_(const char*, const char*, const int64_t*, const int64_t*, const int64_t*, const float*, const float*,
            const int64_t*, const float*, const int64_t*, const float*, float*, const int64_t*) __attribute__((weak));
void dgemm_(const char*, const char*, const int64_t*, const int64_t*, const int64_t*, const double*, const double*,
            const int64_t*, const double*, const int64_t*, const double*, double*, const int64_t*)
    __attribute__((weak));
}

namespace {

// MIXNAS_NO_BLAS: only to test the at::mm fallback (a build with -DMIXNAS_NO_BLAS).
#if defined(MIXNAS_NO_BLAS) || !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
constexpr bool kNoBlas = true;
#else
constexpr bool kNoBlas = false;
#endif

bool blas(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  if (kNoBlas || sgemm_ == nullptr) return false;
  const float one = 1;
  sgemm_(&ta, &tb, &m, &n, &k, &one, a, &lda, b, &ldb, &beta, c, &ldc);
  return true;
}

bool blas(char ta, char tb, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b,
          int64_t ldb, double beta, double* c, int64_t ldc) {
  if (kNoBlas || dgemm_ == nullptr) return false;
  const double one = 1;
  dgemm_(&ta, &tb, &m, &n, &k, &one, a, &lda, b, &ldb, &beta, c, &ldc);
  return true;
}

// Row-major C (m x n, leading dimension ldc) = op(A) op(B), or C += op(A) op(B) when `acc`.
// A row-major matrix is its transpose in BLAS's column-major view, so the call computes
// C^T = op(B)^T op(A)^T: operands swapped, transpose flags kept.
template <typename T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb,
          bool acc, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (blas(tb ? 'T' : 'N', ta ? 'T' : 'N', n, m, k, b, ldb, a, lda, acc ? T(1) : T(0), c, ldc)) return;
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto view = [&](const T* p, int64_t rows, int64_t cols, int64_t ld, bool t) {
    at::Tensor x = at::from_blob(const_cast<T*>(p), {t ? cols : rows, t ? rows : cols}, {ld, 1}, opts);
    return t ? x.t() : x;
  };
  at::Tensor cm = at::from_blob(c, {m, n}, {ldc, 1}, opts);
  if (acc) cm.addmm_(view(a, m, k, lda, ta), view(b, k, n, ldb, tb));
  else at::mm_out(cm, view(a, m, k, lda, ta), view(b, k, n, ldb, tb));
}

// cosFormer features of n rows (row stride rs): f = relu(x) (n x d), p = [f sin, f cos] (n x 2d).
template <typename T>
ROW_LOOP void cos_split_features(const T* __restrict__ x, int64_t rs, int64_t n, int64_t d,
                                 const double* __restrict__ trig, T* __restrict__ f, T* __restrict__ p) {
  for (int64_t i = 0; i < n; ++i) {
    const T s = static_cast<T>(trig[2 * i]), c = static_cast<T>(trig[2 * i + 1]);
    const T* __restrict__ xi = x + i * rs;
    T* __restrict__ fi = f + i * d;
    T* __restrict__ pi = p + i * 2 * d;
    for (int64_t j = 0; j < d; ++j) {
      const T r = std::max(xi[j], T(0));
      fi[j] = r;
      pi[j] = r * s;
      pi[d + j] = r * c;
    }
  }
}

// g_x of one row from the gradients of both feature forms. cosFormer: relu'(x) (gf + sin gp[:d]
// + cos gp[d:]); elu (f = p = phi): min(phi, 1) (gf + gp).
template <typename T>
ROW_LOOP void cos_chain2(const T* __restrict__ x, const T* __restrict__ gf, const T* __restrict__ gp, T s, T c,
                         int64_t d, T* __restrict__ out) {
  for (int64_t j = 0; j < d; ++j) out[j] = static_cast<T>(x[j] > T(0)) * (gf[j] + gp[j] * s + gp[d + j] * c);
}

template <typename T>
ROW_LOOP void elu_chain2(const T* __restrict__ phi, const T* __restrict__ gf, const T* __restrict__ gp, int64_t d,
                         T* __restrict__ out) {
  for (int64_t j = 0; j < d; ++j) out[j] = (gf[j] + gp[j]) * std::min(phi[j], T(1));
}

// a (n x n, leading dimension ld) *= w (leading dimension wld): the causal mask and cosFormer's
// cos(pi (i - j) / 2M) in one pass (w is 0 above the diagonal). The products compute the full
// n x n square: skipping its zero upper quarter (two BLAS calls per product) measured no faster.
template <typename T>
ROW_LOOP void apply_weight(T* __restrict__ a, int64_t n, int64_t ld, const T* __restrict__ w, int64_t wld) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) a[i * ld + j] *= w[i * wld + j];
}

// n rows of x (any strides s0, s1; cols columns) into dst (n x (cols + 1)), the last column 1.
template <typename T>
void load_rows(const T* x, int64_t s0, int64_t s1, int64_t n, int64_t cols, T* dst) {
  for (int64_t i = 0; i < n; ++i) {
    T* di = dst + i * (cols + 1);
    const T* xi = x + i * s0;
    if (s1 == 1) std::copy(xi, xi + cols, di);
    else for (int64_t j = 0; j < cols; ++j) di[j] = xi[j * s1];
    di[cols] = T(1);
  }
}

struct Causal {
  int64_t kind, d, big_d, dv, chunk, every, len;
  double eps;
  std::vector<double> trig;    // cosFormer: sin, cos of row i (position offset + i) at 2i, 2i + 1
  std::vector<double> weight;  // (chunk x chunk): w(i - j) where j <= i, else 0
  const bool* mask;            // (B, L) contiguous, true = padded key; nullptr: no mask

  Causal(int64_t kind_, const at::Tensor& q, const at::Tensor& v, const c10::optional<at::Tensor>& mask_,
         int64_t m, double eps_, int64_t offset, int64_t chunk_, int64_t every_)
      : kind(kind_), d(q.size(3)), big_d(kind_ == kCos ? 2 * q.size(3) : q.size(3)), dv(v.size(3)),
        chunk(std::max<int64_t>(chunk_, 1)), every(std::max<int64_t>(every_, 1)), len(q.size(2)), eps(eps_),
        mask(mask_.has_value() ? mask_->data_ptr<bool>() : nullptr) {
    TORCH_CHECK(kind == kElu || kind == kCos, "fused causal linear attention: unknown feature kind ", kind);
    TORCH_CHECK(offset >= 0, "fused causal linear attention: negative offset ", offset);
    const double step = kind == kCos ? M_PI / (2.0 * static_cast<double>(m)) : 0.0;
    if (kind == kCos) {
      TORCH_CHECK(m >= offset + len, "fused cosformer: positions up to ", offset + len - 1,
                  " need M > them, got M=", m);
      trig.resize(2 * len);
      for (int64_t i = 0; i < len; ++i) {
        trig[2 * i] = std::sin(step * static_cast<double>(offset + i));
        trig[2 * i + 1] = std::cos(step * static_cast<double>(offset + i));
      }
    }
    weight.assign(chunk * chunk, 0.0);
    for (int64_t i = 0; i < chunk; ++i)
      for (int64_t j = 0; j <= i; ++j) weight[i * chunk + j] = std::cos(step * static_cast<double>(i - j));
  }

  int64_t chunks() const { return (len + chunk - 1) / chunk; }

  // Features of rows [r0, r0 + n) of x (row stride rs) into f (n x d) and p (n x D; p == f for
  // elu); rows of padded keys (pad != nullptr) are zero.
  template <typename T>
  void features(const T* x, int64_t rs, int64_t r0, int64_t n, T* f, T* p, const bool* pad) const {
    if (kind == kElu) {
      const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
      at::Tensor ft = at::from_blob(f, {n, d}, opts);
      at::elu_out(ft, at::from_blob(const_cast<T*>(x + r0 * rs), {n, d}, {rs, 1}, opts));  // ATen's vectorised exp
      ft.add_(1);
    } else {
      cos_split_features(x + r0 * rs, rs, n, d, trig.data() + 2 * r0, f, p);
    }
    if (pad == nullptr) return;
    for (int64_t i = 0; i < n; ++i) {
      if (!pad[r0 + i]) continue;
      std::fill(f + i * d, f + (i + 1) * d, T(0));
      std::fill(p + i * big_d, p + (i + 1) * big_d, T(0));
    }
  }

  // g_x of rows [r0, r0 + n) (contiguous (L, d) gx) from g_f (n x d) and g_p (n x D); padded rows 0.
  template <typename T>
  void chain(const T* x, int64_t rs, int64_t r0, int64_t n, const T* f, const T* gf, const T* gp, T* gx,
             const bool* pad) const {
    for (int64_t i = 0; i < n; ++i) {
      T* out = gx + (r0 + i) * d;
      if (pad != nullptr && pad[r0 + i]) std::fill(out, out + d, T(0));
      else if (kind == kElu) elu_chain2(f + i * d, gf + i * d, gp + i * d, d, out);
      else cos_chain2(x + (r0 + i) * rs, gf + i * d, gp + i * big_d, static_cast<T>(trig[2 * (r0 + i)]),
                      static_cast<T>(trig[2 * (r0 + i) + 1]), d, out);
    }
  }
};

// Scratch of one (batch, head) slice: a chunk's features of q and k, [V, 1] and the C x C scores.
template <typename T>
struct Chunk {
  std::vector<T> fq, pq_, fk, pk_, v1, a;
  T *pq, *pk;
  Chunk(const Causal& cc)
      : fq(cc.chunk * cc.d), pq_(cc.kind == kCos ? cc.chunk * cc.big_d : 0), fk(cc.chunk * cc.d),
        pk_(pq_.size()), v1(cc.chunk * (cc.dv + 1)), a(cc.chunk * cc.chunk),
        pq(cc.kind == kCos ? pq_.data() : fq.data()), pk(cc.kind == kCos ? pk_.data() : fk.data()) {}
};

// (out (B, H, L, dv), final state S (B, H, D, dv+1), den (B, H, L), checkpoints (B, H, ceil(chunks /
// every), D, dv+1): the state before chunks 0, every, 2 every, ...).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> causal_forward(
    const at::Tensor& q_, const at::Tensor& k_, const at::Tensor& v, const c10::optional<at::Tensor>& s0,
    const c10::optional<at::Tensor>& mask, int64_t kind, int64_t m, double eps, int64_t offset, int64_t chunk,
    int64_t every) {
  at::Tensor q = last_dim_contiguous(q_), k = last_dim_contiguous(k_);
  const Causal cc(kind, q, v, mask, m, eps, offset, chunk, every);
  const int64_t bsz = q.size(0), heads = q.size(1), len = cc.len, d = cc.d, big_d = cc.big_d, dv = cc.dv, e = dv + 1;
  const int64_t n_ckpt = (cc.chunks() + cc.every - 1) / cc.every;
  at::Tensor out = at::empty({bsz, heads, len, dv}, q.options());
  at::Tensor den = at::empty({bsz, heads, len}, q.options());
  at::Tensor s_all = s0.has_value() ? s0->clone(at::MemoryFormat::Contiguous)
                                     : at::zeros({bsz, heads, big_d, e}, q.options());
  at::Tensor ckpt = at::empty({bsz, heads, n_ckpt, big_d, e}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "fused_causal_forward", [&] {
    using T = scalar_t;
    const std::vector<T> w(cc.weight.begin(), cc.weight.end());
    const int64_t C = cc.chunk;
    for_each_head(bsz, heads, len * (C * (d + e) + 2 * big_d * e), [&](int64_t b, int64_t h) {
      Chunk<T> ch(cc);
      std::vector<T> num(C * e);
      const T* qp = q.data_ptr<T>() + b * q.stride(0) + h * q.stride(1);
      const T* kp = k.data_ptr<T>() + b * k.stride(0) + h * k.stride(1);
      const T* vp = v.data_ptr<T>() + b * v.stride(0) + h * v.stride(1);
      const bool* pad = cc.mask == nullptr ? nullptr : cc.mask + b * len;
      T* s = s_all[b][h].data_ptr<T>();
      T* cp = ckpt[b][h].data_ptr<T>();
      T* op = out[b][h].data_ptr<T>();
      T* dp = den[b][h].data_ptr<T>();
      for (int64_t c = 0, r0 = 0; r0 < len; ++c, r0 += C) {
        const int64_t n = std::min(C, len - r0);
        if (c % cc.every == 0) std::copy(s, s + big_d * e, cp + (c / cc.every) * big_d * e);
        cc.features(qp, q.stride(2), r0, n, ch.fq.data(), ch.pq, nullptr);
        cc.features(kp, k.stride(2), r0, n, ch.fk.data(), ch.pk, pad);
        load_rows(vp + r0 * v.stride(2), v.stride(2), v.stride(3), n, dv, ch.v1.data());
        gemm(false, true, n, n, d, ch.fq.data(), d, ch.fk.data(), d, false, ch.a.data(), C);
        apply_weight(ch.a.data(), n, C, w.data(), C);
        gemm(false, false, n, e, n, ch.a.data(), C, ch.v1.data(), e, false, num.data(), e);
        gemm(false, false, n, e, big_d, ch.pq, big_d, s, e, true, num.data(), e);
        readout(num.data(), n, dv, static_cast<T>(eps), op + r0 * dv, dp + r0);
        gemm(true, false, big_d, e, n, ch.pk, big_d, ch.v1.data(), e, true, s, e);
      }
    });
  });
  return {out, s_all, den, ckpt};
}

// (g_q, g_k, g_v, g_S0). g_s: the gradient of the returned final state, or None.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> causal_backward(
    const at::Tensor& q_, const at::Tensor& k_, const at::Tensor& v, const c10::optional<at::Tensor>& mask,
    const at::Tensor& out, const at::Tensor& den, const at::Tensor& ckpt, const at::Tensor& g_out,
    const c10::optional<at::Tensor>& g_s, int64_t kind, int64_t m, double eps, int64_t offset, int64_t chunk,
    int64_t every) {
  at::Tensor q = last_dim_contiguous(q_), k = last_dim_contiguous(k_);
  const Causal cc(kind, q, v, mask, m, eps, offset, chunk, every);
  const int64_t bsz = q.size(0), heads = q.size(1), len = cc.len, d = cc.d, big_d = cc.big_d, dv = cc.dv, e = dv + 1;
  at::Tensor gq = at::empty({bsz, heads, len, d}, q.options());
  at::Tensor gk = at::empty({bsz, heads, len, d}, q.options());
  at::Tensor gv = at::empty({bsz, heads, len, dv}, q.options());
  // The running gradient of the state, from the returned state's gradient back to the initial one.
  at::Tensor gs_all = g_s.has_value() ? g_s->contiguous().clone() : at::zeros({bsz, heads, big_d, e}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "fused_causal_backward", [&] {
    using T = scalar_t;
    const std::vector<T> w(cc.weight.begin(), cc.weight.end());
    const int64_t C = cc.chunk, nch = cc.chunks(), nseg = (nch + cc.every - 1) / cc.every, se = big_d * e;
    for_each_head(bsz, heads, len * (C * (3 * d + 2 * e) + 5 * big_d * e), [&](int64_t b, int64_t h) {
      Chunk<T> ch(cc);
      std::vector<T> g(C * e), ga(C * C), gfq(C * d), gfk(C * d), gpq(C * big_d), gpk(C * big_d);
      std::vector<T> states(std::min(cc.every, nch) * se);
      const T* qp = q.data_ptr<T>() + b * q.stride(0) + h * q.stride(1);
      const T* kp = k.data_ptr<T>() + b * k.stride(0) + h * k.stride(1);
      const T* vp = v.data_ptr<T>() + b * v.stride(0) + h * v.stride(1);
      const T* gop = g_out.data_ptr<T>() + b * g_out.stride(0) + h * g_out.stride(1);
      const bool* pad = cc.mask == nullptr ? nullptr : cc.mask + b * len;
      const T* cp = ckpt[b][h].data_ptr<T>();  // contiguous: made by causal_forward, as out and den
      const T* op = out[b][h].data_ptr<T>();
      const T* dp = den[b][h].data_ptr<T>();
      T* gs = gs_all[b][h].data_ptr<T>();
      T *gqp = gq[b][h].data_ptr<T>(), *gkp = gk[b][h].data_ptr<T>(), *gvp = gv[b][h].data_ptr<T>();
      for (int64_t seg = nseg - 1; seg >= 0; --seg) {
        const int64_t c0 = seg * cc.every, c1 = std::min(nch, c0 + cc.every);
        std::copy(cp + seg * se, cp + (seg + 1) * se, states.data());
        for (int64_t c = c0; c + 1 < c1; ++c) {  // the states before chunks c0 + 1 .. c1 - 1
          const int64_t r0 = c * C, n = std::min(C, len - r0);
          T* next = states.data() + (c - c0 + 1) * se;
          cc.features(kp, k.stride(2), r0, n, ch.fk.data(), ch.pk, pad);
          load_rows(vp + r0 * v.stride(2), v.stride(2), v.stride(3), n, dv, ch.v1.data());
          std::copy(next - se, next, next);
          gemm(true, false, big_d, e, n, ch.pk, big_d, ch.v1.data(), e, true, next, e);
        }
        for (int64_t c = c1 - 1; c >= c0; --c) {
          const int64_t r0 = c * C, n = std::min(C, len - r0);
          const T* sc = states.data() + (c - c0) * se;
          cc.features(qp, q.stride(2), r0, n, ch.fq.data(), ch.pq, nullptr);
          cc.features(kp, k.stride(2), r0, n, ch.fk.data(), ch.pk, pad);
          load_rows(vp + r0 * v.stride(2), v.stride(2), v.stride(3), n, dv, ch.v1.data());
          load_rows(gop + r0 * g_out.stride(2), g_out.stride(2), g_out.stride(3), n, dv, g.data());
          readout_grad(g.data(), op + r0 * dv, dp + r0, n, dv, static_cast<T>(eps));
          gemm(false, true, n, n, d, ch.fq.data(), d, ch.fk.data(), d, false, ch.a.data(), C);
          apply_weight(ch.a.data(), n, C, w.data(), C);
          gemm(false, true, n, n, e, g.data(), e, ch.v1.data(), e, false, ga.data(), C);
          apply_weight(ga.data(), n, C, w.data(), C);
          gemm(false, false, n, d, n, ga.data(), C, ch.fk.data(), d, false, gfq.data(), d);
          gemm(true, false, n, d, n, ga.data(), C, ch.fq.data(), d, false, gfk.data(), d);
          T* gvr = gvp + r0 * dv;
          gemm(true, false, n, dv, n, ch.a.data(), C, g.data(), e, false, gvr, dv);
          gemm(false, false, n, dv, big_d, ch.pk, big_d, gs, e, true, gvr, dv);  // g_S: after this chunk
          gemm(false, true, n, big_d, e, ch.v1.data(), e, gs, e, false, gpk.data(), big_d);
          gemm(false, true, n, big_d, e, g.data(), e, sc, e, false, gpq.data(), big_d);
          gemm(true, false, big_d, e, n, ch.pq, big_d, g.data(), e, true, gs, e);  // now: before it
          cc.chain(qp, q.stride(2), r0, n, ch.fq.data(), gfq.data(), gpq.data(), gqp, nullptr);
          cc.chain(kp, k.stride(2), r0, n, ch.fk.data(), gfk.data(), gpk.data(), gkp, pad);
        }
      }
    });
  });
  return {gq, gk, gv, gs_all};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(mixnas_fused, lib) {
  lib.def("causal_forward", &causal_forward);
  lib.def("causal_backward", &causal_backward);
}
