// Bit-packed binary convolution: XNOR/popcount over channel-packed NHWC activations.
//
// Bits: bit c%64 of word c/64 is 1 where the value is negative (sign -1), 0 where it is +1;
// bits past the channel count are 0 in both operands, so they never count as a mismatch.
// For one output (pixel p, channel o) over the valid taps V(p) of the window:
//     dot = |V(p)| * C - 2 * sum_{t in V(p)} popcount(x_t XOR w_{o,t})
// which equals conv2d of the ±1 tensors with zero padding (a padded tap contributes 0).
// The GEMM runs over im2col rows where a padded tap is all-zero bits, so it counts
// popcount(w_{o,t}) for every padded tap; the epilogue subtracts those (wpop) again.
#pragma once
#include <cstdint>

namespace dwr {

struct ConvGeom {
  int N, H, W, C, Cw;  // input batch, height, width, channels, 64-bit words per pixel
  int O, Op;           // output channels, rows of the packed weight (O rounded up to 4)
  int k, stride, pad;  // square kernel
  int OH, OW;
  int T, Kp;           // taps (k*k), words per im2col row (T*Cw)
};

enum Act : int { ACT_NONE = 0, ACT_HARDTANH = 1, ACT_RPRELU = 2 };
enum Mode : int { MODE_INT = 0, MODE_FLOAT = 1, MODE_BITS = 2 };

struct Epilogue {
  int mode = MODE_INT;
  int32_t* out_int = nullptr;      // [P][O]
  float* out_float = nullptr;      // [P][O]
  uint64_t* out_bits = nullptr;    // [P][ceil(O/64)]
  const float* scale = nullptr;    // y = scale[o] * dot + bias[o]
  const float* bias = nullptr;
  const float* residual = nullptr; // [P][O], added after the affine map
  int act = ACT_NONE;
  const float* act_in = nullptr;   // RPReLU: prelu(y + act_in) * ... + act_out
  const float* act_slope = nullptr;
  const float* act_out = nullptr;
  const int32_t* thr = nullptr;    // bits mode: +1 iff (flip ? dot <= thr : dot >= thr)
  const uint8_t* flip = nullptr;
  // float mode, optional: also pack the signs of (y + next_shift) for the next binary conv,
  // exactly as pack_signs would from the float output, while y is still in registers
  uint64_t* next_bits = nullptr;   // [P][ceil(O/64)]
  const float* next_shift = nullptr;
};

// Runs the convolution; wbits is in lane layout [Op/4][Kp][4] (word k of outputs 4g..4g+3
// side by side), wpop is [O][T] (popcount of each weight tap). wprep, when given, is wbits
// repacked for the active kernel table (prepare_weight, made once per layer); without it the
// repacking is done on every call.
void binary_conv(const ConvGeom& g, const uint64_t* in_bits, const uint64_t* wbits,
                 const int32_t* wpop, const Epilogue& ep, const uint64_t* wprep = nullptr);

// The words of wbits repacked for the active kernel table, and how many there are.
int64_t prepared_weight_words(int Op, int Kp);
void prepare_weight(const uint64_t* wbits, int Op, int Kp, uint64_t* dst);

// bits[p][w] from x[p][c] (+ shift[c] when given): bit set where !(x + shift >= 0).
void pack_signs(const float* x, const float* shift, int64_t P, int C, uint64_t* bits);

// 2x2 stride-2 max-pool (floor) on sign bits: the max is >= 0 unless all four are negative,
// so the negative-bit of the result is the AND of the four.
void pool_bits_2x2(const uint64_t* in, int N, int H, int W, int Cw, uint64_t* out);

}  // namespace dwr
