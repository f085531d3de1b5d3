// Real-valued parts of a BNN on the engine's own thread pool: the stem convolution (BN
// folded, activation fused) and max-pooling, on NHWC float32.
//
// Keeping them out of PyTorch matters for threading: two pools that both spin between jobs
// (PyTorch's OpenMP team and ours) starve each other on a few cores, so before this the
// stem ran on one thread and capped end-to-end scaling.
#pragma once
#include <cstdint>

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
};

// out[n][y][x][o] = act(bias[o] + sum_{ky,kx,c} in[n][y*s+ky-p][x*s+kx-p][c] * w[ky][kx][c][o]).
// The kernel works on a zero-padded NHWC copy of the input, so an NCHW input (a.nchw) costs
// nothing extra: the copy transposes it.
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
