#include "float_conv.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "activation.h"
#include "conv.h"
#include "threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DWR_X86 1
#endif

namespace dwr {
namespace {

// One output row, scalar: the reference the AVX2 path is tested against.
void conv_row_portable(const FloatConvArgs& a, const float* xp, int Wp, int oy, float* out) {
  const int kC = a.k * a.C;
  std::vector<float> acc(a.O);
  for (int ox = 0; ox < a.OW; ++ox) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int ky = 0; ky < a.k; ++ky) {
      const float* xr =
          xp + (static_cast<int64_t>(oy * a.stride + ky) * Wp + ox * a.stride) * a.C;
      const float* wr = a.w + static_cast<int64_t>(ky) * kC * a.Op;
      for (int j = 0; j < kC; ++j)
        for (int o = 0; o < a.O; ++o) acc[o] += xr[j] * wr[static_cast<int64_t>(j) * a.Op + o];
    }
    float* dst = out + (static_cast<int64_t>(oy) * a.OW + ox) * a.O;
    const ActParams act{a.act_in, a.act_slope, a.act_out};
    for (int o = 0; o < a.O; ++o) dst[o] = activate(acc[o] + a.bias[o], a.act, act, o);
  }
}

#ifdef DWR_X86
// Bias, activation and store of np pixels x nv vectors of conv sums ([np][nv * 8] floats).
__attribute__((target("avx2"))) void finish_block(const FloatConvArgs& a, const float* sums,
                                                  int np, int nv, float* out, int o0) {
  const ActParams act{a.act_in, a.act_slope, a.act_out};
  for (int v = 0; v < nv; ++v) {
    const int o = o0 + 8 * v;
    const __m256 bias = _mm256_loadu_ps(a.bias + o);
    for (int p = 0; p < np; ++p) {
      const __m256 y =
          activate8(_mm256_add_ps(_mm256_loadu_ps(sums + (p * nv + v) * 8), bias), a.act, act, o);
      float* dst = out + static_cast<int64_t>(p) * a.O + o;
      if (o + 8 <= a.O) {
        _mm256_storeu_ps(dst, y);
      } else {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, y);
        for (int i = 0; o + i < a.O; ++i) dst[i] = tmp[i];
      }
    }
  }
}

// NP output pixels x NV vectors of 8 output channels, accumulated in registers.
template <int NP, int NV>
__attribute__((target("avx2,fma"), always_inline)) inline void conv_block(
    const FloatConvArgs& a, const float* x, int64_t row_stride, const float* w, float* out,
    int o0) {
  const int kC = a.k * a.C, xstep = a.stride * a.C, Op = a.Op;
  __m256 acc[NP][NV];
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[p][v] = _mm256_setzero_ps();
  for (int ky = 0; ky < a.k; ++ky) {
    const float* xr = x + ky * row_stride;
    const float* wr = w + static_cast<int64_t>(ky) * kC * Op;
    for (int j = 0; j < kC; ++j) {
      __m256 wv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        wv[v] = _mm256_loadu_ps(wr + static_cast<int64_t>(j) * Op + 8 * v);
        asm("" : "+x"(wv[v]));  // load once into a register, not once per pixel
      }
#pragma GCC unroll 8
      for (int p = 0; p < NP; ++p) {
        const __m256 b = _mm256_broadcast_ss(xr + p * xstep + j);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[p][v] = _mm256_fmadd_ps(b, wv[v], acc[p][v]);
      }
    }
  }
  // The sums leave the registers once, then bias and activation run over the padded channel
  // vectors (padded to Op) and the channels below O are stored.
  alignas(32) float sums[NP][NV * 8];
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) _mm256_store_ps(&sums[p][8 * v], acc[p][v]);
  finish_block(a, &sums[0][0], NP, NV, out, o0);
}

template <int NV>
__attribute__((target("avx2,fma"))) void conv_row_nv(const FloatConvArgs& a, const float* xp,
                                                     int Wp, int oy, int o0, float* out) {
  const int64_t row_stride = static_cast<int64_t>(Wp) * a.C;
  const float* x0 = xp + static_cast<int64_t>(oy) * a.stride * row_stride;
  const float* w = a.w + o0;
  float* orow = out + static_cast<int64_t>(oy) * a.OW * a.O;
  auto at = [&](int ox) { return x0 + static_cast<int64_t>(ox) * a.stride * a.C; };
  auto dst = [&](int ox) { return orow + static_cast<int64_t>(ox) * a.O; };
  int ox = 0;
  for (; ox + 6 <= a.OW; ox += 6) conv_block<6, NV>(a, at(ox), row_stride, w, dst(ox), o0);
  switch (a.OW - ox) {
    case 5: conv_block<5, NV>(a, at(ox), row_stride, w, dst(ox), o0); break;
    case 4: conv_block<4, NV>(a, at(ox), row_stride, w, dst(ox), o0); break;
    case 3: conv_block<3, NV>(a, at(ox), row_stride, w, dst(ox), o0); break;
    case 2: conv_block<2, NV>(a, at(ox), row_stride, w, dst(ox), o0); break;
    case 1: conv_block<1, NV>(a, at(ox), row_stride, w, dst(ox), o0); break;
    default: break;
  }
}

