// The AVX-512 kernels (F, BW, VL and VPOPCNTDQ): the binary GEMM as XOR + VPOPCNTQ + add on
// 512-bit vectors of eight outputs, register-blocked; 16-channel float epilogue, packing,
// pools and dense layer with masked tails; an FMA stem, and a VDPBF16PS one for the bf16 stem
// precision. Every function carries its own target attribute, so the module loads on CPUs
// without AVX-512 and dispatch.cpp uses this table only where CPUID reports all four
// extensions (and the bf16 stem only where it also reports AVX512_BF16).
#include "epilogue_dispatch.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "../activation.h"

#define DWR_TARGET_512 "avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx2,fma,popcnt"
#define DWR_AVX512 __attribute__((target(DWR_TARGET_512)))
#define DWR_AVX512_INLINE __attribute__((target(DWR_TARGET_512), always_inline)) inline
#define DWR_AVX512_BF16 __attribute__((target(DWR_TARGET_512 ",avx512bf16")))
#define DWR_AVX512_VNNI __attribute__((target(DWR_TARGET_512 ",avx512vnni")))

namespace dwr {
namespace {

// The first n lanes of 16 (n >= 16: all).
DWR_AVX512_INLINE __mmask16 lanes16(int n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// ---------------------------------------------------------------------------------------
// The GEMM. Weights in groups of eight outputs, [ceil(Op/8)][K][8] (zero rows past Op): one
// XOR of a broadcast input word with a weight vector covers eight output channels, VPOPCNTQ
// counts each lane, and the counts add up in 64-bit lanes: no horizontal sums.

int64_t weight_words(int Op, int K) { return static_cast<int64_t>(Op + 7) / 8 * 8 * K; }

void prepare_weight(const uint64_t* lanes, int Op, int K, uint64_t* dst) {
  const int groups = (Op + 7) / 8;
  for (int g = 0; g < groups; ++g)
    for (int k = 0; k < K; ++k)
      for (int l = 0; l < 8; ++l) {
        const int o = 8 * g + l;
        dst[(static_cast<int64_t>(g) * K + k) * 8 + l] =
            o < Op ? lanes[(static_cast<int64_t>(o / 4) * K + k) * 4 + o % 4] : 0;
      }
}

// NP rows of A (K words each) against NG groups of eight outputs (group q at b + q * 8K):
// NP * NG accumulators, NG weight loads per word, each broadcast input word serving NG groups.
// `tail` masks the outputs of the last group (Op may end half way through one).
template <int NP, int NG>
DWR_AVX512_INLINE void popgemm_block(const uint64_t* a, int K, const uint64_t* b, int32_t* out,
                                     int ldp, __mmask8 tail) {
  __m512i acc[NP][NG];
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 8
    for (int q = 0; q < NG; ++q) acc[p][q] = _mm512_setzero_si512();
  const int64_t gstride = 8 * static_cast<int64_t>(K);
  for (int k = 0; k < K; ++k) {
    __m512i w[NG];
#pragma GCC unroll 8
    for (int q = 0; q < NG; ++q) w[q] = _mm512_loadu_si512(b + q * gstride + 8 * k);
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) {
      const __m512i x = _mm512_set1_epi64(static_cast<long long>(a[p * K + k]));
#pragma GCC unroll 8
      for (int q = 0; q < NG; ++q)
        acc[p][q] = _mm512_add_epi64(acc[p][q], _mm512_popcnt_epi64(_mm512_xor_si512(x, w[q])));
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 8
    for (int q = 0; q < NG; ++q) {
      int32_t* dst = out + static_cast<int64_t>(p) * ldp + 8 * q;
      const __m256i v = _mm512_cvtepi64_epi32(acc[p][q]);  // counts < 2^31
      if (q == NG - 1 && tail != 0xFF)
        _mm256_mask_storeu_epi32(dst, tail, v);
      else
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), v);
    }
}

// Groups of NG=4 (32 outputs) while they last, then the remaining 1-3 groups.
template <int NP>
DWR_AVX512_INLINE void popgemm_rows(const uint64_t* a, int K, const uint64_t* B, int Op,
                                    int32_t* out, int ldp) {
  const int groups = (Op + 7) / 8;
  const __mmask8 tail = Op % 8 ? static_cast<__mmask8>(0x0F) : static_cast<__mmask8>(0xFF);
  int g = 0;
  for (; g + 4 <= groups; g += 4) {
    const __mmask8 m = g + 4 == groups ? tail : static_cast<__mmask8>(0xFF);
    popgemm_block<NP, 4>(a, K, B + g * 8 * static_cast<int64_t>(K), out + 8 * g, ldp, m);
  }
  const uint64_t* b = B + g * 8 * static_cast<int64_t>(K);
  switch (groups - g) {
    case 3: popgemm_block<NP, 3>(a, K, b, out + 8 * g, ldp, tail); break;
    case 2: popgemm_block<NP, 2>(a, K, b, out + 8 * g, ldp, tail); break;
    case 1: popgemm_block<NP, 1>(a, K, b, out + 8 * g, ldp, tail); break;
    default: break;
  }
}

// Tiles of 6 pixels x 32 outputs: 24 accumulators, 4 weight vectors and a broadcast.
DWR_AVX512 void popgemm(const uint64_t* A, int M, const uint64_t* B, int Op, int K,
                        int32_t* pop, int ldp) {
  int i = 0;
  for (; i + 6 <= M; i += 6)
    popgemm_rows<6>(A + static_cast<int64_t>(i) * K, K, B, Op, pop + static_cast<int64_t>(i) * ldp,
                    ldp);
  const uint64_t* a = A + static_cast<int64_t>(i) * K;
  int32_t* out = pop + static_cast<int64_t>(i) * ldp;
  switch (M - i) {
    case 5: popgemm_rows<5>(a, K, B, Op, out, ldp); break;
    case 4: popgemm_rows<4>(a, K, B, Op, out, ldp); break;
    case 3: popgemm_rows<3>(a, K, B, Op, out, ldp); break;
    case 2: popgemm_rows<2>(a, K, B, Op, out, ldp); break;
    case 1: popgemm_rows<1>(a, K, B, Op, out, ldp); break;
    default: break;
  }
}

// ---------------------------------------------------------------------------------------
// Sign packing and the float epilogue, 16 channels at a time, the same operations in the
// same order as the portable code (no FMA contraction, see CMakeLists.txt).

// negative() for the lanes of m of channels c..c+15: bit i is channel c + i.
DWR_AVX512_INLINE uint64_t negative16(__m512 x, const float* shift, int c, __mmask16 m) {
  if (shift) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, shift + c));
  return _mm512_mask_cmp_ps_mask(m, x, _mm512_setzero_ps(), _CMP_NGE_UQ);
}

