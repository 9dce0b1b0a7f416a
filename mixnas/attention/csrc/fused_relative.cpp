// Fused relative-position attention (Shaw et al. 2018) on CPU, forward and backward, flash-
// attention style. The math, the saved tensors and the fallback rules are in
// mixnas/attention/fused_relative.py; this file holds the blocked loops. Inputs are prepared
// there: qs = q / sqrt(d) and qr = qs aK^T (Lq, 2K+1), so the logit of query i and key j is
//     s_ij = qs_i . k_j + qr[i, clip(j - p_i) + K],   p_i = q_offset + i,
// plus -inf for padded keys and (causal) keys j > p_i. Per (batch, head) the queries are cut in
// blocks of bq rows and the keys in blocks of bk; only a (bq, bk) score block ever exists.
//
// The relative term of a row i is constant outside the band |j - p_i| < K: bucket 0 for
// j <= p_i - K, bucket 2K for j >= p_i + K. Each row of a block therefore splits in three
// segments [0, a) (bucket 0), [a, e) (buckets j - p_i + K, a contiguous slice of qr's row) and
// [e, nk) (bucket 2K); away from the diagonal the middle one is empty and the row gets one
// constant. The same segments give the probability mass per bucket (forward) and the bucket
// sums of dS (backward) with one sum per constant segment.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

