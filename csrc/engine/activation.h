// The activations a layer output can go through (Act of conv.h), for one value and for eight
// channels at once; shared by the binary conv epilogue and the float conv. Both forms do the
// same operations in the same order, so scalar and AVX2 paths round identically.
#pragma once
#include <cstdint>

#include "conv.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

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

#if defined(__x86_64__) || defined(__i386__)
// Channels o..o+7 of y.
__attribute__((target("avx2"), always_inline)) inline __m256 activate8(__m256 y, int act,
                                                                      const ActParams& p,
                                                                      int o) {
  if (act == ACT_HARDTANH) {
    y = _mm256_max_ps(_mm256_set1_ps(-1.0f), y);  // (-1 > y) ? -1 : y, as the scalar form
    y = _mm256_min_ps(_mm256_set1_ps(1.0f), y);   // (1 < y) ? 1 : y
  } else if (act == ACT_RPRELU) {
    const __m256 t = _mm256_add_ps(y, _mm256_loadu_ps(p.in + o));
    const __m256 neg = _mm256_mul_ps(_mm256_loadu_ps(p.slope + o), t);
    y = _mm256_blendv_ps(neg, t, _mm256_cmp_ps(t, _mm256_setzero_ps(), _CMP_GE_OQ));
    y = _mm256_add_ps(y, _mm256_loadu_ps(p.out + o));
  }
  return y;
}
#endif

}  // namespace dwr