DWR_AVX512 void pack_row(const float* x, const float* shift, int C, uint64_t* bits) {
  for (int c0 = 0; c0 < C; c0 += 64) {
    const int c1 = std::min(C, c0 + 64);
    uint64_t word = 0;
    for (int c = c0; c < c1; c += 16) {
      const __mmask16 m = lanes16(c1 - c);
      word |= negative16(_mm512_maskz_loadu_ps(m, x + c), shift, c, m) << (c - c0);
    }
    bits[c0 >> 6] = word;
  }
}

// Channels o..o+15 (lanes of m) of y, as activate() does for one.
DWR_AVX512_INLINE __m512 activate16(__m512 y, int act, const ActParams& p, int o, __mmask16 m) {
  if (act == ACT_HARDTANH) {
    y = _mm512_max_ps(_mm512_set1_ps(-1.0f), y);  // (-1 > y) ? -1 : y, as the scalar form
    y = _mm512_min_ps(_mm512_set1_ps(1.0f), y);   // (1 < y) ? 1 : y
  } else if (act == ACT_RPRELU) {
    const __m512 t = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, p.in + o));
    const __m512 neg = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p.slope + o), t);
    const __mmask16 pos = _mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_GE_OQ);
    y = _mm512_add_ps(_mm512_mask_blend_ps(pos, neg, t), _mm512_maskz_loadu_ps(m, p.out + o));
  }
  return y;
}

