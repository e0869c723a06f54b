// The hand-derived BatchNorm and LayerNorm gradients of batchnorm.py / layernorm.py as CPU loops.
// Same formulas as the torch-op versions there, fused so that each pass reads memory once:
// forward = statistics + one output pass, backward = one reduction pass + one dx pass.
// x is (N, D), contiguous. Statistics are returned in double; inner loops run in T with SIMD.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace {

constexpr int64_t kGrain = 1;  // parallel_for splits over column blocks (BN) or row blocks (LN)

// ---- BatchNorm: statistics per column; threads own disjoint column ranges -----------------
template <typename T>
void bn_forward_cols(const T* x, const T* g, const T* b, T* y, double* mean, double* invstd,
                     int64_t N, int64_t D, double eps, int64_t d0, int64_t d1) {
  const int64_t w = d1 - d0;
  std::vector<T> acc(w, T(0)), m(w), scale(w), shift(w);
  for (int64_t n = 0; n < N; ++n) {
    const T* r = x + n * D + d0;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) acc[j] += r[j];
  }
  for (int64_t j = 0; j < w; ++j) { m[j] = acc[j] / T(N); acc[j] = T(0); }
  for (int64_t n = 0; n < N; ++n) {
    const T* r = x + n * D + d0;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) { const T c = r[j] - m[j]; acc[j] += c * c; }
  }
  for (int64_t j = 0; j < w; ++j) {
    const double is = 1.0 / std::sqrt(double(acc[j]) / double(N) + eps);
    mean[d0 + j] = m[j];
    invstd[d0 + j] = is;
    scale[j] = T(double(g[d0 + j]) * is);
    shift[j] = T(double(b[d0 + j]) - double(m[j]) * double(g[d0 + j]) * is);
  }
  for (int64_t n = 0; n < N; ++n) {
    const T* r = x + n * D + d0;
    T* o = y + n * D + d0;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) o[j] = r[j] * scale[j] + shift[j];
  }
}

// dbeta = sum dy, dgamma = invstd * sum dy * (x - mean),
// dx = gamma * invstd * (dy - dbeta / N - (x - mean) * invstd^2 * sum(dy * (x - mean)) / N)
//    = a * dy + c * x + e, per column.
template <typename T>
void bn_backward_cols(const T* dy, const T* x, const double* mean, const double* invstd,
                      const T* g, T* dx, T* dg, T* db, int64_t N, int64_t D, int64_t d0,
                      int64_t d1) {
  const int64_t w = d1 - d0;
  std::vector<T> sdy(w, T(0)), sdyc(w, T(0)), m(w), a(w), c(w), e(w);
  for (int64_t j = 0; j < w; ++j) m[j] = T(mean[d0 + j]);
  for (int64_t n = 0; n < N; ++n) {
    const T* u = dy + n * D + d0;
    const T* r = x + n * D + d0;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) { sdy[j] += u[j]; sdyc[j] += u[j] * (r[j] - m[j]); }
  }
  for (int64_t j = 0; j < w; ++j) {
    const double is = invstd[d0 + j], aj = double(g[d0 + j]) * is;
    const double cj = -aj * is * is * double(sdyc[j]) / double(N);
    a[j] = T(aj);
    c[j] = T(cj);
    e[j] = T(-aj * double(sdy[j]) / double(N) - cj * mean[d0 + j]);
    db[d0 + j] = sdy[j];
    dg[d0 + j] = T(double(sdyc[j]) * is);
  }
  for (int64_t n = 0; n < N; ++n) {
    const T* u = dy + n * D + d0;
    const T* r = x + n * D + d0;
    T* o = dx + n * D + d0;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) o[j] = a[j] * u[j] + c[j] * r[j] + e[j];
  }
}

// ---- LayerNorm: statistics per row; threads own disjoint row ranges ------------------------
template <typename T>
void ln_forward_rows(const T* x, const T* g, const T* b, T* y, double* mean, double* rstd,
                     int64_t D, double eps, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) {
    const T* r = x + n * D;
    T* o = y + n * D;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < D; ++d) s += r[d];
    const T mu = s / T(D);
    T q = 0;
#pragma omp simd reduction(+ : q)
    for (int64_t d = 0; d < D; ++d) { const T c = r[d] - mu; q += c * c; }
    const double rs = 1.0 / std::sqrt(double(q) / double(D) + eps);
    mean[n] = mu;
    rstd[n] = rs;
    const T t = T(rs);
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) o[d] = (r[d] - mu) * t * g[d] + b[d];
  }
}