namespace {

// Row loops compiled for AVX-512, AVX2 and the baseline; the loader picks one on the running CPU
// (gcc function multi-versioning), so the cached binary stays portable.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ROW_LOOP __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ROW_LOOP
#endif

template <typename T>
constexpr T kNegInf = -std::numeric_limits<T>::infinity();

// Float and integer layout of T (the row maximum and exp_row work on the bits).
template <typename T>
struct ExpBits;
template <>
struct ExpBits<float> {
  using I = int32_t;
  static constexpr int kMant = 23, kBias = 127, kDegree = 7;
  static constexpr float kLow = -87.0f;
};
template <>
struct ExpBits<double> {
  using I = int64_t;
  static constexpr int kMant = 52, kBias = 1023, kDegree = 13;
  static constexpr double kLow = -708.0;
};

// Adds the relative bias (c0 on [0, a), mid[j - a] on [a, e), c2 on [e, n)), the key padding
// bias kp (0 / -inf, may be null) to a score row, puts -inf from `lim` on (causal),
// and returns the row maximum.
template <typename T>
ROW_LOOP T bias_row(T* __restrict__ s, int64_t n, int64_t a, int64_t e, int64_t lim, T c0,
                    const T* __restrict__ mid, T c2, const T* __restrict__ kp) {
  for (int64_t j = 0; j < a; ++j) s[j] += c0;
  for (int64_t j = a; j < e; ++j) s[j] += mid[j - a];
  for (int64_t j = e; j < n; ++j) s[j] += c2;
  if (kp != nullptr)
    for (int64_t j = 0; j < n; ++j) s[j] += kp[j];
  for (int64_t j = lim; j < n; ++j) s[j] = kNegInf<T>;
  // The maximum on integers: a float's bits with the magnitude bits flipped when negative
  // order as the floats do (-inf lowest), and gcc vectorises an integer max reduction; it will
  // not vectorise a float one (NaN / signed-zero rules) without fast-math.
  using I = typename ExpBits<T>::I;
  constexpr int kSign = 8 * sizeof(I) - 1;
  constexpr I kMag = std::numeric_limits<I>::max();
  I best = std::numeric_limits<I>::min();
  for (int64_t j = 0; j < n; ++j) {
    I b;
    std::memcpy(&b, s + j, sizeof(I));
    best = std::max(best, static_cast<I>(b ^ ((b >> kSign) & kMag)));
  }
  best ^= (best >> kSign) & kMag;  // the map is its own inverse
  T mx;
  std::memcpy(&mx, &best, sizeof(T));
  return mx;
}

// s[j] <- exp(s[j] - m), in a loop gcc vectorises: 2^t e^r with t = round(x / ln 2), r = x - t ln 2
// (ln 2 in two parts, so t ln2_hi is exact) and e^r by its Taylor polynomial on |r| <= ln(2) / 2
// (degree 7 for float, 13 for double: below one ulp); 2^t is built in the exponent bits.
// Inputs below kLow (masked keys at -inf, far-off scores) give exactly 0. Not ATen's exp: MKL's
// vector exp takes a slow path on -inf (6x) and on results that underflow (30x), which causal
// and padded blocks are full of.
template <typename T>
ROW_LOOP void exp_row(T* __restrict__ s, int64_t n, T m) {
  using B = ExpBits<T>;
  using I = typename B::I;
  constexpr T kLog2e = T(1.4426950408889634), kLn2Hi = T(0.693145751953125), kLn2Lo = T(1.4286068203094173e-6);
  T coef[B::kDegree + 1];  // 1 / k!
  coef[0] = T(1);
  for (int c = 1; c <= B::kDegree; ++c) coef[c] = coef[c - 1] / T(c);
  for (int64_t j = 0; j < n; ++j) {
    const T x = s[j] - m;
    const T xc = std::max(x, B::kLow);
    const T t = std::floor(xc * kLog2e + T(0.5));
    const T r = (xc - t * kLn2Hi) - t * kLn2Lo;
    T p = coef[B::kDegree];
    for (int c = B::kDegree - 1; c >= 0; --c) p = p * r + coef[c];
    const I bits = (static_cast<I>(t) + B::kBias) << B::kMant;
    T two_t;
    std::memcpy(&two_t, &bits, sizeof(T));
    s[j] = x < B::kLow ? T(0) : p * two_t;
  }
}

template <typename T>
ROW_LOOP T sum_range(const T* __restrict__ s, int64_t n) {
  T total = 0;
#pragma omp simd reduction(+ : total)
  for (int64_t j = 0; j < n; ++j) total += s[j];
  return total;
}

template <typename T>
ROW_LOOP void scale_row(T* __restrict__ x, int64_t n, T f) {
  for (int64_t j = 0; j < n; ++j) x[j] *= f;
}

// Probabilities of one row (after exp) into bucket masses; returns the row's total.
template <typename T>
T mass_row(const T* p, int64_t n, int64_t a, int64_t e, T* mass, T* mass_mid, int64_t last) {
  const T s0 = sum_range(p, a), s2 = sum_range(p + e, n - e);
  T mid = 0;
  for (int64_t j = a; j < e; ++j) {
    mass_mid[j - a] += p[j];
    mid += p[j];
  }
  mass[0] += s0;
  mass[last] += s2;
  return s0 + mid + s2;
}

// Backward, one row: p holds P, dp = dO_i . v_j; writes dS = P (dP_ij - D_i) over p, where
// dP_ij = dp_ij + dO_i . aV[bucket] (c0 / mid / c2 as in bias_row, D_i already subtracted),
// and adds the bucket sums of dS to dsr.
template <typename T>
ROW_LOOP T ds_segment(T* __restrict__ p, const T* __restrict__ dp, int64_t n, T c) {
  T total = 0;
#pragma omp simd reduction(+ : total)
  for (int64_t j = 0; j < n; ++j) {
    p[j] *= dp[j] + c;
    total += p[j];
  }
  return total;
}

template <typename T>
void ds_row(T* p, const T* dp, int64_t n, int64_t a, int64_t e, T c0, const T* mid, T dl, T c2, T* dsr,
            T* dsr_mid, int64_t last) {
  dsr[0] += ds_segment(p, dp, a, c0);
  for (int64_t j = a; j < e; ++j) {
    p[j] *= dp[j] + mid[j - a] - dl;
    dsr_mid[j - a] += p[j];
  }
  dsr[last] += ds_segment(p + e, dp + e, n - e, c2);
}

struct Shape {
  int64_t bsz, heads, lq, lk, d, nb, rel, off, bq, bk;
  bool causal;
  // Segments of the row at absolute position pos in the key block [j0, j0 + nk): see the top.
  void segments(int64_t pos, int64_t j0, int64_t nk, int64_t& a, int64_t& e, int64_t& lim) const {
    a = std::clamp<int64_t>(pos - rel + 1 - j0, 0, nk);
    e = std::clamp<int64_t>(pos + rel - j0, a, nk);
    lim = causal ? std::clamp<int64_t>(pos - j0 + 1, 0, nk) : nk;
  }
  // Keys a query block [i0, i0 + n) can see: [0, key_end).
  int64_t key_end(int64_t i0, int64_t n) const { return causal ? std::min(lk, off + i0 + n) : lk; }
};

Shape make_shape(const at::Tensor& qs, const at::Tensor& k, const at::Tensor& qr, bool causal, int64_t off,
                 int64_t rel, int64_t bq, int64_t bk) {
  TORCH_CHECK(qs.dim() == 4 && k.dim() == 4 && qr.dim() == 4, "fused relative attention: 4-d inputs expected");
  TORCH_CHECK(qr.size(3) == 2 * rel + 1, "fused relative attention: qr must have 2K+1 columns");
  return {qs.size(0), qs.size(1), qs.size(2), k.size(2), qs.size(3), 2 * rel + 1, rel, off,
          std::max<int64_t>(bq, 1), std::max<int64_t>(bk, 1), causal};
}

// Runs body(unit, scratch owner) over [0, units): in parallel when there is more than one
// thread and enough work (a parallel region's barrier costs more than small calls' work, and
// far more when another process holds a core), else serially so the matmuls may use threads.
constexpr int64_t kParallelWork = int64_t(1) << 22;

template <typename F>
void for_units(int64_t units, int64_t work, const F& body) {
  // Autograd's thread-local state does not reach OpenMP's threads: below the autograd keys the
  // block matmuls on inputs that require grad are plain kernels, on every thread.
  auto run = [&](int64_t begin, int64_t end) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    body(begin, end);
  };
  if (units > 1 && at::get_num_threads() > 1 && work >= kParallelWork) at::parallel_for(0, units, 1, run);
  else run(0, units);
}

