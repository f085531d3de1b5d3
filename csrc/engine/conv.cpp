#include "conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DWR_X86 1
#endif

namespace dwr {
namespace {

bool g_force_portable = false;
int g_tail_mode = 1;  // 0: always whole 4-word vector steps (for A/B tests of the tail path)

bool use_avx2() {
#ifdef DWR_X86
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
  return ok && !g_force_portable;
#else
  return false;
#endif
}

// ---------------------------------------------------------------------------------------
// Popcount GEMM: pop[i][j] = sum_k popcount(A[i][k] ^ B[j][k]), A: [M][Kp], B: [Op][Kp].
// M any, Op a multiple of 4, Kp a multiple of 4 words. pop has row stride ldp.

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

void popgemm_portable(const uint64_t* A, int M, const uint64_t* B, int Op, int Kp,
                      int32_t* pop, int ldp) {
  for (int i = 0; i < M; ++i) {
    const uint64_t* a = A + static_cast<int64_t>(i) * Kp;
    for (int j = 0; j < Op; ++j) {
      const uint64_t* b = B + static_cast<int64_t>(j) * Kp;
      int s = 0;
      for (int k = 0; k < Kp; ++k) s += popcount64(a[k] ^ b[k]);
      pop[static_cast<int64_t>(i) * ldp + j] = s;
    }
  }
}

#ifdef DWR_X86
// Sums of the four 64-bit lanes of each of s0..s3 (each sum < 2^32) as four int32.
__attribute__((target("avx2"))) inline __m128i hsum4(__m256i s0, __m256i s1, __m256i s2,
                                                     __m256i s3) {
  const __m256i t01 = _mm256_or_si256(s0, _mm256_slli_epi64(s1, 32));
  const __m256i t23 = _mm256_or_si256(s2, _mm256_slli_epi64(s3, 32));
  const __m256i u = _mm256_add_epi64(_mm256_unpacklo_epi64(t01, t23),
                                     _mm256_unpackhi_epi64(t01, t23));
  return _mm_add_epi64(_mm256_castsi256_si128(u), _mm256_extracti128_si256(u, 1));
}

// Nibble-lookup popcount (vpshufb) of a XOR b, accumulated as bytes; each 256-bit step adds
// at most 8 per byte, so byte counters are flushed (vpsadbw) every 31 steps.
//
// Only the first Kv words (a multiple of 4) go through the vector loop; the next `tail`
// words (tail < 4, Kv + tail <= Kp) are counted with scalar popcnt, which runs on the integer
// ports beside the vector work. Words past Kv + tail must be zero in A or B (padding), so a
// row of 9 real words (Cin = 64, 3x3) costs 2 vector steps + 1 scalar word, not 3 steps.
__attribute__((target("avx2,popcnt"))) void popgemm_avx2(const uint64_t* A, int M,
                                                         const uint64_t* B, int Op, int Kp,
                                                         int Kv, int tail, int32_t* pop,
                                                         int ldp) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1,
                                       1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i lo4 = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  const int steps = Kv / 4;
  const int64_t kstride = Kp / 4;  // row stride in 256-bit units

#define DWR_PC(acc, v)                                                                   \
  do {                                                                                   \
    const __m256i _v = (v);                                                              \
    acc = _mm256_add_epi8(acc, _mm256_shuffle_epi8(lut, _mm256_and_si256(_v, lo4)));     \
    acc = _mm256_add_epi8(                                                               \
        acc, _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(_v, 4), lo4))); \
  } while (0)

  for (int i = 0; i < M; i += 2) {
    const bool two = i + 1 < M;
    const uint64_t* a0w = A + static_cast<int64_t>(i) * Kp;
    const uint64_t* a1w = A + static_cast<int64_t>(two ? i + 1 : i) * Kp;
    const __m256i* a0p = reinterpret_cast<const __m256i*>(a0w);
    const __m256i* a1p = reinterpret_cast<const __m256i*>(a1w);
    for (int j = 0; j < Op; j += 4) {
      const uint64_t* bw = B + static_cast<int64_t>(j) * Kp;
      const __m256i* b0p = reinterpret_cast<const __m256i*>(bw);
      const __m256i* b1p = b0p + kstride;
      const __m256i* b2p = b1p + kstride;
      const __m256i* b3p = b2p + kstride;
      __m128i r0, r1;
      if (steps <= 31) {
        // One block: no running 64-bit sums, so the eight byte counters stay in registers.
        __m256i c00 = zero, c01 = zero, c02 = zero, c03 = zero;
        __m256i c10 = zero, c11 = zero, c12 = zero, c13 = zero;
        for (int k = 0; k < steps; ++k) {
          const __m256i a0 = _mm256_loadu_si256(a0p + k);
          const __m256i a1 = _mm256_loadu_si256(a1p + k);
          __m256i b = _mm256_loadu_si256(b0p + k);
          DWR_PC(c00, _mm256_xor_si256(a0, b));
          DWR_PC(c10, _mm256_xor_si256(a1, b));
          b = _mm256_loadu_si256(b1p + k);
          DWR_PC(c01, _mm256_xor_si256(a0, b));
          DWR_PC(c11, _mm256_xor_si256(a1, b));
          b = _mm256_loadu_si256(b2p + k);
          DWR_PC(c02, _mm256_xor_si256(a0, b));
          DWR_PC(c12, _mm256_xor_si256(a1, b));
          b = _mm256_loadu_si256(b3p + k);
          DWR_PC(c03, _mm256_xor_si256(a0, b));
          DWR_PC(c13, _mm256_xor_si256(a1, b));
        }
        r0 = hsum4(_mm256_sad_epu8(c00, zero), _mm256_sad_epu8(c01, zero),
                   _mm256_sad_epu8(c02, zero), _mm256_sad_epu8(c03, zero));
        r1 = hsum4(_mm256_sad_epu8(c10, zero), _mm256_sad_epu8(c11, zero),
                   _mm256_sad_epu8(c12, zero), _mm256_sad_epu8(c13, zero));
      } else {
        __m256i s00 = zero, s01 = zero, s02 = zero, s03 = zero;
        __m256i s10 = zero, s11 = zero, s12 = zero, s13 = zero;
        for (int k0 = 0; k0 < steps; k0 += 31) {
          const int k1 = std::min(steps, k0 + 31);
          __m256i c00 = zero, c01 = zero, c02 = zero, c03 = zero;
          __m256i c10 = zero, c11 = zero, c12 = zero, c13 = zero;
          for (int k = k0; k < k1; ++k) {
            const __m256i a0 = _mm256_loadu_si256(a0p + k);
            const __m256i a1 = _mm256_loadu_si256(a1p + k);
            __m256i b = _mm256_loadu_si256(b0p + k);
            DWR_PC(c00, _mm256_xor_si256(a0, b));
            DWR_PC(c10, _mm256_xor_si256(a1, b));
            b = _mm256_loadu_si256(b1p + k);
            DWR_PC(c01, _mm256_xor_si256(a0, b));
            DWR_PC(c11, _mm256_xor_si256(a1, b));
            b = _mm256_loadu_si256(b2p + k);
            DWR_PC(c02, _mm256_xor_si256(a0, b));
            DWR_PC(c12, _mm256_xor_si256(a1, b));
            b = _mm256_loadu_si256(b3p + k);
            DWR_PC(c03, _mm256_xor_si256(a0, b));
            DWR_PC(c13, _mm256_xor_si256(a1, b));
          }
          s00 = _mm256_add_epi64(s00, _mm256_sad_epu8(c00, zero));
          s01 = _mm256_add_epi64(s01, _mm256_sad_epu8(c01, zero));
          s02 = _mm256_add_epi64(s02, _mm256_sad_epu8(c02, zero));
          s03 = _mm256_add_epi64(s03, _mm256_sad_epu8(c03, zero));
          s10 = _mm256_add_epi64(s10, _mm256_sad_epu8(c10, zero));
          s11 = _mm256_add_epi64(s11, _mm256_sad_epu8(c11, zero));
          s12 = _mm256_add_epi64(s12, _mm256_sad_epu8(c12, zero));
          s13 = _mm256_add_epi64(s13, _mm256_sad_epu8(c13, zero));
        }
        r0 = hsum4(s00, s01, s02, s03);
        r1 = hsum4(s10, s11, s12, s13);
      }
      if (tail > 0) {
        const uint64_t* c0 = bw + Kv;
        const uint64_t* c1 = c0 + Kp;
        const uint64_t* c2 = c1 + Kp;
        const uint64_t* c3 = c2 + Kp;
        const uint64_t x0 = a0w[Kv], x1 = a1w[Kv];
        int64_t u00 = _mm_popcnt_u64(x0 ^ c0[0]), u01 = _mm_popcnt_u64(x0 ^ c1[0]);
        int64_t u02 = _mm_popcnt_u64(x0 ^ c2[0]), u03 = _mm_popcnt_u64(x0 ^ c3[0]);
        int64_t u10 = _mm_popcnt_u64(x1 ^ c0[0]), u11 = _mm_popcnt_u64(x1 ^ c1[0]);
        int64_t u12 = _mm_popcnt_u64(x1 ^ c2[0]), u13 = _mm_popcnt_u64(x1 ^ c3[0]);
        if (tail > 1) {
          const uint64_t y0 = a0w[Kv + 1], y1 = a1w[Kv + 1];
          u00 += _mm_popcnt_u64(y0 ^ c0[1]);
          u01 += _mm_popcnt_u64(y0 ^ c1[1]);
          u02 += _mm_popcnt_u64(y0 ^ c2[1]);
          u03 += _mm_popcnt_u64(y0 ^ c3[1]);
          u10 += _mm_popcnt_u64(y1 ^ c0[1]);
          u11 += _mm_popcnt_u64(y1 ^ c1[1]);
          u12 += _mm_popcnt_u64(y1 ^ c2[1]);
          u13 += _mm_popcnt_u64(y1 ^ c3[1]);
        }
        r0 = _mm_add_epi32(r0, _mm_setr_epi32(static_cast<int>(u00), static_cast<int>(u01),
                                               static_cast<int>(u02), static_cast<int>(u03)));
        r1 = _mm_add_epi32(r1, _mm_setr_epi32(static_cast<int>(u10), static_cast<int>(u11),
                                               static_cast<int>(u12), static_cast<int>(u13)));
      }
      int32_t* p0 = pop + static_cast<int64_t>(i) * ldp + j;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p0), r0);
      if (two) _mm_storeu_si128(reinterpret_cast<__m128i*>(p0 + ldp), r1);
    }
  }
