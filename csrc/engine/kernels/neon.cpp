// The NEON (AArch64 Advanced SIMD) kernels: the binary GEMM as EOR + CNT + byte adds on
// 128-bit vectors of two outputs, register-blocked; the float epilogue, packing, pools and
// the dense layer four channels at a time with padded-lane tails; an FMLA stem. NEON is part
// of every AArch64 CPU, so no target attribute is needed; dispatch.cpp still asks HWCAP.
// Built on aarch64 only: elsewhere the table is nullptr.
#include "epilogue_dispatch.h"
#include "kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include <algorithm>
#include <limits>

#include "../activation.h"

namespace dwr {
namespace {

// ---------------------------------------------------------------------------------------
// The GEMM on the lane layout as stored ([Op/4][K][4]: the four words of a group are two
// q registers). A broadcast input word XOR two weight words, CNT gives per-byte popcounts,
// and those add up in byte counters: 3 instructions per 128 binary MACs. A word adds at most
// 8 per byte, so the counters are widened (UADDLP/ADDP) into the int32 outputs every 31 words.

constexpr int kFlush = 31;  // 31 * 8 = 248 < 256

int64_t weight_words(int Op, int K) { return static_cast<int64_t>(Op) * K; }

void prepare_weight(const uint64_t* lanes, int Op, int K, uint64_t* dst) {
  std::copy_n(lanes, weight_words(Op, K), dst);
}

// Byte counters c0 (outputs 0, 1) and c1 (outputs 2, 3) of a group as four 32-bit sums.
inline uint32x4_t widen_group(uint8x16_t c0, uint8x16_t c1) {
  const uint16x8_t h = vpaddq_u16(vpaddlq_u8(c0), vpaddlq_u8(c1));  // 2 lanes per output
  return vpaddlq_u16(h);
}

// NP rows of A (K words each) against NG groups of four outputs (group q's words at
// b + q * 4K): 2 * NP * NG byte counters; words [k0, k1) of one flush period.
template <int NP, int NG>
inline void popgemm_period(const uint64_t* a, int K, const uint64_t* b, int k0, int k1,
                           int32_t* out, int ldp) {
  uint8x16_t cnt[NP][NG][2];
  for (int p = 0; p < NP; ++p)
    for (int q = 0; q < NG; ++q) cnt[p][q][0] = cnt[p][q][1] = vdupq_n_u8(0);
  const int64_t gstride = 4 * static_cast<int64_t>(K);
  for (int k = k0; k < k1; ++k) {
    uint8x16_t w[NG][2];
    for (int q = 0; q < NG; ++q) {
      w[q][0] = vreinterpretq_u8_u64(vld1q_u64(b + q * gstride + 4 * k));
      w[q][1] = vreinterpretq_u8_u64(vld1q_u64(b + q * gstride + 4 * k + 2));
    }
    for (int p = 0; p < NP; ++p) {
      const uint8x16_t x = vreinterpretq_u8_u64(vld1q_dup_u64(a + p * K + k));
      for (int q = 0; q < NG; ++q)
        for (int h = 0; h < 2; ++h)
          cnt[p][q][h] = vaddq_u8(cnt[p][q][h], vcntq_u8(veorq_u8(x, w[q][h])));
    }
  }
  for (int p = 0; p < NP; ++p)
    for (int q = 0; q < NG; ++q) {
      int32_t* dst = out + static_cast<int64_t>(p) * ldp + 4 * q;
      uint32x4_t s = widen_group(cnt[p][q][0], cnt[p][q][1]);
      if (k0 > 0) s = vaddq_u32(s, vreinterpretq_u32_s32(vld1q_s32(dst)));
      vst1q_s32(dst, vreinterpretq_s32_u32(s));
    }
}

template <int NP, int NG>
inline void popgemm_block(const uint64_t* a, int K, const uint64_t* b, int32_t* out, int ldp) {
  for (int k0 = 0; k0 < K; k0 += kFlush)
    popgemm_period<NP, NG>(a, K, b, k0, std::min(K, k0 + kFlush), out, ldp);
}

// All M rows of A against NG groups at b: tiles of 4 pixels, then the last 1-3 pixels.
template <int NG>
void popgemm_groups(const uint64_t* A, int M, int K, const uint64_t* b, int32_t* out,
                    int ldp) {
  int i = 0;
  for (; i + 4 <= M; i += 4) popgemm_block<4, NG>(A + i * K, K, b, out + i * ldp, ldp);
  switch (M - i) {
    case 3: popgemm_block<3, NG>(A + i * K, K, b, out + i * ldp, ldp); break;
    case 2: popgemm_block<2, NG>(A + i * K, K, b, out + i * ldp, ldp); break;
    case 1: popgemm_block<1, NG>(A + i * K, K, b, out + i * ldp, ldp); break;
    default: break;
  }
}

// Tiles of 4 pixels x 8 outputs: 16 byte counters, 4 weight vectors and the broadcasts in
// the 32 vector registers. Output pairs of groups outside, pixels inside: a pair's weights
// (64 K bytes) stay in L1 while the chunk of im2col rows streams past them.
void popgemm(const uint64_t* A, int M, const uint64_t* B, int Op, int K, int32_t* pop,
             int ldp) {
  const int groups = Op / 4;
  int g = 0;
  for (; g + 2 <= groups; g += 2)
    popgemm_groups<2>(A, M, K, B + static_cast<int64_t>(g) * K * 4, pop + 4 * g, ldp);
  if (g < groups)
    popgemm_groups<1>(A, M, K, B + static_cast<int64_t>(g) * K * 4, pop + 4 * g, ldp);
}

// ---------------------------------------------------------------------------------------
// Sign packing: 16 channels per step. The x + shift >= 0 masks are narrowed to bytes, and
// the bit weights where the mask is clear (BIC) gather into 16 bits by pairwise adds; scalar
// for the last < 16 channels.

// The bits of channels c..c+15 where !(x + shift >= 0).
inline uint32_t negative16(const float* x, const float* shift, int c) {
  uint32x4_t ge[4];
  for (int i = 0; i < 4; ++i) {
    float32x4_t v = vld1q_f32(x + c + 4 * i);
    if (shift) v = vaddq_f32(v, vld1q_f32(shift + c + 4 * i));
    ge[i] = vcgeq_f32(v, vdupq_n_f32(0.0f));
  }
  const uint16x8_t lo = vcombine_u16(vmovn_u32(ge[0]), vmovn_u32(ge[1]));
  const uint16x8_t hi = vcombine_u16(vmovn_u32(ge[2]), vmovn_u32(ge[3]));
  const uint8_t w[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  uint8x16_t v = vbicq_u8(vld1q_u8(w), vcombine_u8(vmovn_u16(lo), vmovn_u16(hi)));
  v = vpaddq_u8(v, v);
  v = vpaddq_u8(v, v);
  v = vpaddq_u8(v, v);  // byte 0: channels 0-7, byte 1: channels 8-15
  return vgetq_lane_u16(vreinterpretq_u16_u8(v), 0);
}

// pack_signs_range with vectors: channels [c0, c1) of one pixel, c0 a multiple of 64.
void pack_range(const float* x, const float* shift, int c0, int c1, uint64_t* bits) {
  for (int w = c0 >> 6; 64 * w < c1; ++w) {
    const int lo = 64 * w, hi = std::min(c1, lo + 64);
    uint64_t word = 0;
    int c = lo;
    for (; c + 16 <= hi; c += 16)
      word |= static_cast<uint64_t>(negative16(x, shift, c)) << (c - lo);
    for (; c < hi; ++c)
      if (negative(x[c], shift, c)) word |= 1ULL << (c - lo);
    bits[w] = word;
  }
}

void pack_row(const float* x, const float* shift, int C, uint64_t* bits) {
  pack_range(x, shift, 0, C, bits);
}

// ---------------------------------------------------------------------------------------
// The float epilogue, four channels at a time, the portable operations in the portable
// order (separate multiply and add; compare-and-select where the scalar form selects), so
// outputs are bit-identical. FMLA contraction is off for the whole module (CMakeLists.txt).

template <int ACT>
inline float32x4_t activate4(float32x4_t y, const ActParams& p, int o) {
  if (ACT == ACT_HARDTANH) {
    const float32x4_t lo = vdupq_n_f32(-1.0f), hi = vdupq_n_f32(1.0f);
    y = vbslq_f32(vcltq_f32(y, lo), lo, y);
    y = vbslq_f32(vcgtq_f32(y, hi), hi, y);
  } else if (ACT == ACT_RPRELU) {
    const float32x4_t t = vaddq_f32(y, vld1q_f32(p.in + o));
    const float32x4_t neg = vmulq_f32(vld1q_f32(p.slope + o), t);
    y = vaddq_f32(vbslq_f32(vcgeq_f32(t, vdupq_n_f32(0.0f)), t, neg), vld1q_f32(p.out + o));
  }
  return y;
}

// The per-channel vectors of the epilogue: scale, bias and the activation's.
struct Vecs {
  const float *scale, *bias;
  ActParams act;
};

// y of channels o..o+3 from their popcounts (full - 2 * pop, converted, scaled, biased).
template <int ACT, bool RES>
inline float32x4_t affine4(const int32_t* pop, int32_t full, const float* res, const Vecs& v,
                           int o) {
  const int32x4_t d = vsubq_s32(vdupq_n_s32(full), vshlq_n_s32(vld1q_s32(pop), 1));
  float32x4_t y = vaddq_f32(vmulq_f32(vld1q_f32(v.scale + o), vcvtq_f32_s32(d)),
                            vld1q_f32(v.bias + o));
  if (RES) y = vaddq_f32(y, vld1q_f32(res));
  return activate4<ACT>(y, v.act, o);
}

// The last n = o1 - o4 < 4 channels' vectors in four zero-padded lanes, so the masked tail
// runs the same vector code; popcounts and residual are copied per pixel.
struct Tail4 {
  float scale[4] = {}, bias[4] = {}, in[4] = {}, slope[4] = {}, out[4] = {};
  int n;
  Tail4(const Tail4&) = delete;
  Tail4& operator=(const Tail4&) = delete;
  Tail4(const Epilogue& ep, int o4, int o1) : n(o1 - o4) {
    for (int i = 0; i < n; ++i) {
      scale[i] = ep.scale[o4 + i];
      bias[i] = ep.bias[o4 + i];
      if (ep.act_in) in[i] = ep.act_in[o4 + i];
      if (ep.act_slope) slope[i] = ep.act_slope[o4 + i];
      if (ep.act_out) out[i] = ep.act_out[o4 + i];
    }
  }
  Vecs vecs() const { return {scale, bias, {in, slope, out}}; }
};

template <int ACT, bool RES>
void epilogue_act(const ConvGeom& g, const Epilogue& ep, const Dots& dots, int64_t p0, int m,
                  int o0, int o1) {
  const int O = g.O, o4 = o0 + ((o1 - o0) & ~3), ocw = (O + 63) / 64;
  const Vecs vecs{ep.scale, ep.bias, {ep.act_in, ep.act_slope, ep.act_out}};
  const Tail4 tail(ep, o4, o1);
  for (int r = 0; r < m; ++r) {
    float* out = ep.out_float + (p0 + r) * O;
    const float* res = RES ? ep.residual + (p0 + r) * O : nullptr;
    const int32_t* pop = dots.pop + static_cast<int64_t>(r) * dots.ld;
    for (int o = o0; o < o4; o += 4)
      vst1q_f32(out + o, affine4<ACT, RES>(pop + o, dots.full[r], RES ? res + o : nullptr,
                                           vecs, o));
    if (o4 < o1) {
      int32_t p[4] = {};
      float rs[4] = {}, y[4];
      std::copy(pop + o4, pop + o1, p);
      if (RES) std::copy(res + o4, res + o1, rs);
      vst1q_f32(y, affine4<ACT, RES>(p, dots.full[r], rs, tail.vecs(), 0));
      std::copy(y, y + tail.n, out + o4);
    }
    if (ep.next_bits) pack_range(out, ep.next_shift, o0, o1, ep.next_bits + (p0 + r) * ocw);
  }
}

void epilogue_float(const ConvGeom& g, const Epilogue& ep, const Dots& dots, int64_t p0, int m,
                    int o0, int o1) {
  dispatch_epilogue(ep, [&](auto act, auto res) {
    epilogue_act<decltype(act)::value, decltype(res)::value>(g, ep, dots, p0, m, o0, o1);
  });
}

// ---------------------------------------------------------------------------------------
// The float conv (the stem): NP pixels x NV vectors of four output channels accumulated
// with FMLA (so it may differ from portable by float rounding, as the x86 FMA stems do).

// Bias, activation and store of np pixels x nv vectors of sums ([np][nv * 4]); a last group
// past O (the padding of Op) in scalar code.
template <int ACT>
void finish_block(const FloatConvArgs& a, const float* sums, int np, int nv, float* out,
                  int o0) {
  const ActParams act{a.act_in, a.act_slope, a.act_out};
  for (int p = 0; p < np; ++p) {
    float* dst = out + static_cast<int64_t>(p) * a.O;
    const float* s = sums + p * nv * 4;  // channel o at s[o - o0]
    int o = o0;
    for (; o < o0 + 4 * nv && o + 4 <= a.O; o += 4) {
      const float32x4_t y = vaddq_f32(vld1q_f32(s + (o - o0)), vld1q_f32(a.bias + o));
      vst1q_f32(dst + o, activate4<ACT>(y, act, o));
    }
    for (; o < std::min(a.O, o0 + 4 * nv); ++o)
      dst[o] = activate(s[o - o0] + a.bias[o], ACT, act, o);
  }
}

template <int NP, int NV>
void conv_block(const FloatConvArgs& a, const float* x, int64_t row_stride, const float* w,
                float* out, int o0) {
  const int kC = a.k * a.C, xstep = a.stride * a.C, Op = a.Op;
  float32x4_t acc[NP][NV];
#pragma GCC unroll 4
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[p][v] = vdupq_n_f32(0.0f);
  for (int ky = 0; ky < a.k; ++ky) {
    const float* xr = x + ky * row_stride;
    const float* wr = w + static_cast<int64_t>(ky) * kC * Op;
    for (int j = 0; j < kC; ++j) {
      float32x4_t wv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) wv[v] = vld1q_f32(wr + static_cast<int64_t>(j) * Op + 4 * v);
#pragma GCC unroll 4
      for (int p = 0; p < NP; ++p) {
        const float32x4_t b = vld1q_dup_f32(xr + p * xstep + j);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[p][v] = vfmaq_f32(acc[p][v], b, wv[v]);
      }
    }
  }
  float sums[NP][NV * 4];
#pragma GCC unroll 4
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) vst1q_f32(&sums[p][4 * v], acc[p][v]);
  if (a.act == ACT_HARDTANH)
    finish_block<ACT_HARDTANH>(a, &sums[0][0], NP, NV, out, o0);
  else if (a.act == ACT_RPRELU)
    finish_block<ACT_RPRELU>(a, &sums[0][0], NP, NV, out, o0);
  else
    finish_block<ACT_NONE>(a, &sums[0][0], NP, NV, out, o0);
}

// One row of output pixels, four at a time, in blocks of NV * 4 output channels.
template <int NV>
void conv_row_nv(const FloatConvArgs& a, const float* xp, int Wp, int oy, int o0, float* out) {
  const int64_t row_stride = static_cast<int64_t>(Wp) * a.C;
  const float* x0 = xp + static_cast<int64_t>(oy) * a.stride * row_stride;
  float* orow = out + static_cast<int64_t>(oy) * a.OW * a.O;
  const int64_t xs = static_cast<int64_t>(a.stride) * a.C;
  int ox = 0;
  for (; ox + 4 <= a.OW; ox += 4)
    conv_block<4, NV>(a, x0 + ox * xs, row_stride, a.w + o0, orow + static_cast<int64_t>(ox) * a.O,
                      o0);
  for (; ox < a.OW; ++ox)
    conv_block<1, NV>(a, x0 + ox * xs, row_stride, a.w + o0, orow + static_cast<int64_t>(ox) * a.O,
                      o0);
}

// 4 pixels x 16 channels: 16 accumulators, 4 weight loads and 4 broadcasts per 16 FMLAs.
// The weight rows are padded to Op (a multiple of 8), so a block of 8 or 4 ends the row.
void float_conv_row(const FloatConvArgs& a, const float* xp, int Wp, int oy, float* out) {
  int o0 = 0;
  for (; o0 + 16 <= a.Op; o0 += 16) conv_row_nv<4>(a, xp, Wp, oy, o0, out);
  for (; o0 < a.O; o0 += 4) conv_row_nv<1>(a, xp, Wp, oy, o0, out);
}

// ---------------------------------------------------------------------------------------
// Pools and the dense layer, four channels at a time, scalar tails; the same comparisons and
// the same summation order as the portable loops (a select, not FMAX: NaN and -0 agree).

void max_pixel(const float* in, int64_t row, int C, int y0, int y1, int x0, int x1,
               float* dst) {
  int c = 0;
  for (; c + 4 <= C; c += 4) {
    float32x4_t m = vdupq_n_f32(-std::numeric_limits<float>::infinity());
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) {
        const float32x4_t s = vld1q_f32(in + y * row + static_cast<int64_t>(x) * C + c);
        m = vbslq_f32(vcgtq_f32(s, m), s, m);
      }
    vst1q_f32(dst + c, m);
  }
  if (c < C) max_channels(in, row, C, c, y0, y1, x0, x1, dst);
}

