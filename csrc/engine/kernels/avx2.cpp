// The AVX2 kernels. Every function carries its own target attribute, so the module is built
// for the baseline ISA and loads on any x86-64; dispatch.cpp uses this table only where
// CPUID reports AVX2, FMA and POPCNT.
#include "epilogue_dispatch.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "../activation.h"

#define DWR_AVX2 __attribute__((target("avx2,fma,popcnt")))
#define DWR_AVX2_INLINE __attribute__((target("avx2,fma,popcnt"), always_inline)) inline

namespace dwr {
namespace {

constexpr uint64_t kLowNibbles = 0x0F0F0F0F0F0F0F0FULL;  // low nibble of every byte

// Channels o..o+7 of y, as activate() does for one.
DWR_AVX2_INLINE __m256 activate8(__m256 y, int act, const ActParams& p, int o) {
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

// negative() for eight channels c..c+7: bit i of the result is channel c + i.
DWR_AVX2_INLINE int negative8(__m256 x, const float* shift, int c) {
  if (shift) x = _mm256_add_ps(x, _mm256_loadu_ps(shift + c));
  return _mm256_movemask_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NGE_UQ));
}

// ---------------------------------------------------------------------------------------
// The GEMM works on *nibble-split* operands: a word x becomes the pair
// (x & 0x0F.., (x >> 4) & 0x0F..), the low and the high nibble of every byte. XOR commutes
// with the split, so popcount(x ^ w) = sum over bytes of LUT[xl ^ wl] + LUT[xh ^ wh], and the
// masking and shifting of the nibble-lookup popcount is done once per operand word instead of
// once per (pixel, output group, word): 6 vector ops per 256 binary MACs instead of 8.

void split_words(const uint64_t* src, int64_t n, uint64_t* dst) {
  for (int64_t i = 0; i < n; ++i) {
    dst[2 * i] = src[i] & kLowNibbles;
    dst[2 * i + 1] = (src[i] >> 4) & kLowNibbles;
  }
}

// Lane-layout weights [Op/4][K][4] -> [Op/4][K][2][4]: the four low-nibble words of step k,
// then the four high-nibble words.
int64_t weight_words(int Op, int K) { return static_cast<int64_t>(Op) * K * 2; }

void split_weight_lanes(const uint64_t* w, int Op, int K, uint64_t* dst) {
  const int64_t steps = static_cast<int64_t>(Op / 4) * K;
  for (int64_t s = 0; s < steps; ++s)
    for (int l = 0; l < 4; ++l) {
      dst[8 * s + l] = w[4 * s + l] & kLowNibbles;
      dst[8 * s + 4 + l] = (w[4 * s + l] >> 4) & kLowNibbles;
    }
}

// NP split rows of A ([K][2] words each) against NG groups of four outputs (group g's
// weights at b + g * gstride, [K][2][4] words each). Each broadcast input word serves NG
// groups. The per-byte lookups accumulate in byte counters; a word adds at most 8 per byte,
// so they are flushed (vpsadbw into the 64-bit lanes) every 31 words.
template <int NP, int NG>
DWR_AVX2_INLINE void popgemm_block(const uint64_t* a, int K, const __m256i* b, int64_t gstride,
                                   int32_t* out, int ldp) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1,
                                       1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i zero = _mm256_setzero_si256();
  const int64_t row = 2 * static_cast<int64_t>(K);
  __m256i sum[NP][NG];
  for (int k0 = 0; k0 < K; k0 += 31) {
    const int k1 = std::min(K, k0 + 31);
    __m256i cnt[NP][NG];
    for (int p = 0; p < NP; ++p)
      for (int q = 0; q < NG; ++q) cnt[p][q] = zero;
    for (int k = k0; k < k1; ++k) {
      __m256i wl[NG], wh[NG];
      for (int q = 0; q < NG; ++q) {
        wl[q] = _mm256_loadu_si256(b + q * gstride + 2 * k);
        wh[q] = _mm256_loadu_si256(b + q * gstride + 2 * k + 1);
      }
      for (int p = 0; p < NP; ++p) {
        const uint64_t* x = a + p * row + 2 * k;
        const __m256i xl = _mm256_set1_epi64x(static_cast<long long>(x[0]));
        const __m256i xh = _mm256_set1_epi64x(static_cast<long long>(x[1]));
        for (int q = 0; q < NG; ++q) {
          const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_xor_si256(xl, wl[q]));
          const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_xor_si256(xh, wh[q]));
          cnt[p][q] = _mm256_add_epi8(cnt[p][q], _mm256_add_epi8(lo, hi));
        }
      }
    }
    // the first flush sets the sums (a K of up to 31 words, the common case, flushes once)
    for (int p = 0; p < NP; ++p)
      for (int q = 0; q < NG; ++q) {
        const __m256i c = _mm256_sad_epu8(cnt[p][q], zero);
        sum[p][q] = k0 == 0 ? c : _mm256_add_epi64(sum[p][q], c);
      }
  }
  // The four 64-bit lane sums of a group hold counts < 2^31: keep their low halves, in
  // order. Two groups pack into one vector of 8 outputs (shuffle, then fix the lane order).
  for (int p = 0; p < NP; ++p) {
    int32_t* dst = out + static_cast<int64_t>(p) * ldp;
    if (NG == 2) {
      const __m256 lo = _mm256_castsi256_ps(sum[p][0]), hi = _mm256_castsi256_ps(sum[p][1]);
      const __m256i mixed = _mm256_castps_si256(_mm256_shuffle_ps(lo, hi, 0x88));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst),
                          _mm256_permute4x64_epi64(mixed, 0xD8));
    } else {
      const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
      for (int q = 0; q < NG; ++q)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 4 * q),
                         _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(sum[p][q], even)));
    }
  }
}