// With x_hat = (x - mean) * rstd and gy = dy * gamma:
// dx = rstd * (gy - mean_d(gy) - x_hat * mean_d(gy * x_hat)); dgamma += dy * x_hat; dbeta += dy.
template <typename T>
void ln_backward_rows(const T* dy, const T* x, const double* mean, const double* rstd,
                      const T* g, T* dx, T* dg, T* db, int64_t D, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) {
    const T* u = dy + n * D;
    const T* r = x + n * D;
    T* o = dx + n * D;
    const T mu = T(mean[n]), rs = T(rstd[n]);
    T s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
    for (int64_t d = 0; d < D; ++d) {
      const T xh = (r[d] - mu) * rs, gy = u[d] * g[d];
      s1 += gy;
      s2 += gy * xh;
      dg[d] += u[d] * xh;
      db[d] += u[d];
    }
    const T m1 = s1 / T(D), m2 = s2 / T(D);
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) {
      const T xh = (r[d] - mu) * rs;
      o[d] = rs * (u[d] * g[d] - m1 - xh * m2);
    }
  }
}

void check(const torch::Tensor& x, const torch::Tensor& g) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && x.device().is_cpu(),
              "norm kernels take a contiguous (N, D) CPU tensor, got ", x.sizes());
  TORCH_CHECK(g.is_contiguous() && g.numel() == x.size(1) && g.scalar_type() == x.scalar_type(),
              "gamma/beta must be contiguous with D = ", x.size(1), " elements of x's dtype");
}

}  // namespace

// (y, mean, 1/std): statistics per row (LayerNorm) or per column (BatchNorm), in double.
std::vector<torch::Tensor> norm_forward(torch::Tensor x, torch::Tensor g, torch::Tensor b,
                                        double eps, bool per_row) {
  check(x, g);
  check(x, b);
  const int64_t N = x.size(0), D = x.size(1), S = per_row ? N : D;
  auto y = torch::empty_like(x);
  auto mean = torch::empty({S}, x.options().dtype(torch::kDouble));
  auto invstd = torch::empty({S}, x.options().dtype(torch::kDouble));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "norm_forward", [&] {
    const scalar_t *px = x.data_ptr<scalar_t>(), *pg = g.data_ptr<scalar_t>();
    const scalar_t* pb = b.data_ptr<scalar_t>();
    scalar_t* py = y.data_ptr<scalar_t>();
    double *pm = mean.data_ptr<double>(), *ps = invstd.data_ptr<double>();
    at::parallel_for(0, S, kGrain, [&](int64_t s0, int64_t s1) {
      if (per_row)
        ln_forward_rows<scalar_t>(px, pg, pb, py, pm, ps, D, eps, s0, s1);
      else
        bn_forward_cols<scalar_t>(px, pg, pb, py, pm, ps, N, D, eps, s0, s1);
    });
  });
  return {y, mean, invstd};
}

// (dx, dgamma, dbeta). LayerNorm sums dgamma and dbeta over rows: one partial sum per row block,
// added up at the end; BatchNorm's threads own whole columns.
std::vector<torch::Tensor> norm_backward(torch::Tensor dy, torch::Tensor x, torch::Tensor mean,
                                         torch::Tensor invstd, torch::Tensor g, bool per_row) {
  check(x, g);
  check(dy, g);
  const int64_t N = x.size(0), D = x.size(1);
  const int64_t threads = std::min<int64_t>(N, at::get_num_threads());
  const int64_t blocks = per_row ? std::max<int64_t>(1, threads) : 1;
  auto dx = torch::empty_like(x);
  auto partial = torch::zeros({blocks, 2, D}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "norm_backward", [&] {
    const scalar_t *pdy = dy.data_ptr<scalar_t>(), *px = x.data_ptr<scalar_t>();
    const scalar_t* pg = g.data_ptr<scalar_t>();
    const double *pm = mean.data_ptr<double>(), *ps = invstd.data_ptr<double>();
    scalar_t *pdx = dx.data_ptr<scalar_t>(), *p = partial.data_ptr<scalar_t>();
    if (!per_row) {
      at::parallel_for(0, D, kGrain, [&](int64_t d0, int64_t d1) {
        bn_backward_cols<scalar_t>(pdy, px, pm, ps, pg, pdx, p, p + D, N, D, d0, d1);
      });
      return;
    }
    at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t n0 = N * k / blocks, n1 = N * (k + 1) / blocks;
        ln_backward_rows<scalar_t>(pdy, px, pm, ps, pg, pdx, p + 2 * k * D, p + (2 * k + 1) * D,
                                   D, n0, n1);
      }
    });
  });
  auto sums = partial.sum(0);
  return {dx, sums[0].contiguous(), sums[1].contiguous()};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("norm_forward", &norm_forward, "BatchNorm/LayerNorm forward: y, mean, 1/std");
  m.def("norm_backward", &norm_backward, "BatchNorm/LayerNorm backward: dx, dgamma, dbeta");
}
