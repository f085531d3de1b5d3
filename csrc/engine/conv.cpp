#include "conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "activation.h"
#include "threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DWR_X86 1
#endif

namespace dwr {
namespace {

bool g_force_portable = false;
constexpr uint64_t kLowNibbles = 0x0F0F0F0F0F0F0F0FULL;  // low nibble of every byte

bool use_avx2() {
#ifdef DWR_X86
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
  return ok && !g_force_portable;
#else
  return false;
#endif
}

// The sign convention of packed activations: bit set (value -1) where !(x + shift >= 0), so
// 0 and -0 pack as +1 and NaN as -1, exactly like dwr's sign in PyTorch.
inline bool negative(float x, const float* shift, int c) {
  return !((shift ? x + shift[c] : x) >= 0.0f);
}

#ifdef DWR_X86
// The same rule for eight channels c..c+7: bit i of the result is channel c + i.
__attribute__((target("avx2"))) inline int negative8(__m256 x, const float* shift, int c) {
  if (shift) x = _mm256_add_ps(x, _mm256_loadu_ps(shift + c));
  return _mm256_movemask_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NGE_UQ));
}
#endif

// ---------------------------------------------------------------------------------------
// Popcount GEMM: pop[i][j] = sum_k popcount(A[i][k] ^ B_j[k]) for A: [M][K] (im2col rows)
// and B in lane layout [Op/4][K][4]: the weights of outputs 4g..4g+3 for word k sit side by
// side, so one 256-bit XOR with a broadcast input word covers four output channels and the
// four popcounts land in the four 64-bit lanes: no horizontal sums, no row padding.

inline int popcount64(uint64_t v) {
#if defined(__GNUC__)
  return __builtin_popcountll(v);
#else
  v = v - ((v >> 1) & 0x5555555555555555ULL);
  v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
  v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
  return static_cast<int>((v * 0x0101010101010101ULL) >> 56);
#endif
}

void popgemm_portable(const uint64_t* A, int M, const uint64_t* B, int Op, int K, int32_t* pop,
                      int ldp) {
  for (int i = 0; i < M; ++i) {
    const uint64_t* a = A + static_cast<int64_t>(i) * K;
    for (int j = 0; j < Op; ++j) {
      const uint64_t* b = B + static_cast<int64_t>(j / 4) * K * 4 + (j % 4);
      int s = 0;
      for (int k = 0; k < K; ++k) s += popcount64(a[k] ^ b[4 * k]);
      pop[static_cast<int64_t>(i) * ldp + j] = s;
    }
  }
}

#ifdef DWR_X86
// The AVX2 GEMM works on *nibble-split* operands: a word x becomes the pair
// (x & 0x0F.., (x >> 4) & 0x0F..), the low and the high nibble of every byte. XOR commutes
// with the split, so popcount(x ^ w) = sum over bytes of LUT[xl ^ wl] + LUT[xh ^ wh], and the
// masking and shifting of the nibble-lookup popcount is done once per operand word instead of
// once per (pixel, output group, word): 6 vector ops per 256 binary MACs instead of 8.