#undef DWR_PC
}

__attribute__((target("avx2"))) void pack_signs_avx2(const float* x, const float* shift,
                                                     int C, uint64_t* bits) {
  const int Cw = (C + 63) / 64;
  const __m256 zero = _mm256_setzero_ps();
  for (int w = 0; w < Cw; ++w) {
    uint64_t word = 0;
    const int c0 = w * 64;
    const int c1 = std::min(C, c0 + 64);
    int c = c0;
    for (; c + 8 <= c1; c += 8) {
      __m256 v = _mm256_loadu_ps(x + c);
      if (shift) v = _mm256_add_ps(v, _mm256_loadu_ps(shift + c));
      const int m = _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NGE_UQ));
      word |= static_cast<uint64_t>(m) << (c - c0);
    }
    for (; c < c1; ++c) {
      const float v = shift ? x[c] + shift[c] : x[c];
      if (!(v >= 0.0f)) word |= 1ULL << (c - c0);
    }
    bits[w] = word;
  }
}
#endif

void pack_signs_portable(const float* x, const float* shift, int C, uint64_t* bits) {
  const int Cw = (C + 63) / 64;
  for (int w = 0; w < Cw; ++w) bits[w] = 0;
  for (int c = 0; c < C; ++c) {
    const float v = shift ? x[c] + shift[c] : x[c];
    if (!(v >= 0.0f)) bits[c >> 6] |= 1ULL << (c & 63);
  }
}