// One output row in blocks of 16 output channels (their weights, k*k*C*16 floats, stay in
// L1 across the row), six pixels at a time: 12 accumulators, and per input value 2 weight
// loads and 6 broadcasts for 12 FMAs.
void conv_row_avx2(const FloatConvArgs& a, const float* xp, int Wp, int oy, float* out) {
  for (int o0 = 0; o0 < a.O; o0 += 16) {
    if (a.Op - o0 >= 16)
      conv_row_nv<2>(a, xp, Wp, oy, o0, out);
    else
      conv_row_nv<1>(a, xp, Wp, oy, o0, out);
  }
}
#endif

}  // namespace

void float_conv(const FloatConvArgs& a, const float* in, float* out) {
  if (a.N == 0 || a.OH == 0 || a.OW == 0) return;
  // A zero-padded copy of each image, so that the inner loops have no bounds checks.
  const int Hp = a.H + 2 * a.pad, Wp = a.W + 2 * a.pad;
  const int64_t img = static_cast<int64_t>(Hp) * Wp * a.C;
  std::vector<float> xp(static_cast<size_t>(a.N) * img, 0.0f);
  for (int n = 0; n < a.N; ++n)
    for (int y = 0; y < a.H; ++y) {
      float* dst = xp.data() + n * img + (static_cast<int64_t>(y + a.pad) * Wp + a.pad) * a.C;
      if (!a.nchw) {
        std::copy_n(in + (static_cast<int64_t>(n) * a.H + y) * a.W * a.C,
                    static_cast<int64_t>(a.W) * a.C, dst);
        continue;
      }
      for (int c = 0; c < a.C; ++c) {
        const float* src = in + ((static_cast<int64_t>(n) * a.C + c) * a.H + y) * a.W;
        for (int x = 0; x < a.W; ++x) dst[static_cast<int64_t>(x) * a.C + c] = src[x];
      }
    }
  const bool avx2 = avx2_enabled();
  parallel_for(a.N * a.OH, [&](int task) {
    const int n = task / a.OH, oy = task % a.OH;
    const float* x = xp.data() + n * img;
    float* o = out + static_cast<int64_t>(n) * a.OH * a.OW * a.O;
#ifdef DWR_X86
    if (avx2) {
      conv_row_avx2(a, x, Wp, oy, o);
      return;
    }
#endif
    conv_row_portable(a, x, Wp, oy, o);
  });
  (void)avx2;
}

namespace {

// The pooling loops over one output pixel's C channels, 8 at a time where AVX2 allows. The
// scalar and vector paths give identical results: the max keeps the current value unless
// the new one is greater (_mm256_max_ps(src, dst) is exactly src > dst ? src : dst), and the
// average adds the window in the same order, then multiplies by the same reciprocal.

// Max over the window of channels c0..C-1 of one output pixel (dst points at its channel 0).
void max_channels(const float* in, int64_t row, int C, int c0, int y0, int y1, int x0, int x1,
                  float* __restrict dst) {
  std::fill(dst + c0, dst + C, -std::numeric_limits<float>::infinity());
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      const float* __restrict src = in + y * row + static_cast<int64_t>(x) * C;
      for (int c = c0; c < C; ++c) dst[c] = src[c] > dst[c] ? src[c] : dst[c];
    }
}

void max_pixel_portable(const float* in, int64_t row, int C, int y0, int y1, int x0, int x1,
                        float* dst) {
  max_channels(in, row, C, 0, y0, y1, x0, x1, dst);
}

// Average over the window of channels c0..C-1 of one output pixel.
void avg_channels(const float* in, int64_t row, int C, int c0, int y0, int y1, int x0, int x1,
                  float* __restrict dst) {
  std::fill(dst + c0, dst + C, 0.0f);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      const float* __restrict src = in + y * row + static_cast<int64_t>(x) * C;
      for (int c = c0; c < C; ++c) dst[c] += src[c];
    }
  const float inv = 1.0f / static_cast<float>((y1 - y0) * (x1 - x0));
  for (int c = c0; c < C; ++c) dst[c] *= inv;
}

void avg_pixel_portable(const float* in, int64_t row, int C, int y0, int y1, int x0, int x1,
                        float* dst) {
  avg_channels(in, row, C, 0, y0, y1, x0, x1, dst);
}

#ifdef DWR_X86
__attribute__((target("avx2"))) void max_pixel_avx2(const float* in, int64_t row, int C,
                                                    int y0, int y1, int x0, int x1,
                                                    float* dst) {
  int c = 0;
  for (; c + 8 <= C; c += 8) {
    __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x)
        m = _mm256_max_ps(_mm256_loadu_ps(in + y * row + static_cast<int64_t>(x) * C + c), m);
    _mm256_storeu_ps(dst + c, m);
  }
  if (c < C) max_channels(in, row, C, c, y0, y1, x0, x1, dst);
}