template <int ACT, bool RES>
DWR_AVX512 void epilogue_act(const ConvGeom& g, const Epilogue& ep, const Dots& dots,
                             int64_t p0, int m, int o0, int o1) {
  const ActParams act{ep.act_in, ep.act_slope, ep.act_out};
  const int O = g.O, ocw = (g.O + 63) / 64;
  for (int r = 0; r < m; ++r) {
    float* out = ep.out_float + (p0 + r) * O;
    const float* res = RES ? ep.residual + (p0 + r) * O : nullptr;
    const int32_t* pop = dots.pop + static_cast<int64_t>(r) * dots.ld;
    const __m512i full = _mm512_set1_epi32(dots.full[r]);
    uint64_t* bits = ep.next_bits ? ep.next_bits + (p0 + r) * ocw : nullptr;
    uint64_t word = 0;  // the sign bits of the current 64 channels, while packing
    for (int o = o0; o < o1; o += 16) {
      const __mmask16 lm = lanes16(o1 - o);
      const __m512i d = _mm512_sub_epi32(full, _mm512_slli_epi32(_mm512_maskz_loadu_epi32(lm, pop + o), 1));
      __m512 y = _mm512_add_ps(
          _mm512_mul_ps(_mm512_maskz_loadu_ps(lm, ep.scale + o), _mm512_cvtepi32_ps(d)),
          _mm512_maskz_loadu_ps(lm, ep.bias + o));
      if (RES) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(lm, res + o));
      y = activate16(y, ACT, act, o, lm);
      _mm512_mask_storeu_ps(out + o, lm, y);
      if (bits) {
        word |= negative16(y, ep.next_shift, o, lm) << (o & 63);
        if ((o & 63) == 48 || o + 16 >= o1) {
          bits[o >> 6] = word;
          word = 0;
        }
      }
    }
  }
}

void epilogue_float(const ConvGeom& g, const Epilogue& ep, const Dots& dots, int64_t p0, int m,
                    int o0, int o1) {
  dispatch_epilogue(ep, [&](auto act, auto res) {
    epilogue_act<decltype(act)::value, decltype(res)::value>(g, ep, dots, p0, m, o0, o1);
  });
}

// The bit epilogue, 16 outputs at a time: the same integer comparisons as the driver's loop
// (dot against the threshold, the flip choosing <= or >=), so the bits are the same.
DWR_AVX512 void epilogue_bits(const ConvGeom& g, const Epilogue& ep, const Dots& dots,
                              int64_t p0, int m, int o0, int o1) {
  const int ocw = (g.O + 63) / 64;
  for (int r = 0; r < m; ++r) {
    uint64_t* out = ep.out_bits + (p0 + r) * ocw;
    const int32_t* pop = dots.pop + static_cast<int64_t>(r) * dots.ld;
    const __m512i full = _mm512_set1_epi32(dots.full[r]);
    for (int w = o0 / 64; w < (o1 + 63) / 64; ++w) {
      const int end = std::min(g.O, 64 * w + 64);
      uint64_t word = 0;
      for (int o = 64 * w; o < end; o += 16) {
        const __mmask16 lm = lanes16(end - o);
        const __m512i pc = _mm512_maskz_loadu_epi32(lm, pop + o);
        const __m512i d = _mm512_sub_epi32(full, _mm512_slli_epi32(pc, 1));
        const __m512i thr = _mm512_maskz_loadu_epi32(lm, ep.thr + o);
        const __m512i fl = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lm, ep.flip + o));
        const __mmask16 flip = _mm512_test_epi32_mask(fl, fl);
        const __mmask16 ge = _mm512_cmpge_epi32_mask(d, thr), le = _mm512_cmple_epi32_mask(d, thr);
        const __mmask16 positive = (flip & le) | (~flip & ge);
        word |= static_cast<uint64_t>(static_cast<__mmask16>(~positive & lm)) << (o - 64 * w);
      }
      out[w] = word;
    }
  }
}

// ---------------------------------------------------------------------------------------
// The float conv (the stem): NP output pixels x NV vectors of 16 output channels in
// registers, the last vector masked to the channels that exist. Bias, activation and the
// masked store of such a tile:
template <int NP, int NV>
DWR_AVX512_INLINE void finish_block(const FloatConvArgs& a, __m512 (&acc)[NP][NV], float* out,
                                    int o0, __mmask16 last) {
  const ActParams act{a.act_in, a.act_slope, a.act_out};
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const int o = o0 + 16 * v;
    const __mmask16 m = v == NV - 1 ? last : static_cast<__mmask16>(0xFFFF);
    const __m512 bias = _mm512_maskz_loadu_ps(m, a.bias + o);
    for (int p = 0; p < NP; ++p) {
      const __m512 y = activate16(_mm512_add_ps(acc[p][v], bias), a.act, act, o, m);
      _mm512_mask_storeu_ps(out + static_cast<int64_t>(p) * a.O + o, m, y);
    }
  }
}

template <int NP, int NV>
DWR_AVX512_INLINE void zero_block(__m512 (&acc)[NP][NV]) {
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[p][v] = _mm512_setzero_ps();
}