// y = scale * dot + bias (+ residual), then the activation; one row (pixel) at a time.
template <int ACT, bool RES>
void epilogue_float_rows(const ConvGeom& g, const Epilogue& ep, const int32_t* dots,
                         int64_t p0, int m) {
  const float* __restrict sc = ep.scale;
  const float* __restrict bi = ep.bias;
  for (int r = 0; r < m; ++r) {
    const int32_t* __restrict d = dots + static_cast<size_t>(r) * g.Op;
    float* __restrict out = ep.out_float + (p0 + r) * g.O;
    const float* __restrict res = RES ? ep.residual + (p0 + r) * g.O : nullptr;
    for (int o = 0; o < g.O; ++o) {
      float y = sc[o] * static_cast<float>(d[o]) + bi[o];
      if (RES) y += res[o];
      if (ACT == ACT_HARDTANH) {
        y = y < -1.0f ? -1.0f : y;
        y = y > 1.0f ? 1.0f : y;
      } else if (ACT == ACT_RPRELU) {
        float t = y + ep.act_in[o];
        t = t >= 0.0f ? t : ep.act_slope[o] * t;
        y = t + ep.act_out[o];
      }
      out[o] = y;
    }
  }
}

template <int ACT>
void epilogue_float(const ConvGeom& g, const Epilogue& ep, const int32_t* dots, int64_t p0,
                    int m) {
  if (ep.residual)
    epilogue_float_rows<ACT, true>(g, ep, dots, p0, m);
  else
    epilogue_float_rows<ACT, false>(g, ep, dots, p0, m);
}

