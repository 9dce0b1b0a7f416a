// Pieces shared by the fused linear-attention kernels (fused_linear.cpp: non-causal,
// fused_causal.cpp: causal): feature codes, the row loops of the feature maps and of the
// readout, and the rule that decides when (batch, head) pairs run in parallel.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

namespace {

constexpr int64_t kElu = 0;  // phi(x) = elu(x) + 1, D = d
constexpr int64_t kCos = 1;  // phi(x_i) = [relu(x_i) sin(a_i), relu(x_i) cos(a_i)], a_i = pi i / 2M, D = 2d

// The row loops below are compiled twice, for AVX2 and for the baseline, and the loader picks
// one on the running CPU (gcc function multi-versioning): wide vectors, yet a portable binary
// (-march=native would tie the cached build to the CPU that built it).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ROW_LOOP __attribute__((target_clones("avx2", "default")))
#else
#define ROW_LOOP
#endif

// p[i] = [relu(x_i) sin_i, relu(x_i) cos_i] for n rows (row stride rs); trig holds sin_i, cos_i.
template <typename T>
ROW_LOOP void cos_features(const T* __restrict__ x, int64_t rs, int64_t n, int64_t d,
                           const double* __restrict__ trig, T* __restrict__ p) {
  for (int64_t i = 0; i < n; ++i) {
    const T s = static_cast<T>(trig[2 * i]), c = static_cast<T>(trig[2 * i + 1]);
    const T* __restrict__ xi = x + i * rs;
    T* __restrict__ pi = p + i * 2 * d;
    for (int64_t j = 0; j < d; ++j) {
      const T r = std::max(xi[j], T(0));
      pi[j] = r * s;
      pi[d + j] = r * c;
    }
  }
}

// g_x of one row through phi. cos: relu'(x) (sin g[:d] + cos g[d:]), branch-free (the sign of
// x is random: a branch would mispredict half the time). elu: d phi / dx = min(phi, 1), since
// phi = e^x for x <= 0 and x + 1 above.
template <typename T>
ROW_LOOP void cos_chain(const T* __restrict__ x, const T* __restrict__ g, T s, T c, int64_t d, T* __restrict__ out) {
  for (int64_t j = 0; j < d; ++j) out[j] = static_cast<T>(x[j] > T(0)) * (g[j] * s + g[d + j] * c);
}

template <typename T>
ROW_LOOP void elu_chain(const T* __restrict__ phi, const T* __restrict__ g, int64_t d, T* __restrict__ out) {
  for (int64_t j = 0; j < d; ++j) out[j] = g[j] * std::min(phi[j], T(1));
}

// Forward readout of n rows: num (n, dv+1) -> out = num[:, :dv] / max(num[:, dv], eps), den = num[:, dv].
template <typename T>
ROW_LOOP void readout(const T* __restrict__ num, int64_t n, int64_t dv, T eps, T* __restrict__ out,
                      T* __restrict__ den) {
  for (int64_t i = 0; i < n; ++i) {
    const T* __restrict__ ni = num + i * (dv + 1);
    const T inv = T(1) / std::max(ni[dv], eps);
    for (int64_t j = 0; j < dv; ++j) out[i * dv + j] = ni[j] * inv;
    den[i] = ni[dv];
  }
}

// Backward: g (n, dv+1) holds g_out in its first dv columns; make it G = [g_out / c, -(g_out . out) / c]
// with c = max(den, eps), and no denominator gradient where den was clamped.
template <typename T>
ROW_LOOP void readout_grad(T* __restrict__ g, const T* __restrict__ out, const T* __restrict__ den, int64_t n,
                           int64_t dv, T eps) {
  for (int64_t i = 0; i < n; ++i) {
    T* __restrict__ gi = g + i * (dv + 1);
    const T* __restrict__ oi = out + i * dv;
    const T inv = T(1) / std::max(den[i], eps);
    T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, dot = 0;  // 8 lanes: a sum the compiler can vectorise
    int64_t j = 0;
    for (; j + 8 <= dv; j += 8)
      for (int u = 0; u < 8; ++u) acc[u] += gi[j + u] * oi[j + u];
    for (; j < dv; ++j) dot += gi[j] * oi[j];
    for (int u = 0; u < 8; ++u) dot += acc[u];
    for (j = 0; j < dv; ++j) gi[j] *= inv;
    gi[dv] = den[i] >= eps ? -dot * inv : T(0);
  }
}

// Runs body(b, h) for every (batch, head) pair: in parallel over pairs when there are enough
// of them and enough work (`work`: multiply-adds of one pair), else one pair at a time so that
// the matmuls inside may use the threads. Small calls stay serial: a parallel region's barrier
// costs more than their work, and far more when another process holds a core (a thread that
// finishes first spins while the other waits to be scheduled).
constexpr int64_t kParallelWork = int64_t(1) << 22;

template <typename F>
void for_each_head(int64_t batch, int64_t heads, int64_t work, const F& body) {
  const int64_t pairs = batch * heads;
  auto run = [&](int64_t begin, int64_t end) {
    // The other threads of a parallel region start with grad mode on, whatever the caller's (an
    // autograd Function's forward runs without it): an ATen call there on a view of an input
    // that requires grad would record autograd history, and the out= calls refuse that.
    at::NoGradGuard no_grad;
    for (int64_t bh = begin; bh < end; ++bh) body(bh / heads, bh % heads);
  };
  if (pairs >= at::get_num_threads() && pairs * work >= kParallelWork) at::parallel_for(0, pairs, 1, run);
  else run(0, pairs);
}

at::Tensor last_dim_contiguous(const at::Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); }

}  // namespace
