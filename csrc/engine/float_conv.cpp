// The float ops' drivers (stem conv, pools, dense layer): threading and layout; the inner
// loops come from the active kernel table (kernels/).
#include "float_conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/kernels.h"
#include "threads.h"

// The int8 stem's two passes over each image (its max |x|, its quantization) are plain loops
// that the compiler vectorizes; on x86 it also builds AVX2 and AVX-512 copies of them, picked
// at load by CPUID (exact integer and IEEE operations, so every copy gives the same bytes;
// GCC on Linux only: the clones are resolved through an ifunc).
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define DWR_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define DWR_CLONES
#endif

namespace dwr {

namespace {

// A zero-padded NHWC copy of each image, so that the inner loops have no bounds checks; each
// input value passes through cvt (identity, or rounding to bf16). `slack` zeros follow the
// last image (the native bf16 kernel's last pair of taps may read one element past a row).
template <typename T, typename Cvt>
std::vector<T> padded_copy(const FloatConvArgs& a, const float* in, Cvt cvt, int slack) {
  const int Hp = a.H + 2 * a.pad, Wp = a.W + 2 * a.pad;
  const int64_t img = static_cast<int64_t>(Hp) * Wp * a.C;
  std::vector<T> xp(static_cast<size_t>(a.N * img + slack), T(0));
  for (int n = 0; n < a.N; ++n)
    for (int y = 0; y < a.H; ++y) {
      T* dst = xp.data() + n * img + (static_cast<int64_t>(y + a.pad) * Wp + a.pad) * a.C;
      if (!a.nchw) {
        const float* src = in + (static_cast<int64_t>(n) * a.H + y) * a.W * a.C;
        std::transform(src, src + static_cast<int64_t>(a.W) * a.C, dst, cvt);
        continue;
      }
      for (int c = 0; c < a.C; ++c) {
        const float* src = in + ((static_cast<int64_t>(n) * a.C + c) * a.H + y) * a.W;
        for (int x = 0; x < a.W; ++x) dst[static_cast<int64_t>(x) * a.C + c] = cvt(src[x]);
      }
    }
  return xp;
}

// Every output row of every image, one task each, by the table's row kernel.
template <typename T, typename Row>
void conv_rows(const FloatConvArgs& a, const std::vector<T>& xp, Row row, float* out) {
  const int Wp = a.W + 2 * a.pad;
  const int64_t img = static_cast<int64_t>(a.H + 2 * a.pad) * Wp * a.C;
  parallel_for(a.N * a.OH, [&](int task) {
    const int n = task / a.OH, oy = task % a.OH;
    row(a, xp.data() + n * img, Wp, oy, out + static_cast<int64_t>(n) * a.OH * a.OW * a.O);
  });
}

// n values quantized by s > 0 (a loop of its own, so that it vectorizes).
DWR_CLONES void quantize(const float* __restrict src, int64_t n, float s,
                         uint8_t* __restrict dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = int8_quantize(src[i], s);
}

// The int8 stem: each image quantized by its own scale into a u8 copy (xq + 128, padding
// 128), then every row by the int8 row kernel with scale[o] = s_x * wscale[o] of its image.
// The zero-padded f32 copy comes first: quantizing it is one contiguous loop that vectorizes
// (0 quantizes to 128), and its max |x| is the image's.
void float_conv_int8(const FloatConvArgs& a, const float* in, float* out) {
  const int Wp = a.W + 2 * a.pad;
  const int64_t pimg = static_cast<int64_t>(a.H + 2 * a.pad) * Wp * a.C;
  const std::vector<float> xf = padded_copy<float>(a, in, [](float v) { return v; }, 0);
  std::vector<uint8_t> xp(static_cast<size_t>(a.N * pimg + 3), uint8_t{128});
  std::vector<float> scale(static_cast<size_t>(a.N) * a.Op);
  for (int n = 0; n < a.N; ++n) {
    const float* src = xf.data() + n * pimg;
    const float s = int8_input_scale(src, pimg);
    for (int o = 0; o < a.Op; ++o) scale[static_cast<size_t>(n) * a.Op + o] = s * a.wscale[o];
    if (!(s > 0.0f)) continue;  // an all-zero image: every xq is 0 (u8 128)
    quantize(src, pimg, s, xp.data() + n * pimg);
  }
  const auto row = int8_row();
  parallel_for(a.N * a.OH, [&](int task) {
    const int n = task / a.OH, oy = task % a.OH;
    row(a, xp.data() + n * pimg, Wp, oy, scale.data() + static_cast<size_t>(n) * a.Op,
        out + static_cast<int64_t>(n) * a.OH * a.OW * a.O);
  });
}

}  // namespace

DWR_CLONES float int8_input_scale(const float* x, int64_t n) {
  uint32_t m = 0;  // max |x| as bits: non-negative floats order as their bits do
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, x + i, sizeof u);
    m = std::max(m, u & 0x7FFFFFFFu);
  }
  float v;
  std::memcpy(&v, &m, sizeof v);
  return v / 127.0f;
}

void float_conv(const FloatConvArgs& a, const float* in, float* out) {
  if (a.N == 0 || a.OH == 0 || a.OW == 0) return;
  if (a.wq) return float_conv_int8(a, in, out);
  // lambdas, not function pointers: the conversion inlines into the copy's loops
  const auto native = a.bf16 && a.wbf ? native_bf16_row() : nullptr;
  if (native) {
    const auto bits = [](float v) { return bf16_bits(v); };
    return conv_rows(a, padded_copy<uint16_t>(a, in, bits, 2), native, out);
  }
  const auto row = kernels().float_conv_row;
  if (a.bf16)
    return conv_rows(a, padded_copy<float>(a, in, [](float v) { return bf16_round(v); }, 0),
                     row, out);
  conv_rows(a, padded_copy<float>(a, in, [](float v) { return v; }, 0), row, out);
}

namespace {

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
  pool(in, N, H, W, C, k, s, p, false, kernels().max_pixel, out);
}

void avg_pool_ceil(const float* in, int N, int H, int W, int C, int s, float* out) {
  pool(in, N, H, W, C, s, s, 0, true, kernels().avg_pixel, out);
}

void dense(const float* x, int N, int C, const float* w, const float* bias, int O, float* out) {
  if (N <= 0 || O <= 0) return;
  const int blocks = (O + 63) / 64;
  const auto block_fn = kernels().dense_block;
  parallel_for(N * blocks, [&](int task) {
    const int n = task / blocks, b = task % blocks, o0 = b * 64;
    const float* wb = w + static_cast<int64_t>(b) * C * 64;
    alignas(64) float block[64];
    block_fn(x + static_cast<int64_t>(n) * C, C, wb, bias + o0, block);
    std::copy_n(block, std::min(64, O - o0), out + static_cast<int64_t>(n) * O + o0);
  });
}

}  // namespace dwr