// f32: an FMA per input value, pixel and vector, over the taps j of each kernel row.
template <int NP, int NV>
struct F32Block {
  DWR_AVX512_INLINE static void run(const FloatConvArgs& a, const float* x, int64_t row_stride,
                                    float* out, int o0, __mmask16 last) {
    const int kC = a.k * a.C, xstep = a.stride * a.C, Op = a.Op;
    const float* w = a.w + o0;
    __m512 acc[NP][NV];
    zero_block<NP, NV>(acc);
    for (int ky = 0; ky < a.k; ++ky) {
      const float* xr = x + ky * row_stride;
      const float* wr = w + static_cast<int64_t>(ky) * kC * Op;
      for (int j = 0; j < kC; ++j) {
        __m512 wv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
          const __mmask16 m = v == NV - 1 ? last : static_cast<__mmask16>(0xFFFF);
          wv[v] = _mm512_maskz_loadu_ps(m, wr + static_cast<int64_t>(j) * Op + 16 * v);
          asm("" : "+v"(wv[v]));  // load once into a register, not once per pixel
        }
#pragma GCC unroll 8
        for (int p = 0; p < NP; ++p) {
          const __m512 b = _mm512_set1_ps(xr[p * xstep + j]);
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) acc[p][v] = _mm512_fmadd_ps(b, wv[v], acc[p][v]);
        }
      }
    }
    finish_block<NP, NV>(a, acc, out, o0, last);
  }
};

// bf16 (AVX-512 BF16): VDPBF16PS adds the two exact products of a pair of taps (2j, 2j + 1)
// to each f32 accumulator, so one instruction does the work of two FMAs. The input is the
// bf16 copy; the weights are a.wbf, [k][pairs][Op][2]. An odd k*C pads its last pair with a
// zero weight, whose input is the next element of the padded copy (it has one to spare).
template <int NP, int NV>
struct Bf16Block {
  DWR_AVX512_BF16 static void run(const FloatConvArgs& a, const uint16_t* x, int64_t row_stride,
                                  float* out, int o0, __mmask16 last) {
    const int pairs = (a.k * a.C + 1) / 2, xstep = a.stride * a.C;
    const int64_t Op = a.Op;
    __m512 acc[NP][NV];
    zero_block<NP, NV>(acc);
    for (int ky = 0; ky < a.k; ++ky) {
      const uint16_t* xr = x + ky * row_stride;
      const uint16_t* wr = a.wbf + (ky * pairs * Op + o0) * 2;
      for (int j = 0; j < pairs; ++j) {
        __m512i wv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
          const __mmask16 m = v == NV - 1 ? last : static_cast<__mmask16>(0xFFFF);
          wv[v] = _mm512_maskz_loadu_epi32(m, wr + (j * Op + 16 * v) * 2);
          asm("" : "+v"(wv[v]));  // load once into a register, not once per pixel
        }
#pragma GCC unroll 8
        for (int p = 0; p < NP; ++p) {
          uint32_t pair;  // input taps 2j and 2j + 1 of pixel p
          std::memcpy(&pair, xr + p * xstep + 2 * j, sizeof pair);
          const __m512bh b = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) acc[p][v] = _mm512_dpbf16_ps(acc[p][v], b, (__m512bh)wv[v]);
        }
      }
    }
    finish_block<NP, NV>(a, acc, out, o0, last);
  }
};

