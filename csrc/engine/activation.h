// Scalar rules shared by every kernel table: the activations (Act of conv.h), the sign
// convention of packed bits, and the pooling loops the vector kernels use for their tails.
// The vector forms in kernels/ do the same operations in the same order, so every ISA
// rounds identically.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>

#include "conv.h"

namespace dwr {

// RPReLU vectors: prelu(y + in[o], slope[o]) + out[o].
struct ActParams {
  const float* in;
  const float* slope;
  const float* out;
};

inline float activate(float y, int act, const ActParams& p, int o) {
  if (act == ACT_HARDTANH) {
    y = y < -1.0f ? -1.0f : y;
    y = y > 1.0f ? 1.0f : y;
  } else if (act == ACT_RPRELU) {
    const float t = y + p.in[o];
    y = (t >= 0.0f ? t : p.slope[o] * t) + p.out[o];
  }
  return y;
}

// The sign convention of packed activations: bit set (value -1) where !(x + shift >= 0), so
// 0 and -0 pack as +1 and NaN as -1, exactly like dwr's sign in PyTorch.
inline bool negative(float x, const float* shift, int c) {
  return !((shift ? x + shift[c] : x) >= 0.0f);
}

// Max over the window of channels c0..C-1 of one output pixel (dst points at its channel 0):
// the max keeps the current value unless the new one is greater, as the vector max does.
inline void max_channels(const float* in, int64_t row, int C, int c0, int y0, int y1, int x0,
                         int x1, float* __restrict dst) {
  std::fill(dst + c0, dst + C, -std::numeric_limits<float>::infinity());
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      const float* __restrict src = in + y * row + static_cast<int64_t>(x) * C;
      for (int c = c0; c < C; ++c) dst[c] = src[c] > dst[c] ? src[c] : dst[c];
    }
}

// Average over the window of channels c0..C-1 of one output pixel: the window summed in
// order, then multiplied by the reciprocal of its size.
inline void avg_channels(const float* in, int64_t row, int C, int c0, int y0, int y1, int x0,
                         int x1, float* __restrict dst) {
  std::fill(dst + c0, dst + C, 0.0f);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      const float* __restrict src = in + y * row + static_cast<int64_t>(x) * C;
      for (int c = c0; c < C; ++c) dst[c] += src[c];
    }
  const float inv = 1.0f / static_cast<float>((y1 - y0) * (x1 - x0));
  for (int c = c0; c < C; ++c) dst[c] *= inv;
}

}  // namespace dwr