void epilogue(const ConvGeom& g, const Epilogue& ep, const int32_t* dots, int64_t p0, int m) {
  if (ep.mode == MODE_INT) {
    for (int r = 0; r < m; ++r)
      std::memcpy(ep.out_int + (p0 + r) * g.O, dots + static_cast<size_t>(r) * g.Op,
                  sizeof(int32_t) * g.O);
  } else if (ep.mode == MODE_FLOAT) {
    if (ep.act == ACT_HARDTANH)
      epilogue_float<ACT_HARDTANH>(g, ep, dots, p0, m);
    else if (ep.act == ACT_RPRELU)
      epilogue_float<ACT_RPRELU>(g, ep, dots, p0, m);
    else
      epilogue_float<ACT_NONE>(g, ep, dots, p0, m);
  } else {
    const int ocw = (g.O + 63) / 64;
    for (int r = 0; r < m; ++r) {
      const int32_t* d = dots + static_cast<size_t>(r) * g.Op;
      uint64_t* out = ep.out_bits + (p0 + r) * ocw;
      for (int w = 0; w < ocw; ++w) {
        uint64_t word = 0;
        const int o1 = std::min(g.O, 64 * w + 64);
        for (int o = 64 * w; o < o1; ++o) {
          const bool positive = ep.flip[o] ? d[o] <= ep.thr[o] : d[o] >= ep.thr[o];
          word |= static_cast<uint64_t>(!positive) << (o & 63);
        }
        out[w] = word;
      }
    }
  }
}

}  // namespace

const char* kernel_isa() { return use_avx2() ? "avx2" : "portable"; }
void force_portable(bool on) { g_force_portable = on; }
void set_scalar_tail(bool on) { g_tail_mode = on ? 1 : 0; }