// A: split rows [M][K][2]; B: split weights [Op/4][K][2][4]. Tiles of 3 pixels x 8 outputs
// (6 byte counters, 4 weight vectors, 2 broadcasts and the lookup table fit 16 registers).
DWR_AVX2 void popgemm(const uint64_t* A, int M, const uint64_t* B, int Op, int K, int32_t* pop,
                      int ldp) {
  const int64_t row = 2 * static_cast<int64_t>(K);
  const int64_t gstride = 2 * static_cast<int64_t>(K);  // in 256-bit units
  const int groups = Op / 4;
  for (int g = 0; g < groups; g += 2) {
    const __m256i* b = reinterpret_cast<const __m256i*>(B + static_cast<int64_t>(g) * K * 8);
    int32_t* out = pop + 4 * g;
    const bool two = g + 1 < groups;
    int i = 0;
    for (; i + 3 <= M; i += 3) {
      int32_t* o = out + static_cast<int64_t>(i) * ldp;
      if (two)
        popgemm_block<3, 2>(A + i * row, K, b, gstride, o, ldp);
      else
        popgemm_block<3, 1>(A + i * row, K, b, gstride, o, ldp);
    }
    for (; i < M; ++i) {
      int32_t* o = out + static_cast<int64_t>(i) * ldp;
      if (two)
        popgemm_block<1, 2>(A + i * row, K, b, gstride, o, ldp);
      else
        popgemm_block<1, 1>(A + i * row, K, b, gstride, o, ldp);
    }
  }
}

DWR_AVX2 void pack_row(const float* x, const float* shift, int C, uint64_t* bits) {
  const int Cw = (C + 63) / 64;
  for (int w = 0; w < Cw; ++w) {
    uint64_t word = 0;
    const int c0 = w * 64;
    const int c1 = std::min(C, c0 + 64);
    int c = c0;
    for (; c + 8 <= c1; c += 8)
      word |= static_cast<uint64_t>(negative8(_mm256_loadu_ps(x + c), shift, c)) << (c - c0);
    for (; c < c1; ++c)
      if (negative(x[c], shift, c)) word |= 1ULL << (c - c0);
    bits[w] = word;
  }
}

// ---------------------------------------------------------------------------------------
// The float epilogue, eight channels at a time with the same operations in the same order as
// the portable one (no FMA contraction, see CMakeLists.txt): bit-identical outputs.

DWR_AVX2_INLINE __m256i dots8(const Dots& d, int r, int o) {
  const __m256i p = _mm256_loadu_si256(
      reinterpret_cast<const __m256i*>(d.pop + static_cast<int64_t>(r) * d.ld + o));
  return _mm256_sub_epi32(_mm256_set1_epi32(d.full[r]), _mm256_slli_epi32(p, 1));
}

// Lanes of `mask` only (the last, partial group of eight channels; the rest read as 0).
DWR_AVX2_INLINE __m256i dots8_masked(const Dots& d, int r, int o, __m256i mask) {
  const __m256i p = _mm256_maskload_epi32(d.pop + static_cast<int64_t>(r) * d.ld + o, mask);
  return _mm256_sub_epi32(_mm256_set1_epi32(d.full[r]), _mm256_slli_epi32(p, 1));
}

