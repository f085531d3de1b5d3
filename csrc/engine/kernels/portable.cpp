// The portable kernels: plain C++, the reference every other ISA is tested against.
#include <algorithm>
#include <vector>

#include "../activation.h"
#include "epilogue_dispatch.h"
#include "kernels.h"

namespace dwr {

int popcount64(uint64_t v) {
#if defined(__GNUC__)
  return __builtin_popcountll(v);
#else
  v = v - ((v >> 1) & 0x5555555555555555ULL);
  v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
  v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
  return static_cast<int>((v * 0x0101010101010101ULL) >> 56);
#endif
}

// Sign bits of channels c0..c1-1 of one pixel into its words c0/64 .. (c1-1)/64; c0 is a
// multiple of 64, bits from c1 on in the last word are 0.
void pack_signs_range(const float* x, const float* shift, int c0, int c1, uint64_t* bits) {
  for (int w = c0 >> 6; 64 * w < c1; ++w) {
    uint64_t word = 0;
    for (int c = 64 * w; c < std::min(c1, 64 * w + 64); ++c)
      if (negative(x[c], shift, c)) word |= 1ULL << (c & 63);
    bits[w] = word;
  }
}

namespace {

// Lane layout [Op/4][K][4] as it is: word k of outputs 4g..4g+3 side by side.
int64_t weight_words(int Op, int K) { return static_cast<int64_t>(Op) * K; }

void prepare_weight(const uint64_t* lanes, int Op, int K, uint64_t* dst) {
  std::copy_n(lanes, weight_words(Op, K), dst);
}

void popgemm(const uint64_t* A, int M, const uint64_t* B, int Op, int K, int32_t* pop,
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

// y = scale * dot + bias (+ residual), then the activation, per output channel; with
// next_bits, the signs of (y + next_shift) packed for the next binary conv.
template <int ACT, bool RES>
void epilogue_act(const ConvGeom& g, const Epilogue& ep, const Dots& dots, int64_t p0, int m,
                  int o0, int o1) {
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
      pack_signs_range(out, ep.next_shift, o0, o1, ep.next_bits + (p0 + r) * ocw);
  }
}

void epilogue_float(const ConvGeom& g, const Epilogue& ep, const Dots& dots, int64_t p0, int m,
                    int o0, int o1) {
  dispatch_epilogue(ep, [&](auto act, auto res) {
    epilogue_act<decltype(act)::value, decltype(res)::value>(g, ep, dots, p0, m, o0, o1);
  });
}

void pack_row(const float* x, const float* shift, int C, uint64_t* bits) {
  pack_signs_range(x, shift, 0, C, bits);
}

void float_conv_row(const FloatConvArgs& a, const float* xp, int Wp, int oy, float* out) {
  const int kC = a.k * a.C;
  std::vector<float> acc(a.O);
  for (int ox = 0; ox < a.OW; ++ox) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int ky = 0; ky < a.k; ++ky) {
      const float* xr =
          xp + (static_cast<int64_t>(oy * a.stride + ky) * Wp + ox * a.stride) * a.C;
      const float* wr = a.w + static_cast<int64_t>(ky) * kC * a.Op;
      for (int j = 0; j < kC; ++j)
        for (int o = 0; o < a.O; ++o) acc[o] += xr[j] * wr[static_cast<int64_t>(j) * a.Op + o];
    }
    float* dst = out + (static_cast<int64_t>(oy) * a.OW + ox) * a.O;
    const ActParams act{a.act_in, a.act_slope, a.act_out};
    for (int o = 0; o < a.O; ++o) dst[o] = activate(acc[o] + a.bias[o], a.act, act, o);
  }
}

// The int8 stem's reference: sum of (xq + 128 - 128) * wq over the taps of each kernel row
// (the quads' zero tail included), exact in int32, then float(dot) * scale[o] + bias[o].
void float_conv_row_int8(const FloatConvArgs& a, const uint8_t* xp, int Wp, int oy,
                         const float* scale, float* out) {
  const int quads = (a.k * a.C + 3) / 4;
  std::vector<int32_t> acc(a.O);
  const ActParams act{a.act_in, a.act_slope, a.act_out};
  for (int ox = 0; ox < a.OW; ++ox) {
    std::fill(acc.begin(), acc.end(), 0);
    for (int ky = 0; ky < a.k; ++ky) {
      const uint8_t* xr =
          xp + (static_cast<int64_t>(oy * a.stride + ky) * Wp + ox * a.stride) * a.C;
      const int8_t* wr = a.wq + static_cast<int64_t>(ky) * quads * a.Op * 4;
      for (int j = 0; j < 4 * quads; ++j) {
        const int32_t x = static_cast<int32_t>(xr[j]) - 128;
        const int8_t* wj = wr + (static_cast<int64_t>(j / 4) * a.Op) * 4 + j % 4;
        for (int o = 0; o < a.O; ++o) acc[o] += x * wj[4 * o];
      }
    }
    float* dst = out + (static_cast<int64_t>(oy) * a.OW + ox) * a.O;
    for (int o = 0; o < a.O; ++o) {
      const float y = static_cast<float>(acc[o]) * scale[o] + a.bias[o];
      dst[o] = activate(y, a.act, act, o);
    }
  }
}

bool int8_always() { return true; }

void max_pixel(const float* in, int64_t row, int C, int y0, int y1, int x0, int x1,
               float* dst) {
  max_channels(in, row, C, 0, y0, y1, x0, x1, dst);
}

void avg_pixel(const float* in, int64_t row, int C, int y0, int y1, int x0, int x1,
               float* dst) {
  avg_channels(in, row, C, 0, y0, y1, x0, x1, dst);
}

void dense_block(const float* x, int C, const float* wb, const float* bias, float* out) {
  float acc[64] = {};
  for (int c = 0; c < C; ++c)
    for (int o = 0; o < 64; ++o) acc[o] += x[c] * wb[c * 64 + o];
  for (int o = 0; o < 64; ++o) out[o] = acc[o] + bias[o];
}

// 6 x 4 independent accumulators, as the vector tables' tiles: XOR, popcount and add on
// 64-bit words.
uint64_t popcount_peak(int64_t iters) {
  uint64_t acc[24] = {}, x[6] = {1, 2, 3, 4, 5, 6}, w[4] = {7, 8, 9, 10};
  for (int64_t i = 0; i < iters; ++i) {
    for (int q = 0; q < 4; ++q) w[q] += 0x9E3779B97F4A7C15ULL;
    for (int p = 0; p < 6; ++p)
      for (int q = 0; q < 4; ++q) acc[4 * p + q] += popcount64(x[p] ^ w[q]);
  }
  uint64_t s = 0;
  for (uint64_t a : acc) s += a;
  return s;
}

constexpr Kernels kPortable = {
    "portable",     1,           1,          nullptr,   weight_words, prepare_weight,
    popgemm,        epilogue_float, pack_row, float_conv_row, max_pixel, avg_pixel,
    dense_block,    popcount_peak, 24 * 64,
    nullptr,        nullptr,  // no native bf16 stem
    float_conv_row_int8, int8_always,
    {1, 4},         {1, 1},   // one pixel at a time; the GEMM's outputs padded to 4
    nullptr,        // the bit epilogue: the driver's portable loop
};

}  // namespace

const Kernels* portable_kernels() { return &kPortable; }

}  // namespace dwr