void avg_pixel(const float* in, int64_t row, int C, int y0, int y1, int x0, int x1,
               float* dst) {
  const float inv = 1.0f / static_cast<float>((y1 - y0) * (x1 - x0));
  int c = 0;
  for (; c + 4 <= C; c += 4) {
    float32x4_t s = vdupq_n_f32(0.0f);
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x)
        s = vaddq_f32(s, vld1q_f32(in + y * row + static_cast<int64_t>(x) * C + c));
    vst1q_f32(dst + c, vmulq_f32(s, vdupq_n_f32(inv)));
  }
  if (c < C) avg_channels(in, row, C, c, y0, y1, x0, x1, dst);
}

// 16 accumulator vectors; multiply then add, in the portable order: equal results.
void dense_block(const float* x, int C, const float* wb, const float* bias, float* out) {
  float32x4_t acc[16];
  for (int v = 0; v < 16; ++v) acc[v] = vdupq_n_f32(0.0f);
  for (int c = 0; c < C; ++c) {
    const float32x4_t xc = vdupq_n_f32(x[c]);
    for (int v = 0; v < 16; ++v)
      acc[v] = vaddq_f32(acc[v], vmulq_f32(xc, vld1q_f32(wb + c * 64 + 4 * v)));
  }
  for (int v = 0; v < 16; ++v) vst1q_f32(out + 4 * v, vaddq_f32(acc[v], vld1q_f32(bias + 4 * v)));
}