// The per-channel vectors of channels [o8, o1), o1 - o8 < 8, copied into eight zero-padded
// lanes, so the last partial group of a width that is not a multiple of 8 runs in AVX2 too
// (a scalar tail cost 2x the whole conv at 31 channels on 32x32 pixels).
struct Tail8 {
  alignas(32) float scale[8] = {}, bias[8] = {}, in[8] = {}, slope[8] = {}, out[8] = {},
                    shift_v[8] = {};
  ActParams act{in, slope, out};  // points into this object: it is never copied
  const float* shift = nullptr;
  __m256i mask;
  int lanes = 0;
  Tail8(const Tail8&) = delete;
  Tail8& operator=(const Tail8&) = delete;
  DWR_AVX2 Tail8(const Epilogue& ep, int o8, int o1) {
    alignas(32) int32_t m[8] = {};
    for (int i = 0; i < o1 - o8; ++i) {
      const int o = o8 + i;
      m[i] = -1;
      scale[i] = ep.scale[o];
      bias[i] = ep.bias[o];
      if (ep.act_in) in[i] = ep.act_in[o];
      if (ep.act_slope) slope[i] = ep.act_slope[o];
      if (ep.act_out) out[i] = ep.act_out[o];
      if (ep.next_shift) shift_v[i] = ep.next_shift[o];
    }
    mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(m));
    lanes = (1 << std::max(0, o1 - o8)) - 1;
    shift = ep.next_shift ? shift_v : nullptr;
  }
};

template <int ACT, bool RES>
DWR_AVX2 void epilogue_act(const ConvGeom& g, const Epilogue& ep, const Dots& dots, int64_t p0,
                           int m, int o0, int o1) {
  const ActParams act{ep.act_in, ep.act_slope, ep.act_out};
  const int O = g.O, O8 = o0 + ((o1 - o0) & ~7), ocw = (g.O + 63) / 64;
  const Tail8 tail(ep, O8, o1);
  for (int r = 0; r < m; ++r) {
    float* out = ep.out_float + (p0 + r) * O;
    const float* res = RES ? ep.residual + (p0 + r) * O : nullptr;
    uint64_t* bits = ep.next_bits ? ep.next_bits + (p0 + r) * ocw : nullptr;
    uint64_t word = 0;  // the sign bits of the current 64 channels, while packing
    for (int o = o0; o < O8; o += 8) {
      const __m256 dot = _mm256_cvtepi32_ps(dots8(dots, r, o));
      __m256 y = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(ep.scale + o), dot),
                               _mm256_loadu_ps(ep.bias + o));
      if (RES) y = _mm256_add_ps(y, _mm256_loadu_ps(res + o));
      y = activate8(y, ACT, act, o);
      _mm256_storeu_ps(out + o, y);
      if (bits) {
        word |= static_cast<uint64_t>(negative8(y, ep.next_shift, o)) << (o & 63);
        if ((o & 63) == 56) {
          bits[o >> 6] = word;
          word = 0;
        }
      }
    }
    if (O8 < o1) {  // the last o1 - O8 < 8 channels: masked loads and stores, same arithmetic
      const __m256 dot = _mm256_cvtepi32_ps(dots8_masked(dots, r, O8, tail.mask));
      __m256 y = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(tail.scale), dot),
                               _mm256_loadu_ps(tail.bias));
      if (RES) y = _mm256_add_ps(y, _mm256_maskload_ps(res + O8, tail.mask));
      y = activate8(y, ACT, tail.act, 0);
      _mm256_maskstore_ps(out + O8, tail.mask, y);
      if (bits)
        word |= static_cast<uint64_t>(negative8(y, tail.shift, 0) & tail.lanes) << (O8 & 63);
    }
    if (bits && (o1 & 63) != 0) bits[(o1 - 1) >> 6] = word;  // the last, partial word
  }
}

void epilogue_float(const ConvGeom& g, const Epilogue& ep, const Dots& dots, int64_t p0, int m,
                    int o0, int o1) {
  dispatch_epilogue(ep, [&](auto act, auto res) {
    epilogue_act<decltype(act)::value, decltype(res)::value>(g, ep, dots, p0, m, o0, o1);
  });
}

