// Real-valued parts of a BNN on the engine's own thread pool: the stem convolution (BN
// folded, activation fused) and max-pooling, on NHWC float32.
//
// Keeping them out of PyTorch matters for threading: two pools that both spin between jobs
// (PyTorch's OpenMP team and ours) starve each other on a few cores, so before this the
// stem ran on one thread and capped end-to-end scaling.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace dwr {

struct FloatConvArgs {
  int N, H, W, C;           // input NHWC
  int O, Op;                // output channels, and O rounded up to 8 (packed weight)
  int k, stride, pad;       // square kernel, zero padding
  int OH, OW;
  const float* w;           // [k][k][C][Op]: tap-major, output channels innermost
  const float* bias;        // [O]
  int act;                  // Act of conv.h
  const float* act_in;      // RPReLU vectors, [O] each
  const float* act_slope;
  const float* act_out;
  bool nchw = false;        // input laid out [N][C][H][W] (the model's input), not NHWC
  // The bf16 stem: the input is rounded to bf16 (to nearest, ties to even) in the padded
  // copy, and w must hold bf16 values already (rounded at convert time); the products are
  // then exact in f32 and add up in f32. wbf holds the same weights as bf16 pairs along the
  // taps, [k][ceil(k*C/2)][Op][2] (a zero pads an odd k*C), for tables with a native bf16
  // kernel; tables without one run float_conv_row on the rounded f32 values.
  bool bf16 = false;
  const uint16_t* wbf = nullptr;
  // The int8 stem (set wq): weights quantized per output channel at convert time, wq[o] =
  // round(w[o] / wscale[o]) in [-127, 127], as quads along the taps, [k][ceil(k*C/4)][Op][4]
  // (zeros pad the last quad), and wsum[o] = sum of wq[o] over all taps. Each image is
  // quantized on the fly, xq = round(x / s_x) with s_x = max|x| / 127, and stored as u8
  // xq + 128 (padding 128): sum (xq + 128) wq - 128 wsum is the exact int32 dot product on
  // every ISA, and the epilogue float(dot) * (s_x * wscale[o]) + bias[o] rounds identically.
  const int8_t* wq = nullptr;
  const int32_t* wsum = nullptr;
  const float* wscale = nullptr;
  const float* row_scale = nullptr;  // s_x * wscale[o] of the row's image (set per row)
};

// The bf16 bits of x, rounded to nearest, ties to even (a NaN stays a quiet NaN).
inline uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// x rounded to the nearest bf16 value, as a float.
inline float bf16_round(float x) {
  const uint32_t u = static_cast<uint32_t>(bf16_bits(x)) << 16;
  float y;
  std::memcpy(&y, &u, sizeof y);
  return y;
}

// The input scale of one image (n values): s_x = max|x| / 127, in f32.
float int8_input_scale(const float* x, int64_t n);

// Finite x quantized by s_x > 0 (the int8 stem): round(x / s_x) to nearest, ties to even (by
// adding and subtracting 1.5 * 2^23), clamped to [-127, 127], plus 128. No float compares,
// so that loops of it vectorize.
inline uint8_t int8_quantize(float x, float s) {
  const int q = static_cast<int>((x / s + 12582912.0f) - 12582912.0f);
  return static_cast<uint8_t>(std::min(std::max(q, -127), 127) + 128);
}

// out[n][y][x][o] = act(bias[o] + sum_{ky,kx,c} in[n][y*s+ky-p][x*s+kx-p][c] * w[ky][kx][c][o]).
// The kernel works on a zero-padded NHWC copy of the input, so an NCHW input (a.nchw) costs
// nothing extra: the copy transposes it (and rounds it to bf16 with a.bf16).
void float_conv(const FloatConvArgs& a, const float* in, float* out);

// Max-pool k x k, stride s, padding p (padded positions never win), floor mode, NHWC.
void max_pool(const float* in, int N, int H, int W, int C, int k, int s, int p, float* out);

// Average pool s x s, stride s, ceil mode, no padding: a window cut by the border averages
// only its pixels (PyTorch's AvgPool2d(s, s, ceil_mode=True, count_include_pad=False)).
void avg_pool_ceil(const float* in, int N, int H, int W, int C, int s, float* out);

// Fully connected layer: out[n][o] = bias[o] + sum_c x[n][c] * w[o / 64][c][o % 64]. The
// weight is stored in blocks of 64 outputs ([ceil(O/64)][C][64], zero padded), each block
// contiguous: one task streams one block. bias is padded to a multiple of 64 too.
void dense(const float* x, int N, int C, const float* w, const float* bias, int O, float* out);

}  // namespace dwr