// Benchmarks only (Kernels::popcount_peak): the GEMM tile's arithmetic on registers, 4 pixels x
// 4 weight vectors of EOR + CNT + ADD per round (the byte counters may wrap); returns a
// checksum.
constexpr int kPeakMacs = 4 * 4 * 128;

uint64_t popcount_peak(int64_t iters) {
  uint8x16_t cnt[4][4], x[4], w[4];
  for (int p = 0; p < 4; ++p) {
    x[p] = vdupq_n_u8(static_cast<uint8_t>(p + 1));
    w[p] = vdupq_n_u8(static_cast<uint8_t>(p + 9));
    for (int q = 0; q < 4; ++q) cnt[p][q] = vdupq_n_u8(0);
  }
  for (int64_t i = 0; i < iters; ++i) {
    for (int q = 0; q < 4; ++q) w[q] = vaddq_u8(w[q], vdupq_n_u8(1));
    for (int p = 0; p < 4; ++p)
      for (int q = 0; q < 4; ++q) cnt[p][q] = vaddq_u8(cnt[p][q], vcntq_u8(veorq_u8(x[p], w[q])));
  }
  uint64_t s = 0;
  for (int p = 0; p < 4; ++p)
    for (int q = 0; q < 4; ++q) s += vaddlvq_u8(cnt[p][q]);
  return s;
}

constexpr Kernels kNeon = {
    "neon",         1,           1,          nullptr,   weight_words, prepare_weight,
    popgemm,        epilogue_float, pack_row, float_conv_row, max_pixel, avg_pixel,
    dense_block,    popcount_peak, kPeakMacs,
    nullptr,        nullptr,  // no native bf16 stem
    nullptr,        nullptr,  // the portable int8 stem
    {4, 8},         {4, 4},   // popgemm: 4 pixels x 8 outputs; conv_block: 4 pixels x 4
    nullptr,        // the bit epilogue: the driver's portable loop
};

}  // namespace

const Kernels* neon_kernels() { return &kNeon; }

}  // namespace dwr

#else
namespace dwr {
const Kernels* neon_kernels() { return nullptr; }
}  // namespace dwr
#endif