at::Tensor rows_contiguous(const at::Tensor& t) { return t.is_contiguous() ? t : t.contiguous(); }

// Returns (acc (B, H, Lq, d): sum_j P_ij v_j, mass (B, H, Lq, 2K+1): sum of P_ij per bucket,
// lse (B, H, Lq): logsumexp_j s_ij, +inf for a row with no visible key (P and acc are 0 there)).
std::tuple<at::Tensor, at::Tensor, at::Tensor> relative_forward(
    const at::Tensor& qs_, const at::Tensor& k_, const at::Tensor& v_, const at::Tensor& qr_,
    const c10::optional<at::Tensor>& kpad_, bool causal, int64_t off, int64_t rel, int64_t bq, int64_t bk) {
  at::Tensor qs = rows_contiguous(qs_), k = rows_contiguous(k_), v = rows_contiguous(v_), qr = rows_contiguous(qr_);
  const Shape sh = make_shape(qs, k, qr, causal, off, rel, bq, bk);
  at::Tensor acc = at::zeros({sh.bsz, sh.heads, sh.lq, v.size(3)}, qs.options());
  at::Tensor mass = at::zeros({sh.bsz, sh.heads, sh.lq, sh.nb}, qs.options());
  at::Tensor lse = at::empty({sh.bsz, sh.heads, sh.lq}, qs.options());
  at::Tensor kpad = kpad_.has_value() ? rows_contiguous(*kpad_) : at::Tensor();
  const int64_t qblocks = (sh.lq + sh.bq - 1) / sh.bq, pairs = sh.bsz * sh.heads;
  AT_DISPATCH_FLOATING_TYPES(qs.scalar_type(), "relative_forward", [&] {
    using T = scalar_t;
    for_units(pairs * qblocks, pairs * sh.lq * sh.lk * sh.d, [&](int64_t begin, int64_t end) {
      at::Tensor sbuf = at::empty({sh.bq * sh.bk}, qs.options());
      std::vector<T> m(sh.bq);
      for (int64_t u = begin; u < end; ++u) {
        const int64_t bh = u / qblocks, b = bh / sh.heads, h = bh % sh.heads;
        const int64_t i0 = (u % qblocks) * sh.bq, n = std::min(sh.bq, sh.lq - i0);
        at::Tensor qb = qs[b][h].narrow(0, i0, n), ks = k[b][h], vs = v[b][h];
        at::Tensor accb = acc[b][h].narrow(0, i0, n);
        T* massb = mass[b][h].data_ptr<T>() + i0 * sh.nb;
        const T* qrb = qr[b][h].data_ptr<T>() + i0 * sh.nb;
        const T* kp = kpad.defined() ? kpad.data_ptr<T>() + b * sh.lk : nullptr;
        T* accp = accb.data_ptr<T>();
        const int64_t dv = accb.size(1);
        std::fill(m.begin(), m.end(), kNegInf<T>);
        std::vector<T> l(n, T(0));
        const int64_t kend = sh.key_end(i0, n);
        for (int64_t j0 = 0; j0 < kend; j0 += sh.bk) {
          const int64_t nk = std::min(sh.bk, kend - j0);
          at::Tensor s = sbuf.narrow(0, 0, n * nk).view({n, nk});
          at::mm_out(s, qb, ks.narrow(0, j0, nk).t());
          T* sp = s.data_ptr<T>();
          for (int64_t i = 0; i < n; ++i) {
            const int64_t pos = sh.off + i0 + i;
            int64_t a, e, lim;
            sh.segments(pos, j0, nk, a, e, lim);
            const T* qri = qrb + i * sh.nb;
            T* row = sp + i * nk;
            const T mx = bias_row(row, nk, a, e, lim, qri[0], qri + (j0 + a - pos + sh.rel), qri[sh.nb - 1],
                                  kp ? kp + j0 : nullptr);
            const T m_new = std::max(m[i], mx);
            if (m_new == kNegInf<T>) {  // nothing visible yet
              std::fill(row, row + nk, T(0));
              continue;
            }
            if (m_new > m[i] && m[i] != kNegInf<T>) {  // a larger maximum: rescale what is summed
              const T alpha = std::exp(m[i] - m_new);
              scale_row(accp + i * dv, dv, alpha);
              scale_row(massb + i * sh.nb, sh.nb, alpha);
              l[i] *= alpha;
            }
            m[i] = m_new;
            exp_row(row, nk, m_new);
          }
          for (int64_t i = 0; i < n; ++i) {
            const int64_t pos = sh.off + i0 + i;
            int64_t a, e, lim;
            sh.segments(pos, j0, nk, a, e, lim);
            T* mi = massb + i * sh.nb;
            l[i] += mass_row(sp + i * nk, nk, a, e, mi, mi + (j0 + a - pos + sh.rel), sh.nb - 1);
          }
          accb.addmm_(s, vs.narrow(0, j0, nk));
        }
        T* lp = lse[b][h].data_ptr<T>() + i0;
        for (int64_t i = 0; i < n; ++i) {
          if (l[i] > T(0)) {
            const T inv = T(1) / l[i];
            scale_row(accp + i * dv, dv, inv);
            scale_row(massb + i * sh.nb, sh.nb, inv);
            lp[i] = m[i] + std::log(l[i]);
          } else {
            lp[i] = std::numeric_limits<T>::infinity();
          }
        }
      }
    });
  });
  return {acc, mass, lse};
}