__attribute__((target("avx2"))) void avg_pixel_avx2(const float* in, int64_t row, int C,
                                                    int y0, int y1, int x0, int x1,
                                                    float* dst) {
  const float inv = 1.0f / static_cast<float>((y1 - y0) * (x1 - x0));
  int c = 0;
  for (; c + 8 <= C; c += 8) {
    __m256 s = _mm256_setzero_ps();
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x)
        s = _mm256_add_ps(s, _mm256_loadu_ps(in + y * row + static_cast<int64_t>(x) * C + c));
    _mm256_storeu_ps(dst + c, _mm256_mul_ps(s, _mm256_set1_ps(inv)));
  }
  if (c < C) avg_channels(in, row, C, c, y0, y1, x0, x1, dst);
}
#endif

using PixelFn = void (*)(const float*, int64_t, int, int, int, int, int, float*);

// Pool window (k x k, stride s, padding p) over every output pixel, rows spread over the
// thread pool; `ceil` rounds the output size up (windows cut by the border shrink).
void pool(const float* in, int N, int H, int W, int C, int k, int s, int p, bool ceil,
          PixelFn pixel, float* out) {
  const int OH = ceil ? (H + 2 * p - k + s - 1) / s + 1 : (H + 2 * p - k) / s + 1;
  const int OW = ceil ? (W + 2 * p - k + s - 1) / s + 1 : (W + 2 * p - k) / s + 1;
  if (N <= 0 || OH <= 0 || OW <= 0) return;
  const int64_t row = static_cast<int64_t>(W) * C;
  parallel_for(N * OH, [&](int task) {
    const int n = task / OH, oy = task % OH;
    const int y0 = std::max(0, oy * s - p), y1 = std::min(H, oy * s - p + k);
    const float* img = in + static_cast<int64_t>(n) * H * row;
    for (int ox = 0; ox < OW; ++ox) {
      const int x0 = std::max(0, ox * s - p), x1 = std::min(W, ox * s - p + k);
      pixel(img, row, C, y0, y1, x0, x1,
            out + ((static_cast<int64_t>(n) * OH + oy) * OW + ox) * C);
    }
  });
}

}  // namespace

void max_pool(const float* in, int N, int H, int W, int C, int k, int s, int p, float* out) {
  PixelFn pixel = max_pixel_portable;
#ifdef DWR_X86
  if (avx2_enabled()) pixel = max_pixel_avx2;
#endif
  pool(in, N, H, W, C, k, s, p, false, pixel, out);
}

void avg_pool_ceil(const float* in, int N, int H, int W, int C, int s, float* out) {
  PixelFn pixel = avg_pixel_portable;
#ifdef DWR_X86
  if (avx2_enabled()) pixel = avg_pixel_avx2;
#endif
  pool(in, N, H, W, C, s, s, 0, true, pixel, out);
}

namespace {

// One block of 64 outputs of one input row (wb: the block's [C][64] weights), scalar: the
// reference the AVX2 path is tested against.
void dense_block_portable(const float* x, int C, const float* wb, const float* bias,
                          float* out) {
  float acc[64] = {};
  for (int c = 0; c < C; ++c)
    for (int o = 0; o < 64; ++o) acc[o] += x[c] * wb[c * 64 + o];
  for (int o = 0; o < 64; ++o) out[o] = acc[o] + bias[o];
}

#ifdef DWR_X86
// Eight accumulator vectors, the block's weights streamed once: the layer is bound by reading
// its weights (2 MB for a 512 -> 1000 classifier), not by arithmetic. Same order of
// operations as the portable path (mul then add, no contraction), so the results are equal.
__attribute__((target("avx2"))) void dense_block_avx2(const float* x, int C, const float* wb,
                                                      const float* bias, float* out) {
  __m256 acc[8];
  for (int v = 0; v < 8; ++v) acc[v] = _mm256_setzero_ps();
  for (int c = 0; c < C; ++c) {
    const __m256 xc = _mm256_set1_ps(x[c]);
    for (int v = 0; v < 8; ++v)
      acc[v] = _mm256_add_ps(acc[v], _mm256_mul_ps(xc, _mm256_loadu_ps(wb + c * 64 + 8 * v)));
  }
  for (int v = 0; v < 8; ++v)
    _mm256_storeu_ps(out + 8 * v, _mm256_add_ps(acc[v], _mm256_loadu_ps(bias + 8 * v)));
}
#endif

}  // namespace

void dense(const float* x, int N, int C, const float* w, const float* bias, int O, float* out) {
  if (N <= 0 || O <= 0) return;
  const int blocks = (O + 63) / 64;
  const bool avx2 = avx2_enabled();
  parallel_for(N * blocks, [&](int task) {
    const int n = task / blocks, b = task % blocks, o0 = b * 64;
    const float* wb = w + static_cast<int64_t>(b) * C * 64;
    alignas(32) float block[64];
#ifdef DWR_X86
    if (avx2)
      dense_block_avx2(x + static_cast<int64_t>(n) * C, C, wb, bias + o0, block);
    else
#endif
      dense_block_portable(x + static_cast<int64_t>(n) * C, C, wb, bias + o0, block);
    std::copy_n(block, std::min(64, O - o0), out + static_cast<int64_t>(n) * O + o0);
  });
  (void)avx2;
}

}  // namespace dwr