// int8 (AVX-512 VNNI): VPDPBUSD adds the four products of a quad of taps (4j .. 4j + 3), u8
// input (xq + 128) by s8 weight, to each int32 accumulator: exact, as the portable sums. The
// weights are a.wq, [k][quads][Op][4]; a k*C not divisible by 4 pads its last quad with zero
// weights, whose inputs are the next elements of the padded copy (it has three to spare).
// Then dot = acc - 128 * wsum[o], and float(dot) * row_scale[o] goes to the f32 epilogue.
template <int NP, int NV>
struct Int8Block {
  DWR_AVX512_VNNI static void run(const FloatConvArgs& a, const uint8_t* x, int64_t row_stride,
                                  float* out, int o0, __mmask16 last) {
    const int quads = (a.k * a.C + 3) / 4, xstep = a.stride * a.C;
    const int64_t Op = a.Op;
    __m512i acc[NP][NV];
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[p][v] = _mm512_setzero_si512();
    for (int ky = 0; ky < a.k; ++ky) {
      const uint8_t* xr = x + ky * row_stride;
      const int8_t* wr = a.wq + (ky * quads * Op + o0) * 4;
      for (int j = 0; j < quads; ++j) {
        __m512i wv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
          const __mmask16 m = v == NV - 1 ? last : static_cast<__mmask16>(0xFFFF);
          wv[v] = _mm512_maskz_loadu_epi32(m, wr + (j * Op + 16 * v) * 4);
          asm("" : "+v"(wv[v]));  // load once into a register, not once per pixel
        }
#pragma GCC unroll 8
        for (int p = 0; p < NP; ++p) {
          uint32_t quad;  // input taps 4j .. 4j + 3 of pixel p
          std::memcpy(&quad, xr + p * xstep + 4 * j, sizeof quad);
          const __m512i b = _mm512_set1_epi32(static_cast<int>(quad));
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) acc[p][v] = _mm512_dpbusd_epi32(acc[p][v], b, wv[v]);
        }
      }
    }
    __m512 y[NP][NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const int o = o0 + 16 * v;
      const __mmask16 m = v == NV - 1 ? last : static_cast<__mmask16>(0xFFFF);
      const __m512i corr = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m, a.wsum + o), 7);
      const __m512 sc = _mm512_maskz_loadu_ps(m, a.row_scale + o);
      for (int p = 0; p < NP; ++p)
        y[p][v] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[p][v], corr)), sc);
    }
    finish_block<NP, NV>(a, y, out, o0, last);
  }
};

// One output row in tiles of 6 pixels x NV vectors from output channel o0 (T: the padded
// copy's element, float, bf16 bits or u8).
template <int NV, template <int, int> class Block, typename T>
DWR_AVX512 void conv_row_nv(const FloatConvArgs& a, const T* xp, int Wp, int oy, int o0,
                            float* out) {
  const int64_t row_stride = static_cast<int64_t>(Wp) * a.C;
  const T* x0 = xp + static_cast<int64_t>(oy) * a.stride * row_stride;
  float* orow = out + static_cast<int64_t>(oy) * a.OW * a.O;
  const int64_t xs = static_cast<int64_t>(a.stride) * a.C;
  const __mmask16 last = lanes16(a.O - (o0 + 16 * (NV - 1)));
  int ox = 0;
  for (; ox + 6 <= a.OW; ox += 6)
    Block<6, NV>::run(a, x0 + ox * xs, row_stride, orow + static_cast<int64_t>(ox) * a.O, o0,
                      last);
  const T* x = x0 + ox * xs;
  float* dst = orow + static_cast<int64_t>(ox) * a.O;
  switch (a.OW - ox) {
    case 5: Block<5, NV>::run(a, x, row_stride, dst, o0, last); break;
    case 4: Block<4, NV>::run(a, x, row_stride, dst, o0, last); break;
    case 3: Block<3, NV>::run(a, x, row_stride, dst, o0, last); break;
    case 2: Block<2, NV>::run(a, x, row_stride, dst, o0, last); break;
    case 1: Block<1, NV>::run(a, x, row_stride, dst, o0, last); break;
    default: break;
  }
}

// One output row in blocks of 64 output channels (4 vectors; a stem's weights, k*k*C*64
// values, stay in L1 across the row), six pixels at a time: 24 accumulators.
template <template <int, int> class Block, typename T>
void conv_row(const FloatConvArgs& a, const T* xp, int Wp, int oy, float* out) {
  for (int o0 = 0; o0 < a.O; o0 += 64) {
    switch (std::min(4, (a.O - o0 + 15) / 16)) {
      case 4: conv_row_nv<4, Block>(a, xp, Wp, oy, o0, out); break;
      case 3: conv_row_nv<3, Block>(a, xp, Wp, oy, o0, out); break;
      case 2: conv_row_nv<2, Block>(a, xp, Wp, oy, o0, out); break;
      default: conv_row_nv<1, Block>(a, xp, Wp, oy, o0, out); break;
    }
  }
}

void float_conv_row(const FloatConvArgs& a, const float* xp, int Wp, int oy, float* out) {
  conv_row<F32Block>(a, xp, Wp, oy, out);
}

void float_conv_row_bf16(const FloatConvArgs& a, const uint16_t* xp, int Wp, int oy,
                         float* out) {
  conv_row<Bf16Block>(a, xp, Wp, oy, out);
}

bool bf16_supported() { return __builtin_cpu_supports("avx512bf16"); }