// Returns (g_qs (B, H, Lq, d): sum_j dS_ij k_j, g_k, g_v, dsr (B, H, Lq, 2K+1): bucket sums of
// dS). dor = g_out aV^T (B, H, Lq, 2K+1), delta = rowsum(g_out * out) (B, H, Lq). Keys are the
// outer loop, so g_k / g_v of a key block are finished in place; g_qs and dsr gather over key
// blocks. With fewer (batch, head) pairs than threads, each pair's key blocks are dealt round-
// robin to `splits` units, each with its own g_qs / dsr partial sums (added at the end).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> relative_backward(
    const at::Tensor& qs_, const at::Tensor& k_, const at::Tensor& v_, const at::Tensor& qr_,
    const c10::optional<at::Tensor>& kpad_, const at::Tensor& lse_, const at::Tensor& g_out_,
    const at::Tensor& dor_, const at::Tensor& delta_, bool causal, int64_t off, int64_t rel, int64_t bq,
    int64_t bk) {
  at::Tensor qs = rows_contiguous(qs_), k = rows_contiguous(k_), v = rows_contiguous(v_), qr = rows_contiguous(qr_);
  at::Tensor lse = rows_contiguous(lse_), g_out = rows_contiguous(g_out_), dor = rows_contiguous(dor_);
  at::Tensor delta = rows_contiguous(delta_);
  const Shape sh = make_shape(qs, k, qr, causal, off, rel, bq, bk);
  at::Tensor kpad = kpad_.has_value() ? rows_contiguous(*kpad_) : at::Tensor();
  const int64_t pairs = sh.bsz * sh.heads, kblocks = (sh.lk + sh.bk - 1) / sh.bk;
  const int64_t work = pairs * sh.lq * sh.lk * sh.d;
  const bool parallel = at::get_num_threads() > 1 && work >= kParallelWork;
  const int64_t splits =
      parallel && pairs < at::get_num_threads() ? std::min(kblocks, (at::get_num_threads() + pairs - 1) / pairs) : 1;
  at::Tensor gq = at::zeros({splits, sh.bsz, sh.heads, sh.lq, sh.d}, qs.options());
  at::Tensor dsr = at::zeros({splits, sh.bsz, sh.heads, sh.lq, sh.nb}, qs.options());
  at::Tensor gk = at::zeros_like(k), gv = at::zeros_like(v);
  AT_DISPATCH_FLOATING_TYPES(qs.scalar_type(), "relative_backward", [&] {
    using T = scalar_t;
    for_units(pairs * splits, parallel ? kParallelWork : 0, [&](int64_t begin, int64_t end) {
      at::Tensor pbuf = at::empty({sh.bq * sh.bk}, qs.options()), dpbuf = at::empty({sh.bq * sh.bk}, qs.options());
      for (int64_t u = begin; u < end; ++u) {
        const int64_t bh = u / splits, split = u % splits, b = bh / sh.heads, h = bh % sh.heads;
        at::Tensor qsh = qs[b][h], ks = k[b][h], vs = v[b][h], gos = g_out[b][h];
        at::Tensor gqs = gq[split][b][h], gks = gk[b][h], gvs = gv[b][h];
        const T* qrh = qr[b][h].data_ptr<T>();
        const T* dorh = dor[b][h].data_ptr<T>();
        const T* lseh = lse[b][h].data_ptr<T>();
        const T* dlt = delta[b][h].data_ptr<T>();
        T* dsrh = dsr[split][b][h].data_ptr<T>();
        const T* kp = kpad.defined() ? kpad.data_ptr<T>() + b * sh.lk : nullptr;
        for (int64_t kb = split; kb < kblocks; kb += splits) {
          const int64_t j0 = kb * sh.bk, nk = std::min(sh.bk, sh.lk - j0);
          at::Tensor kblk = ks.narrow(0, j0, nk), vblk = vs.narrow(0, j0, nk);
          at::Tensor gkb = gks.narrow(0, j0, nk), gvb = gvs.narrow(0, j0, nk);
          // causal: the first query that sees key j0 is at position j0, row j0 - off
          const int64_t istart = causal ? std::clamp<int64_t>(j0 - sh.off, 0, sh.lq) / sh.bq * sh.bq : 0;
          for (int64_t i0 = istart; i0 < sh.lq; i0 += sh.bq) {
            const int64_t n = std::min(sh.bq, sh.lq - i0);
            at::Tensor p = pbuf.narrow(0, 0, n * nk).view({n, nk}), dp = dpbuf.narrow(0, 0, n * nk).view({n, nk});
            at::Tensor qb = qsh.narrow(0, i0, n), gob = gos.narrow(0, i0, n);
            at::mm_out(p, qb, kblk.t());
            T* pp = p.data_ptr<T>();
            for (int64_t i = 0; i < n; ++i) {
              const int64_t pos = sh.off + i0 + i;
              int64_t a, e, lim;
              sh.segments(pos, j0, nk, a, e, lim);
              const T* qri = qrh + (i0 + i) * sh.nb;
              T* row = pp + i * nk;
              bias_row(row, nk, a, e, lim, qri[0], qri + (j0 + a - pos + sh.rel), qri[sh.nb - 1],
                       kp ? kp + j0 : nullptr);
              // P = exp(s - lse): 0 for masked keys; a row with no visible key has lse = +inf
              if (lseh[i0 + i] == std::numeric_limits<T>::infinity()) std::fill(row, row + nk, T(0));
              else exp_row(row, nk, lseh[i0 + i]);
            }
            gvb.addmm_(p.t(), gob);
            at::mm_out(dp, gob, vblk.t());
            const T* dpp = dp.data_ptr<T>();
            for (int64_t i = 0; i < n; ++i) {
              const int64_t pos = sh.off + i0 + i, r = i0 + i;
              int64_t a, e, lim;
              sh.segments(pos, j0, nk, a, e, lim);
              const T* dori = dorh + r * sh.nb;
              const T dl = dlt[r];
              // dP_ij - D_i = dO_i . v_j + dor[i, bucket] - D_i: -D_i rides on the constants.
              T* dsi = dsrh + r * sh.nb;
              const int64_t c = j0 + a - pos + sh.rel;
              ds_row(pp + i * nk, dpp + i * nk, nk, a, e, dori[0] - dl, dori + c, dl, dori[sh.nb - 1] - dl, dsi,
                     dsi + c, sh.nb - 1);
            }
            gqs.narrow(0, i0, n).addmm_(p, kblk);
            gkb.addmm_(p.t(), qb);
          }
        }
      }
    });
  });
  if (splits > 1) return {gq.sum(0), gk, gv, dsr.sum(0)};
  return {gq[0], gk, gv, dsr[0]};
}

}  // namespace

TORCH_LIBRARY(mixnas_fused_relative, lib) {
  lib.def("forward", &relative_forward);
  lib.def("backward", &relative_backward);
}
