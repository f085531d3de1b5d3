// The per-ISA kernel table: one file per ISA in this folder fills one Kernels, dispatch.cpp
// picks one at load (CPUID, or DWR_ISA), and the drivers (conv.cpp, float_conv.cpp, pack.cpp)
// call through it. The portable kernels are the reference: every other table must give
// bit-identical binary conv outputs, packed signs, pools and dense layers (tests/engine);
// the float stem may differ by float rounding (FMA).
//
// Adding an ISA: a kernels/<isa>.cpp that defines <isa>_kernels() (functions compiled with
// their own target attribute, so the module still loads on CPUs without it), one row in
// dispatch.cpp's table, the file in CMakeLists.txt, and the tests run it automatically.
#pragma once
#include <cstdint>

#include "../conv.h"
#include "../float_conv.h"

namespace dwr {

// The dot products of a task's pixels, read straight from the GEMM's popcounts:
// dot[r][o] = full[r] - 2 * pop[r][o], with full[r] = |valid taps of pixel r| * C and the
// padded taps' weight popcounts already taken out of pop (border pixels only).
struct Dots {
  const int32_t* pop;   // [m][ld]
  const int32_t* full;  // [m]
  int ld;
  int32_t at(int r, int o) const { return full[r] - 2 * pop[static_cast<int64_t>(r) * ld + o]; }
};

// The block a micro-kernel computes at once: `pixels` output pixels by `outputs` output
// channels. A layer's work is counted in whole blocks (the latency model's unit of work).
struct Tile {
  int pixels, outputs;
};

struct Kernels {
  const char* name;
  // GEMM operands. An input word becomes `in_words` words (prepare_input; null when 1: the
  // words are used as they are). The weight, lane layout [Op/4][K][4] in files, is repacked
  // once per layer into weight_words(Op, K) words of the ISA's own layout (prepare_weight).
  int in_words;
  int weight_per_output;  // prepared weight words per output channel and K word (offsets)
  void (*prepare_input)(const uint64_t* src, int64_t n, uint64_t* dst);
  int64_t (*weight_words)(int Op, int K);
  void (*prepare_weight)(const uint64_t* lanes, int Op, int K, uint64_t* dst);
  // pop[i][j] = sum_k popcount(A_i[k] ^ W_j[k]) for rows i < M, outputs j < Op (Op a
  // multiple of 4; B points at output 0 of the slice, in the prepared layout of the whole
  // layer, whose group stride is given by K).
  void (*popgemm)(const uint64_t* A, int M, const uint64_t* B, int Op, int K, int32_t* pop,
                  int ldp);
  // The float epilogue of outputs [o0, o1) of m pixels from p0 (ep.mode == MODE_FLOAT).
  void (*epilogue_float)(const ConvGeom& g, const Epilogue& ep, const Dots& dots, int64_t p0,
                         int m, int o0, int o1);
  // The sign bits of one pixel's C channels (+ shift): bit set where !(x + shift >= 0).
  void (*pack_row)(const float* x, const float* shift, int C, uint64_t* bits);
  // One output row of the float conv on a zero-padded NHWC image.
  void (*float_conv_row)(const FloatConvArgs& a, const float* xp, int Wp, int oy, float* out);
  // One output pixel of a pool over the window [y0, y1) x [x0, x1), all C channels.
  void (*max_pixel)(const float* in, int64_t row, int C, int y0, int y1, int x0, int x1,
                    float* dst);
  void (*avg_pixel)(const float* in, int64_t row, int C, int y0, int y1, int x0, int x1,
                    float* dst);
  // One block of 64 outputs of the dense layer: out[o] = bias[o] + sum_c x[c] * wb[c][o].
  void (*dense_block)(const float* x, int C, const float* wb, const float* bias, float* out);
  // Benchmarks only: `iters` rounds of the GEMM's inner-loop arithmetic (XOR, popcount,
  // accumulate) on register-resident data, without its loads; returns a checksum. One round
  // is peak_macs binary MACs: the ceiling the GEMM is measured against.
  uint64_t (*popcount_peak)(int64_t iters);
  int peak_macs;
  // Optional (null where the ISA has none): one output row of the bf16 stem on a zero-padded
  // NHWC bf16 image and the pair-layout weights a.wbf, run where bf16_supported() (CPUID)
  // holds. Elsewhere a bf16 stem runs float_conv_row on bf16-rounded floats: the same exact
  // products, added in another order (results agree to f32 rounding, not to the bit).
  void (*float_conv_row_bf16)(const FloatConvArgs& a, const uint16_t* xp, int Wp, int oy,
                              float* out);
  bool (*bf16_supported)();
  // Optional (null: the portable table's): one output row of the int8 stem on a padded NHWC
  // u8 image (xq + 128) and the quad-layout weights a.wq; scale[o] = s_x * a.wscale[o] of the
  // row's image. Run where int8_supported() (CPUID) holds. Integer sums are exact, so every
  // table must give the portable outputs bit for bit.
  void (*float_conv_row_int8)(const FloatConvArgs& a, const uint8_t* xp, int Wp, int oy,
                              const float* scale, float* out);
  bool (*int8_supported)();
  // The register blocks of the binary GEMM and of the float conv (see Tile).
  Tile binary_tile;
  Tile float_tile;
  // Optional (null: the driver's portable loop): the bit epilogue (ep.mode == MODE_BITS) of
  // outputs [o0, o1) of m pixels from p0, o0 a multiple of 64: bit o of a pixel's words is
  // set where !(flip[o] ? dot <= thr[o] : dot >= thr[o]), bits past O are 0.
  void (*epilogue_bits)(const ConvGeom& g, const Epilogue& ep, const Dots& dots, int64_t p0,
                        int m, int o0, int o1);
};

// The tables, each defined in its own file; nullptr where not built for this architecture.
const Kernels* portable_kernels();
const Kernels* avx2_kernels();
const Kernels* avx512_kernels();
const Kernels* neon_kernels();

// The active table (dispatch.cpp).
const Kernels& kernels();

// The active table's native bf16 stem row, or nullptr where it has none or the CPU lacks it.
decltype(Kernels::float_conv_row_bf16) native_bf16_row();

// The int8 stem row that runs: the active table's where the table and CPU have one, else the
// portable one; `native` says which.
decltype(Kernels::float_conv_row_int8) int8_row(bool* native = nullptr);

// Portable pieces the ISA files reuse for their tails.
void pack_signs_range(const float* x, const float* shift, int c0, int c1, uint64_t* bits);
int popcount64(uint64_t v);

}  // namespace dwr