// Lane-layout weights [Op/4][K][4] -> [Op/4][K][2][4]: the four low-nibble words of step k,
// then the four high-nibble words.
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
__attribute__((target("avx2"), always_inline)) inline void popgemm_block(
    const uint64_t* a, int K, const __m256i* b, int64_t gstride, int32_t* out, int ldp) {
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
__attribute__((target("avx2,popcnt"))) void popgemm_avx2(const uint64_t* A, int M,
                                                         const uint64_t* B, int Op, int K,
                                                         int32_t* pop, int ldp) {
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

__attribute__((target("avx2"))) void pack_signs_avx2(const float* x, const float* shift,
                                                     int C, uint64_t* bits) {
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
#endif

// Sign bits (see negative) of channels c0..c1-1 of one pixel into its words c0/64 ..
// (c1-1)/64; c0 is a multiple of 64, bits from c1 on in the last word are 0.
void pack_signs_portable(const float* x, const float* shift, int c0, int c1, uint64_t* bits) {
  for (int w = c0 >> 6; 64 * w < c1; ++w) {
    uint64_t word = 0;
    for (int c = 64 * w; c < std::min(c1, 64 * w + 64); ++c)
      if (negative(x[c], shift, c)) word |= 1ULL << (c & 63);
    bits[w] = word;
  }
}

// The dot products of a task's pixels, read straight from the GEMM's popcounts:
// dot[r][o] = full[r] - 2 * pop[r][o], with full[r] = |valid taps of pixel r| * C and the
// padded taps' weight popcounts already taken out of pop (border pixels only). Reading them
// in the epilogue saves a pass over the popcount buffer.
struct Dots {
  const int32_t* pop;   // [m][ld]
  const int32_t* full;  // [m]
  int ld;
  int32_t at(int r, int o) const { return full[r] - 2 * pop[static_cast<size_t>(r) * ld + o]; }
#ifdef DWR_X86
  __attribute__((target("avx2"))) __m256i at8(int r, int o) const {
    const __m256i p = _mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(pop + static_cast<size_t>(r) * ld + o));
    return _mm256_sub_epi32(_mm256_set1_epi32(full[r]), _mm256_slli_epi32(p, 1));
  }
  // Lanes of `mask` only (the last, partial group of eight channels; the rest read as 0).
  __attribute__((target("avx2"))) __m256i at8_masked(int r, int o, __m256i mask) const {
    const __m256i p = _mm256_maskload_epi32(pop + static_cast<size_t>(r) * ld + o, mask);
    return _mm256_sub_epi32(_mm256_set1_epi32(full[r]), _mm256_slli_epi32(p, 1));
  }
#endif
};

// y = scale * dot + bias (+ residual), then the activation, per output channel. The AVX2
// path does eight channels at a time with the same operations in the same order (no FMA
// contraction, see CMakeLists.txt), so both paths give bit-identical outputs.
template <int ACT, bool RES>
void epilogue_float_portable(const ConvGeom& g, const Epilogue& ep, const Dots& dots,
                             int64_t p0, int m, int o0, int o1) {
  const ActParams act{ep.act_in, ep.act_slope, ep.act_out};
  const int ocw = (g.O + 63) / 64;
  for (int r = 0; r < m; ++r) {
    float* out = ep.out_float + (p0 + r) * g.O;
    const float* res = RES ? ep.residual + (p0 + r) * g.O : nullptr;
    for (int o = o0; o < o1; ++o) {
      float y = ep.scale[o] * static_cast<float>(dots.at(r, o)) + ep.bias[o];
      if (RES) y += res[o];
      out[o] = activate(y, ACT, act, o);
    }
    if (ep.next_bits)
      pack_signs_portable(out, ep.next_shift, o0, o1, ep.next_bits + (p0 + r) * ocw);
  }
}

#ifdef DWR_X86
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
  __attribute__((target("avx2"))) Tail8(const Epilogue& ep, int o8, int o1) {
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
__attribute__((target("avx2"))) void epilogue_float_avx2(const ConvGeom& g, const Epilogue& ep,
                                                         const Dots& dots, int64_t p0,
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
      const __m256 dot = _mm256_cvtepi32_ps(dots.at8(r, o));
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
      const __m256 dot = _mm256_cvtepi32_ps(dots.at8_masked(r, O8, tail.mask));
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
#endif

template <int ACT>
void epilogue_float(const ConvGeom& g, const Epilogue& ep, const Dots& dots, int64_t p0,
                    int m, int o0, int o1) {
#ifdef DWR_X86
  if (use_avx2()) {
    if (ep.residual)
      epilogue_float_avx2<ACT, true>(g, ep, dots, p0, m, o0, o1);
    else
      epilogue_float_avx2<ACT, false>(g, ep, dots, p0, m, o0, o1);
    return;
  }
#endif
  if (ep.residual)
    epilogue_float_portable<ACT, true>(g, ep, dots, p0, m, o0, o1);
  else
    epilogue_float_portable<ACT, false>(g, ep, dots, p0, m, o0, o1);
}

// The outputs o0..o1-1 of pixels p0..p0+m-1 (o0 a multiple of 64, so that bit words are
// whole), from their dot products.
void epilogue(const ConvGeom& g, const Epilogue& ep, const Dots& dots, int64_t p0, int m,
              int o0, int o1) {
  if (ep.mode == MODE_INT) {
    for (int r = 0; r < m; ++r) {
      int32_t* __restrict out = ep.out_int + (p0 + r) * g.O;
      const int32_t* __restrict pop = dots.pop + static_cast<size_t>(r) * dots.ld;
      const int32_t full = dots.full[r];
      for (int o = o0; o < o1; ++o) out[o] = full - 2 * pop[o];
    }
  } else if (ep.mode == MODE_FLOAT) {
    if (ep.act == ACT_HARDTANH)
      epilogue_float<ACT_HARDTANH>(g, ep, dots, p0, m, o0, o1);
    else if (ep.act == ACT_RPRELU)
      epilogue_float<ACT_RPRELU>(g, ep, dots, p0, m, o0, o1);
    else
      epilogue_float<ACT_NONE>(g, ep, dots, p0, m, o0, o1);
  } else {
    const int ocw = (g.O + 63) / 64;
    for (int r = 0; r < m; ++r) {
      uint64_t* out = ep.out_bits + (p0 + r) * ocw;
      for (int w = o0 / 64; w < (o1 + 63) / 64; ++w) {
        uint64_t word = 0;
        const int end = std::min(g.O, 64 * w + 64);
        for (int o = 64 * w; o < end; ++o) {
          const int32_t d = dots.at(r, o);
          const bool positive = ep.flip[o] ? d <= ep.thr[o] : d >= ep.thr[o];
          word |= static_cast<uint64_t>(!positive) << (o & 63);
        }
        out[w] = word;
      }
    }
  }
}

// Output pixel coordinates of a run of consecutive pixels, advanced without divisions.
struct PixelCursor {
  const ConvGeom& g;
  int n, oy, ox;
  PixelCursor(const ConvGeom& geom, int64_t p) : g(geom) {
    const int64_t per_image = static_cast<int64_t>(g.OH) * g.OW;
    n = static_cast<int>(p / per_image);
    const int rem = static_cast<int>(p % per_image);
    oy = rem / g.OW;
    ox = rem % g.OW;
  }
  void next() {
    if (++ox < g.OW) return;
    ox = 0;
    if (++oy < g.OH) return;
    oy = 0;
    ++n;
  }
};

// Nibble-split words (the AVX2 GEMM's operand form): word i becomes the pair (low nibbles,
// high nibbles) at 2i, 2i + 1. Splitting the input once lets im2col copy split pairs, instead
// of splitting every word once per kernel tap that reads it.
[[maybe_unused]] void split_words(const uint64_t* src, int64_t n, uint64_t* dst) {
  for (int64_t i = 0; i < n; ++i) {
    dst[2 * i] = src[i] & kLowNibbles;
    dst[2 * i + 1] = (src[i] >> 4) & kLowNibbles;
  }
}

// im2col on bits for pixels p0..p0+m-1, each input pixel `cw` words (Cw, or 2 Cw when the
// input is nibble-split): row = [tap][word], padded taps zero. padded[r] has bit t set for
// each tap t of pixel r's window outside the image (k <= 7: at most 49 taps), which its dot
// product must leave out.
void im2col(const ConvGeom& g, const uint64_t* in, int cw, int64_t p0, int m, uint64_t* rows,
            uint64_t* padded) {
  const int k = g.k, width = g.T * cw;
  PixelCursor at(g, p0);
  for (int r = 0; r < m; ++r, at.next()) {
    uint64_t* dst = rows + static_cast<int64_t>(r) * width;
    const int iy0 = at.oy * g.stride - g.pad, ix0 = at.ox * g.stride - g.pad;
    const bool inside = iy0 >= 0 && ix0 >= 0 && iy0 + k <= g.H && ix0 + k <= g.W;
    padded[r] = 0;
    const uint64_t* base = in + static_cast<int64_t>(at.n) * g.H * g.W * cw;
    if (inside) {
      for (int ky = 0; ky < k; ++ky)
        std::copy_n(base + (static_cast<int64_t>(iy0 + ky) * g.W + ix0) * cw, k * cw,
                    dst + ky * k * cw);
      continue;
    }
    std::fill(dst, dst + width, 0);
    for (int ky = 0; ky < k; ++ky) {
      const int iy = iy0 + ky;
      for (int kx = 0; kx < k; ++kx) {
        const int ix = ix0 + kx, t = ky * k + kx;
        if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) {
          padded[r] |= 1ULL << t;
          continue;
        }
        std::copy_n(base + (static_cast<int64_t>(iy) * g.W + ix) * cw, cw, dst + t * cw);
      }
    }
  }
}

}  // namespace

const char* kernel_isa() { return use_avx2() ? "avx2" : "portable"; }
bool avx2_enabled() { return use_avx2(); }
void force_portable(bool on) { g_force_portable = on; }

void binary_conv(const ConvGeom& g, const uint64_t* in_bits, const uint64_t* wbits,
                 const int32_t* wpop, const Epilogue& ep, const uint64_t* wsplit) {
  const int64_t P = static_cast<int64_t>(g.N) * g.OH * g.OW;
  if (P == 0 || g.O == 0) return;
  const int threads = get_num_threads();
  // Pixels per task: an im2col chunk that stays in L1. With several threads the work must
  // also split into enough tasks to balance them. Every pixel task streams all the weights,
  // so layers with large weights (the deep 3x3 convs on few pixels) split their output
  // channels into slices of whole 64-channel blocks instead of making more pixel tasks.
  int chunk = static_cast<int>(std::max<int64_t>(2, 3072 / std::max(1, g.Kp)));
  const int blocks = (g.Op + 63) / 64;
  int slice_blocks = blocks;
  if (threads > 1) {
    const int64_t want = 4 * static_cast<int64_t>(threads);
    const int64_t weight_bytes = static_cast<int64_t>(g.Op) * g.Kp * 16;
    const int64_t pixel_tasks = (P + chunk - 1) / chunk;
    if (weight_bytes > (64 << 10) && pixel_tasks < want && blocks > 1) {
      const int64_t slices = std::min<int64_t>(blocks, (want + pixel_tasks - 1) / pixel_tasks);
      slice_blocks = static_cast<int>((blocks + slices - 1) / slices);
    } else {
      const int64_t per_thread = (P + want - 1) / want;
      chunk = static_cast<int>(std::min<int64_t>(chunk, std::max<int64_t>(8, per_thread)));
    }
  }
  chunk = std::max(2, chunk & ~1);
  const int64_t pixel_tasks = (P + chunk - 1) / chunk;
  const int n_slices = (blocks + slice_blocks - 1) / slice_blocks;
  const int64_t n_tasks = pixel_tasks * n_slices;
  const bool avx2 = use_avx2();
  // Weight tap popcounts as [T][O], so the border correction runs along output channels.
  thread_local std::vector<int32_t> wpop_t_buf;
  wpop_t_buf.resize(static_cast<size_t>(g.T) * g.O);
  for (int o = 0; o < g.O; ++o)
    for (int t = 0; t < g.T; ++t)
      wpop_t_buf[static_cast<size_t>(t) * g.O + o] = wpop[static_cast<int64_t>(o) * g.T + t];
  const int32_t* wpop_t = wpop_t_buf.data();
#ifdef DWR_X86
  thread_local std::vector<uint64_t> wsplit_buf;
  if (avx2 && wsplit == nullptr) {
    wsplit_buf.resize(static_cast<size_t>(g.Op) * g.Kp * 2);
    split_weight_lanes(wbits, g.Op, g.Kp, wsplit_buf.data());
    wsplit = wsplit_buf.data();
  }
  thread_local std::vector<uint64_t> in_split_buf;
  if (avx2) {
    const int64_t n_words = static_cast<int64_t>(g.N) * g.H * g.W * g.Cw;
    in_split_buf.resize(static_cast<size_t>(n_words) * 2);
    split_words(in_bits, n_words, in_split_buf.data());
  }
  const uint64_t* in_split = in_split_buf.data();
#endif

  parallel_for(static_cast<int>(n_tasks), [&](int task) {
    const int64_t p0 = static_cast<int64_t>(task / n_slices) * chunk;
    const int m = static_cast<int>(std::min<int64_t>(chunk, P - p0));
    // output channels [o0, o1) of this task: GEMM rows [o0, op1) of the 4-padded weight
    const int o0 = (task % n_slices) * slice_blocks * 64;
    const int op1 = std::min(g.Op, o0 + slice_blocks * 64), o1 = std::min(g.O, op1);
    thread_local std::vector<uint64_t> rows;
    thread_local std::vector<int32_t> pop;
    thread_local std::vector<uint64_t> padded;
    thread_local std::vector<int32_t> full;
    pop.resize(static_cast<size_t>(m) * g.Op);
    padded.resize(static_cast<size_t>(m));
    full.resize(static_cast<size_t>(m));
#ifdef DWR_X86
    if (avx2) {
      rows.resize(static_cast<size_t>(m) * g.Kp * 2);
      im2col(g, in_split, 2 * g.Cw, p0, m, rows.data(), padded.data());
      popgemm_avx2(rows.data(), m, wsplit + static_cast<int64_t>(o0) * g.Kp * 2, op1 - o0,
                   g.Kp, pop.data() + o0, g.Op);
    } else
#endif
    {
      rows.resize(static_cast<size_t>(m) * g.Kp);
      im2col(g, in_bits, g.Cw, p0, m, rows.data(), padded.data());
      popgemm_portable(rows.data(), m, wbits + static_cast<int64_t>(o0) * g.Kp, op1 - o0, g.Kp,
                       pop.data() + o0, g.Op);
    }
    (void)avx2;

    // dot = |valid| * C - 2 * (pop - sum of padded taps' popcounts): the padded taps come
    // out of pop here (border pixels only), the rest is done as the epilogue reads the dots.
    for (int r = 0; r < m; ++r) {
      full[r] = g.T * g.C;
      if (padded[r] == 0) continue;  // an interior pixel
      full[r] -= popcount64(padded[r]) * g.C;
      int32_t* __restrict drow = pop.data() + static_cast<size_t>(r) * g.Op;
      for (int t = 0; padded[r] >> t != 0; ++t) {
        if (!(padded[r] >> t & 1)) continue;
        const int32_t* __restrict wq = wpop_t + static_cast<int64_t>(t) * g.O;
        for (int o = o0; o < o1; ++o) drow[o] -= wq[o];
      }
    }
    epilogue(g, ep, Dots{pop.data(), full.data(), g.Op}, p0, m, o0, o1);
  });
}

void pack_signs(const float* x, const float* shift, int64_t P, int C, uint64_t* bits) {
  if (P <= 0 || C <= 0) return;
  const int Cw = (C + 63) / 64;
  const int threads = get_num_threads();
  const int64_t chunk = std::max<int64_t>(64, (P + 4 * threads - 1) / (4 * threads));
  const int64_t n_tasks = (P + chunk - 1) / chunk;
  const bool avx2 = use_avx2();
  parallel_for(static_cast<int>(n_tasks), [&](int task) {
    const int64_t a = task * chunk, b = std::min(P, a + chunk);
    for (int64_t p = a; p < b; ++p) {
#ifdef DWR_X86
      if (avx2) {
        pack_signs_avx2(x + p * C, shift, C, bits + p * Cw);
        continue;
      }
#endif
      pack_signs_portable(x + p * C, shift, 0, C, bits + p * Cw);
    }
    (void)avx2;
  });
}

void pool_bits_2x2(const uint64_t* in, int N, int H, int W, int Cw, uint64_t* out) {
  const int OH = H / 2, OW = W / 2;
  for (int n = 0; n < N; ++n)
    for (int y = 0; y < OH; ++y)
      for (int x = 0; x < OW; ++x) {
        const uint64_t* r0 = in + ((static_cast<int64_t>(n) * H + 2 * y) * W + 2 * x) * Cw;
        const uint64_t* r1 = r0 + static_cast<int64_t>(W) * Cw;
        uint64_t* d = out + ((static_cast<int64_t>(n) * OH + y) * OW + x) * Cw;
        for (int w = 0; w < Cw; ++w) d[w] = r0[w] & r0[Cw + w] & r1[w] & r1[Cw + w];
      }
}

}  // namespace dwr