// ---------------------------------------------------------------------------------------
// The float conv (the stem): bias, activation and store of np pixels x nv vectors of conv
// sums ([np][nv * 8] floats).
DWR_AVX2 void finish_block(const FloatConvArgs& a, const float* sums, int np, int nv,
                           float* out, int o0) {
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
DWR_AVX2_INLINE void conv_block(const FloatConvArgs& a, const float* x, int64_t row_stride,
                                const float* w, float* out, int o0) {
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
DWR_AVX2 void conv_row_nv(const FloatConvArgs& a, const float* xp, int Wp, int oy, int o0,
                          float* out) {
  const int64_t row_stride = static_cast<int64_t>(Wp) * a.C;
  const float* x0 = xp + static_cast<int64_t>(oy) * a.stride * row_stride;
  const float* w = a.w + o0;
  float* orow = out + static_cast<int64_t>(oy) * a.OW * a.O;
  const int64_t xs = static_cast<int64_t>(a.stride) * a.C;
  int ox = 0;
  for (; ox + 6 <= a.OW; ox += 6)
    conv_block<6, NV>(a, x0 + ox * xs, row_stride, w, orow + static_cast<int64_t>(ox) * a.O,
                      o0);
  const float* x = x0 + ox * xs;
  float* dst = orow + static_cast<int64_t>(ox) * a.O;
  switch (a.OW - ox) {
    case 5: conv_block<5, NV>(a, x, row_stride, w, dst, o0); break;
    case 4: conv_block<4, NV>(a, x, row_stride, w, dst, o0); break;
    case 3: conv_block<3, NV>(a, x, row_stride, w, dst, o0); break;
    case 2: conv_block<2, NV>(a, x, row_stride, w, dst, o0); break;
    case 1: conv_block<1, NV>(a, x, row_stride, w, dst, o0); break;
    default: break;
  }
}

// One output row in blocks of 16 output channels (their weights, k*k*C*16 floats, stay in
// L1 across the row), six pixels at a time: 12 accumulators, and per input value 2 weight
// loads and 6 broadcasts for 12 FMAs.
void float_conv_row(const FloatConvArgs& a, const float* xp, int Wp, int oy, float* out) {
  for (int o0 = 0; o0 < a.O; o0 += 16) {
    if (a.Op - o0 >= 16)
      conv_row_nv<2>(a, xp, Wp, oy, o0, out);
    else
      conv_row_nv<1>(a, xp, Wp, oy, o0, out);
  }
}

// ---------------------------------------------------------------------------------------
// Pools and the dense layer, eight channels at a time, scalar tails; same results as the
// portable loops (_mm256_max_ps(src, dst) is exactly src > dst ? src : dst).

DWR_AVX2 void max_pixel(const float* in, int64_t row, int C, int y0, int y1, int x0, int x1,
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

DWR_AVX2 void avg_pixel(const float* in, int64_t row, int C, int y0, int y1, int x0, int x1,
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

// Eight accumulator vectors, the block's weights streamed once: the layer is bound by reading
// its weights (2 MB for a 512 -> 1000 classifier), not by arithmetic. Mul then add, in the
// portable order: equal results.
DWR_AVX2 void dense_block(const float* x, int C, const float* wb, const float* bias,
                          float* out) {
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

// The GEMM's 3 x 2 tile on nibble-split operands: per pair of 256-bit words two XORs, two
// lookups and two byte adds (the byte counters may wrap: only the instruction count matters).
DWR_AVX2 uint64_t popcount_peak(int64_t iters) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1,
                                       1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i step = _mm256_set1_epi64x(0x0101010101010101LL);
  __m256i cnt[3][2], xl[3], xh[3], wl[2], wh[2];
  for (int p = 0; p < 3; ++p) {
    xl[p] = _mm256_set1_epi8(static_cast<char>(p + 1));
    xh[p] = _mm256_set1_epi8(static_cast<char>(p + 5));
    for (int q = 0; q < 2; ++q) cnt[p][q] = _mm256_setzero_si256();
  }
  for (int q = 0; q < 2; ++q) wl[q] = wh[q] = _mm256_set1_epi8(static_cast<char>(q + 9));
  for (int64_t i = 0; i < iters; ++i) {
    for (int q = 0; q < 2; ++q) {
      wl[q] = _mm256_and_si256(_mm256_add_epi8(wl[q], step), _mm256_set1_epi8(0x0F));
      wh[q] = _mm256_and_si256(_mm256_add_epi8(wh[q], step), _mm256_set1_epi8(0x0F));
    }
    for (int p = 0; p < 3; ++p)
      for (int q = 0; q < 2; ++q) {
        const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_xor_si256(xl[p], wl[q]));
        const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_xor_si256(xh[p], wh[q]));
        cnt[p][q] = _mm256_add_epi8(cnt[p][q], _mm256_add_epi8(lo, hi));
      }
  }
  __m256i s = _mm256_setzero_si256();
  for (int p = 0; p < 3; ++p)
    for (int q = 0; q < 2; ++q) s = _mm256_add_epi64(s, _mm256_sad_epu8(cnt[p][q], s));
  return static_cast<uint64_t>(_mm256_extract_epi64(s, 0));
}

constexpr Kernels kAvx2 = {
    "avx2",         2,           2,          split_words, weight_words, split_weight_lanes,
    popgemm,        epilogue_float, pack_row, float_conv_row, max_pixel, avg_pixel,
    dense_block,    popcount_peak, 3 * 2 * 256,
    nullptr,        nullptr,  // no native bf16 stem
    nullptr,        nullptr,  // the portable int8 stem
    {3, 8},         {6, 8},   // popgemm: 3 pixels x 8 outputs; conv_block: 6 pixels x 8
    nullptr,        // the bit epilogue: the driver's portable loop
};

}  // namespace

const Kernels* avx2_kernels() { return &kAvx2; }

}  // namespace dwr

#else
namespace dwr {
const Kernels* avx2_kernels() { return nullptr; }
}  // namespace dwr
#endif