void binary_conv(const ConvGeom& g, const uint64_t* in_bits, const uint64_t* wbits,
                 const int32_t* wpop, const Epilogue& ep) {
  const int64_t P = static_cast<int64_t>(g.N) * g.OH * g.OW;
  if (P == 0 || g.O == 0) return;
  const int threads = get_num_threads();
  // Pixels per task: enough tasks to balance the threads, an im2col chunk that stays in L1.
  int chunk = static_cast<int>(std::max<int64_t>(2, 3072 / std::max(1, g.Kp)));
  const int64_t per_thread = (P + 4 * threads - 1) / (4 * threads);
  if (threads > 1) chunk = static_cast<int>(std::min<int64_t>(chunk, std::max<int64_t>(8, per_thread)));
  chunk = std::max(2, chunk & ~1);
  const int64_t n_tasks = (P + chunk - 1) / chunk;
  const bool avx2 = use_avx2();
  // Vector words and scalar tail words of the GEMM (see popgemm_avx2): a row tail of 1 or 2
  // real words is cheaper as scalar popcnt than as a mostly-zero 4-word vector step.
  const int kreal = g.T * g.Cw;
  int kv = g.Kp, ktail = 0;
  if (g_tail_mode != 0 && (kreal & 3) != 0 && (kreal & 3) <= 2) {  // popgemm_avx2: tail <= 2
    kv = kreal & ~3;
    ktail = kreal & 3;
  }

  // Weight tap popcounts as [T][O], so the border correction runs along output channels.
  thread_local std::vector<int32_t> wpop_t_buf;
  wpop_t_buf.resize(static_cast<size_t>(g.T) * g.O);
  for (int o = 0; o < g.O; ++o)
    for (int t = 0; t < g.T; ++t)
      wpop_t_buf[static_cast<size_t>(t) * g.O + o] = wpop[static_cast<int64_t>(o) * g.T + t];
  const int32_t* wpop_t = wpop_t_buf.data();

  parallel_for(static_cast<int>(n_tasks), [&](int task) {
    const int64_t p0 = static_cast<int64_t>(task) * chunk;
    const int m = static_cast<int>(std::min<int64_t>(chunk, P - p0));
    thread_local std::vector<uint64_t> cols;
    thread_local std::vector<int32_t> pop;
    cols.assign(static_cast<size_t>(m) * g.Kp, 0);
    pop.resize(static_cast<size_t>(m) * g.Op);
    // im2col on bits: row = [tap][word], padded taps and the row tail stay zero.
    for (int r = 0; r < m; ++r) {
      const int64_t p = p0 + r;
      const int n = static_cast<int>(p / (g.OH * g.OW));
      const int rem = static_cast<int>(p % (g.OH * g.OW));
      const int oy = rem / g.OW, ox = rem % g.OW;
      uint64_t* dst = cols.data() + static_cast<size_t>(r) * g.Kp;
      const int iy0 = oy * g.stride - g.pad, ix0 = ox * g.stride - g.pad;
      const bool inside = iy0 >= 0 && ix0 >= 0 && iy0 + g.k <= g.H && ix0 + g.k <= g.W;
      const uint64_t* base = in_bits + (static_cast<int64_t>(n) * g.H * g.W) * g.Cw;
      if (inside && g.Cw == 1) {
        for (int ky = 0; ky < g.k; ++ky) {
          const uint64_t* src = base + (static_cast<int64_t>(iy0 + ky) * g.W + ix0);
          for (int kx = 0; kx < g.k; ++kx) dst[ky * g.k + kx] = src[kx];
        }
        continue;
      }
      if (inside) {
        for (int ky = 0; ky < g.k; ++ky) {
          const uint64_t* src = base + (static_cast<int64_t>(iy0 + ky) * g.W + ix0) * g.Cw;
          uint64_t* d = dst + ky * g.k * g.Cw;
          for (int q = 0; q < g.k * g.Cw; ++q) d[q] = src[q];
        }
        continue;
      }
      for (int ky = 0; ky < g.k; ++ky) {
        const int iy = iy0 + ky;
        if (iy < 0 || iy >= g.H) continue;
        for (int kx = 0; kx < g.k; ++kx) {
          const int ix = ix0 + kx;
          if (ix < 0 || ix >= g.W) continue;
          const uint64_t* src = base + (static_cast<int64_t>(iy) * g.W + ix) * g.Cw;
          uint64_t* d = dst + (ky * g.k + kx) * g.Cw;
          for (int q = 0; q < g.Cw; ++q) d[q] = src[q];
        }
      }
    }
#ifdef DWR_X86
    if (avx2)
      popgemm_avx2(cols.data(), m, wbits, g.Op, g.Kp, kv, ktail, pop.data(), g.Op);
    else
#endif
      popgemm_portable(cols.data(), m, wbits, g.Op, g.Kp, pop.data(), g.Op);
    (void)avx2;

    // pop -> dot in place: dot = |valid| * C - 2 * (pop - sum of padded taps' popcounts).
    // Plain local bounds and restrict pointers so that both loops vectorise.
    int invalid[64];
    const int O = g.O, OHW = g.OH * g.OW, OW = g.OW, k = g.k, H = g.H, W = g.W;
    for (int r = 0; r < m; ++r) {
      const int64_t p = p0 + r;
      const int rem = static_cast<int>(p % OHW);
      const int oy = rem / OW, ox = rem % OW;
      const int iy0 = oy * g.stride - g.pad, ix0 = ox * g.stride - g.pad;
      int n_invalid = 0;
      if (iy0 < 0 || ix0 < 0 || iy0 + k > H || ix0 + k > W) {
        for (int ky = 0; ky < k; ++ky) {
          const int iy = iy0 + ky;
          for (int kx = 0; kx < k; ++kx) {
            const int ix = ix0 + kx;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) invalid[n_invalid++] = ky * k + kx;
          }
        }
      }
      int32_t* __restrict drow = pop.data() + static_cast<size_t>(r) * g.Op;
      const int32_t full = (g.T - n_invalid) * g.C;
      for (int q = 0; q < n_invalid; ++q) {
        const int32_t* __restrict wq = wpop_t + static_cast<int64_t>(invalid[q]) * O;
        for (int o = 0; o < O; ++o) drow[o] -= wq[o];
      }
      for (int o = 0; o < O; ++o) drow[o] = full - 2 * drow[o];
    }
    epilogue(g, ep, pop.data(), p0, m);
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
      pack_signs_portable(x + p * C, shift, C, bits + p * Cw);
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