void float_conv_row_int8(const FloatConvArgs& a, const uint8_t* xp, int Wp, int oy,
                         const float* scale, float* out) {
  FloatConvArgs b = a;
  b.row_scale = scale;
  conv_row<Int8Block>(b, xp, Wp, oy, out);
}

bool int8_supported() { return __builtin_cpu_supports("avx512vnni"); }

// ---------------------------------------------------------------------------------------
// Pools and the dense layer: the portable order of operations, 16 channels at a time.

DWR_AVX512 void max_pixel(const float* in, int64_t row, int C, int y0, int y1, int x0, int x1,
                          float* dst) {
  for (int c = 0; c < C; c += 16) {
    const __mmask16 lm = lanes16(C - c);
    __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x)
        m = _mm512_max_ps(
            _mm512_maskz_loadu_ps(lm, in + y * row + static_cast<int64_t>(x) * C + c), m);
    _mm512_mask_storeu_ps(dst + c, lm, m);
  }
}

DWR_AVX512 void avg_pixel(const float* in, int64_t row, int C, int y0, int y1, int x0, int x1,
                          float* dst) {
  const __m512 inv = _mm512_set1_ps(1.0f / static_cast<float>((y1 - y0) * (x1 - x0)));
  for (int c = 0; c < C; c += 16) {
    const __mmask16 lm = lanes16(C - c);
    __m512 s = _mm512_setzero_ps();
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x)
        s = _mm512_add_ps(
            s, _mm512_maskz_loadu_ps(lm, in + y * row + static_cast<int64_t>(x) * C + c));
    _mm512_mask_storeu_ps(dst + c, lm, _mm512_mul_ps(s, inv));
  }
}

DWR_AVX512 void dense_block(const float* x, int C, const float* wb, const float* bias,
                            float* out) {
  __m512 acc[4];
  for (int v = 0; v < 4; ++v) acc[v] = _mm512_setzero_ps();
  for (int c = 0; c < C; ++c) {
    const __m512 xc = _mm512_set1_ps(x[c]);
    for (int v = 0; v < 4; ++v)
      acc[v] = _mm512_add_ps(acc[v], _mm512_mul_ps(xc, _mm512_loadu_ps(wb + c * 64 + 16 * v)));
  }
  for (int v = 0; v < 4; ++v)
    _mm512_storeu_ps(out + 16 * v, _mm512_add_ps(acc[v], _mm512_loadu_ps(bias + 16 * v)));
}

// The GEMM's 6 x 4 tile without its loads: XOR, VPOPCNTQ and add on 24 accumulators.
DWR_AVX512 uint64_t popcount_peak(int64_t iters) {
  const __m512i step = _mm512_set1_epi64(0x9E3779B97F4A7C15LL);
  __m512i acc[6][4], x[6], w[4];
  for (int p = 0; p < 6; ++p) {
    x[p] = _mm512_set1_epi64(p + 1);
    for (int q = 0; q < 4; ++q) acc[p][q] = _mm512_setzero_si512();
  }
  for (int q = 0; q < 4; ++q) w[q] = _mm512_set1_epi64(q + 7);
  for (int64_t i = 0; i < iters; ++i) {
    for (int q = 0; q < 4; ++q) w[q] = _mm512_add_epi64(w[q], step);
    for (int p = 0; p < 6; ++p)
      for (int q = 0; q < 4; ++q)
        acc[p][q] = _mm512_add_epi64(acc[p][q], _mm512_popcnt_epi64(_mm512_xor_si512(x[p], w[q])));
  }
  __m512i s = _mm512_setzero_si512();
  for (int p = 0; p < 6; ++p)
    for (int q = 0; q < 4; ++q) s = _mm512_add_epi64(s, acc[p][q]);
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(s));
}

constexpr Kernels kAvx512 = {
    "avx512",       1,           1,          nullptr,   weight_words, prepare_weight,
    popgemm,        epilogue_float, pack_row, float_conv_row, max_pixel, avg_pixel,
    dense_block,    popcount_peak, 6 * 4 * 512,
    float_conv_row_bf16, bf16_supported,
    float_conv_row_int8, int8_supported,
    {6, 8},         {6, 16},  // popgemm: 6 pixels x groups of 8; conv_row_nv: 6 pixels x 16
    epilogue_bits,
};

}  // namespace

const Kernels* avx512_kernels() { return &kAvx512; }

}  // namespace dwr

#else
namespace dwr {
const Kernels* avx512_kernels() { return nullptr; }
}  // namespace dwr
#endif
