// Python bindings of the bit-packed kernels (module dwr.engine._kernels).
// Every entry point checks shapes before touching memory and releases the GIL while it runs.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "conv.h"
#include "dispatch.h"
#include "kernels/kernels.h"
#include "float_conv.h"
#include "threads.h"

namespace nb = nanobind;
using namespace nb::literals;

template <typename T, typename Shape = void>
using Arr = nb::ndarray<T, nb::c_contig, nb::device::cpu>;

namespace {

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

template <typename T>
const T* optional_vec(const Arr<const T>& a, size_t n, const char* what) {
  if (!a.is_valid()) return nullptr;
  require(a.ndim() == 1 && a.shape(0) == n,
          std::string(what) + " must have one value per channel");
  return a.data();
}

dwr::ConvGeom geometry(const Arr<const uint64_t>& in, const Arr<const uint64_t>& w,
                       const Arr<const int32_t>& wpop, int C, int k, int stride, int pad) {
  require(in.ndim() == 4, "packed input must be [N, H, W, words]");
  require(w.ndim() == 3 && wpop.ndim() == 2, "packed weight must be [ceil4(O)/4, k*k*words, 4]");
  require(C >= 1 && k >= 1 && k <= 7 && stride >= 1 && pad >= 0 && pad < k,
          "bad conv parameters (need 1 <= k <= 7, 0 <= pad < k, stride >= 1)");
  dwr::ConvGeom g{};
  g.N = static_cast<int>(in.shape(0));
  g.H = static_cast<int>(in.shape(1));
  g.W = static_cast<int>(in.shape(2));
  g.Cw = static_cast<int>(in.shape(3));
  g.C = C;
  require(g.Cw == (C + 63) / 64, "packed input has the wrong number of words per pixel");
  g.O = static_cast<int>(wpop.shape(0));
  g.T = k * k;
  require(static_cast<int>(wpop.shape(1)) == g.T, "weight popcounts must be [O, k*k]");
  g.Op = (g.O + 3) / 4 * 4;
  g.Kp = g.T * g.Cw;
  require(static_cast<int>(w.shape(0)) == g.Op / 4 && static_cast<int>(w.shape(1)) == g.Kp &&
              w.shape(2) == 4,
          "packed weight must be [ceil4(O)/4, k*k*words, 4] (lane layout)");
  g.k = k;
  g.stride = stride;
  g.pad = pad;
  require(g.H + 2 * pad >= k && g.W + 2 * pad >= k, "input smaller than the kernel");
  g.OH = (g.H + 2 * pad - k) / stride + 1;
  g.OW = (g.W + 2 * pad - k) / stride + 1;
  return g;
}

// The optional prepared weight of a conv call (prepare_weight, for the active kernels), or
// nullptr.
const uint64_t* prepared(const Arr<const uint64_t>& wp, const dwr::ConvGeom& g) {
  if (!wp.is_valid()) return nullptr;
  require(wp.ndim() == 1 && static_cast<int64_t>(wp.shape(0)) ==
                                dwr::prepared_weight_words(g.Op, g.Kp),
          "prepared weight does not fit this layer and the active kernels (prepare_weight)");
  return wp.data();
}

struct ActVectors {
  const float* in = nullptr;
  const float* slope = nullptr;
  const float* out = nullptr;
};

// The activation code, checked, and its RPReLU vectors (n values each) when it needs them.
ActVectors activation(int act, const Arr<const float>& in, const Arr<const float>& slope,
                      const Arr<const float>& out, size_t n) {
  require(act >= 0 && act <= 2, "unknown activation");
  ActVectors v;
  if (act == dwr::ACT_RPRELU) {
    v.in = optional_vec(in, n, "act_in");
    v.slope = optional_vec(slope, n, "act_slope");
    v.out = optional_vec(out, n, "act_out");
    require(v.in && v.slope && v.out, "RPReLU needs its three vectors");
  }
  return v;
}

// The geometry of a float conv call (shapes of x and out checked against k, O, stride and
// pad) and its epilogue (bias and activation vectors, padded to ceil8(O)): what the f32,
// bf16 and int8 stem bindings share; each checks its own weight layout.
dwr::FloatConvArgs float_conv_args(const Arr<const float>& x, int k, int O, int stride, int pad,
                                   const Arr<float>& out, bool nchw) {
  dwr::FloatConvArgs a{};
  a.nchw = nchw;
  a.N = static_cast<int>(x.shape(0));
  a.H = static_cast<int>(x.shape(nchw ? 2 : 1));
  a.W = static_cast<int>(x.shape(nchw ? 3 : 2));
  a.C = static_cast<int>(x.shape(nchw ? 1 : 3));
  a.k = k;
  a.O = O;
  a.Op = (O + 7) / 8 * 8;
  require(O >= 1 && a.C >= 1 && a.k >= 1 && a.k <= 15 && stride >= 1 && pad >= 0 && pad < a.k,
          "bad conv parameters (need 1 <= k <= 15, 0 <= pad < k, stride >= 1)");
  require(a.H + 2 * pad >= a.k && a.W + 2 * pad >= a.k, "input smaller than the kernel");
  a.stride = stride;
  a.pad = pad;
  a.OH = (a.H + 2 * pad - a.k) / stride + 1;
  a.OW = (a.W + 2 * pad - a.k) / stride + 1;
  require(out.shape(0) == x.shape(0) && out.shape(1) == static_cast<size_t>(a.OH) &&
              out.shape(2) == static_cast<size_t>(a.OW) && out.shape(3) == static_cast<size_t>(O),
          "output has the wrong shape");
  return a;
}

void set_epilogue(dwr::FloatConvArgs& a, const Arr<const float>& bias, int act,
                  const Arr<const float>& act_in, const Arr<const float>& act_slope,
                  const Arr<const float>& act_out) {
  a.bias = optional_vec(bias, a.Op, "bias (padded to ceil8(O))");
  require(a.bias != nullptr, "bias is required");
  const ActVectors v = activation(act, act_in, act_slope, act_out, a.Op);
  a.act = act;
  a.act_in = v.in;
  a.act_slope = v.slope;
  a.act_out = v.out;
}

template <typename T>
void check_out(const Arr<T>& out, const dwr::ConvGeom& g, size_t last, const char* what) {
  require(out.ndim() == 4 && out.shape(0) == static_cast<size_t>(g.N) &&
              out.shape(1) == static_cast<size_t>(g.OH) &&
              out.shape(2) == static_cast<size_t>(g.OW) && out.shape(3) == last,
          std::string(what) + " has the wrong shape");
}

}  // namespace

NB_MODULE(_kernels, m) {
  m.doc() = "Bit-packed XNOR/popcount kernels of the dwr inference engine.";

  m.def(
      "conv_int",
      [](Arr<const uint64_t> in, Arr<const uint64_t> w, Arr<const int32_t> wpop, int C, int k,
         int stride, int pad, Arr<int32_t> out, Arr<const uint64_t> wprep) {
        const dwr::ConvGeom g = geometry(in, w, wpop, C, k, stride, pad);
        check_out(out, g, g.O, "output");
        dwr::Epilogue ep;
        ep.mode = dwr::MODE_INT;
        ep.out_int = out.data();
        const uint64_t* ws = prepared(wprep, g);
        nb::gil_scoped_release release;
        dwr::binary_conv(g, in.data(), w.data(), wpop.data(), ep, ws);
      },
      "x"_a.noconvert(), "w"_a.noconvert(), "wpop"_a.noconvert(), "C"_a, "k"_a, "stride"_a, "pad"_a, "out"_a.noconvert(),
      "wprep"_a.noconvert().none() = nb::none(),
      "Integer ±1 convolution: out[n,y,x,o] = sum over valid taps of x*w.");

  m.def(
      "conv_float",
      [](Arr<const uint64_t> in, Arr<const uint64_t> w, Arr<const int32_t> wpop, int C, int k,
         int stride, int pad, Arr<const float> scale, Arr<const float> bias,
         Arr<const float> residual, int act, Arr<const float> act_in,
         Arr<const float> act_slope, Arr<const float> act_out, Arr<float> out,
         Arr<const uint64_t> wprep, Arr<uint64_t> next_bits, Arr<const float> next_shift) {
        const dwr::ConvGeom g = geometry(in, w, wpop, C, k, stride, pad);
        check_out(out, g, g.O, "output");
        dwr::Epilogue ep;
        if (next_bits.is_valid()) {
          check_out(next_bits, g, (g.O + 63) / 64, "next_bits");
          ep.next_bits = next_bits.data();
          ep.next_shift = optional_vec(next_shift, g.O, "next_shift");
        } else {
          require(!next_shift.is_valid(), "next_shift needs next_bits");
        }
        ep.mode = dwr::MODE_FLOAT;
        ep.out_float = out.data();
        ep.scale = optional_vec(scale, g.O, "scale");
        ep.bias = optional_vec(bias, g.O, "bias");
        require(ep.scale && ep.bias, "scale and bias are required");
        if (residual.is_valid()) {
          check_out(residual, g, g.O, "residual");
          ep.residual = residual.data();
        }
        const ActVectors v = activation(act, act_in, act_slope, act_out, g.O);
        ep.act = act;
        ep.act_in = v.in;
        ep.act_slope = v.slope;
        ep.act_out = v.out;
        const uint64_t* ws = prepared(wprep, g);
        nb::gil_scoped_release release;
        dwr::binary_conv(g, in.data(), w.data(), wpop.data(), ep, ws);
      },
      "x"_a.noconvert(), "w"_a.noconvert(), "wpop"_a.noconvert(), "C"_a, "k"_a, "stride"_a, "pad"_a, "scale"_a.noconvert(), "bias"_a.noconvert(),
      "residual"_a.noconvert().none(), "act"_a, "act_in"_a.noconvert().none(), "act_slope"_a.noconvert().none(),
      "act_out"_a.noconvert().none(), "out"_a.noconvert(),
      "wprep"_a.noconvert().none() = nb::none(), "next_bits"_a.noconvert().none() = nb::none(),
      "next_shift"_a.noconvert().none() = nb::none(),
      "act(scale*dot + bias + residual) as float NHWC; with next_bits, also the packed signs "
      "of (out + next_shift), the next binary conv's input.");

  m.def(
      "conv_bits",
      [](Arr<const uint64_t> in, Arr<const uint64_t> w, Arr<const int32_t> wpop, int C, int k,
         int stride, int pad, Arr<const int32_t> thr, Arr<const uint8_t> flip,
         Arr<uint64_t> out, Arr<const uint64_t> wprep) {
        const dwr::ConvGeom g = geometry(in, w, wpop, C, k, stride, pad);
        check_out(out, g, static_cast<size_t>((g.O + 63) / 64), "output");
        dwr::Epilogue ep;
        ep.mode = dwr::MODE_BITS;
        ep.out_bits = out.data();
        ep.thr = optional_vec(thr, g.O, "thr");
        ep.flip = optional_vec(flip, g.O, "flip");
        require(ep.thr && ep.flip, "thresholds are required");
        const uint64_t* ws = prepared(wprep, g);
        nb::gil_scoped_release release;
        dwr::binary_conv(g, in.data(), w.data(), wpop.data(), ep, ws);
      },
      "x"_a.noconvert(), "w"_a.noconvert(), "wpop"_a.noconvert(), "C"_a, "k"_a, "stride"_a, "pad"_a, "thr"_a.noconvert(), "flip"_a.noconvert(), "out"_a.noconvert(),
      "wprep"_a.noconvert().none() = nb::none(),
      "Sign bits of the next layer: +1 iff (flip ? dot <= thr : dot >= thr).");

  m.def(
      "pack_signs",
      [](Arr<const float> x, Arr<const float> shift, Arr<uint64_t> out) {
        require(x.ndim() >= 1 && x.ndim() == out.ndim(), "x and out must have the same rank");
        const size_t C = x.shape(x.ndim() - 1);
        int64_t P = 1;
        for (size_t d = 0; d + 1 < x.ndim(); ++d) {
          require(x.shape(d) == out.shape(d), "x and out shapes differ");
          P *= static_cast<int64_t>(x.shape(d));
        }
        require(C >= 1 && out.shape(out.ndim() - 1) == (C + 63) / 64,
                "out must have ceil(C/64) words per pixel");
        const float* s = optional_vec(shift, C, "shift");
        nb::gil_scoped_release release;
        dwr::pack_signs(x.data(), s, P, static_cast<int>(C), out.data());
      },
      "x"_a.noconvert(), "shift"_a.noconvert().none(), "out"_a.noconvert(), "Pack !(x + shift >= 0) along the last axis.");

  m.def(
      "pool_bits_2x2",
      [](Arr<const uint64_t> in, Arr<uint64_t> out) {
        require(in.ndim() == 4 && out.ndim() == 4, "bits must be [N, H, W, words]");
        require(out.shape(0) == in.shape(0) && out.shape(1) == in.shape(1) / 2 &&
                    out.shape(2) == in.shape(2) / 2 && out.shape(3) == in.shape(3),
                "pooled bits have the wrong shape");
        nb::gil_scoped_release release;
        dwr::pool_bits_2x2(in.data(), static_cast<int>(in.shape(0)),
                           static_cast<int>(in.shape(1)), static_cast<int>(in.shape(2)),
                           static_cast<int>(in.shape(3)), out.data());
      },
      "x"_a.noconvert(), "out"_a.noconvert());

  m.def(
      "float_conv",
      [](Arr<const float> x, Arr<const float> w, int O, int stride, int pad,
         Arr<const float> bias, int act, Arr<const float> act_in, Arr<const float> act_slope,
         Arr<const float> act_out, Arr<float> out, bool nchw, bool bf16,
         Arr<const uint16_t> wbf) {
        require(x.ndim() == 4 && w.ndim() == 4 && out.ndim() == 4,
                "x, w and out must be 4-D (NHWC or NCHW, [k, k, C, ceil8(O)], NHWC)");
        dwr::FloatConvArgs a =
            float_conv_args(x, static_cast<int>(w.shape(0)), O, stride, pad, out, nchw);
        require(w.shape(1) == static_cast<size_t>(a.k) && w.shape(2) == static_cast<size_t>(a.C) &&
                    w.shape(3) == static_cast<size_t>(a.Op),
                "weight must be [k, k, C, ceil8(O)]");
        a.w = w.data();
        set_epilogue(a, bias, act, act_in, act_slope, act_out);
        a.bf16 = bf16;
        if (wbf.is_valid()) {
          const size_t pairs = (static_cast<size_t>(a.k) * a.C + 1) / 2;
          require(bf16 && wbf.ndim() == 4 && wbf.shape(0) == static_cast<size_t>(a.k) &&
                      wbf.shape(1) == pairs && wbf.shape(2) == static_cast<size_t>(a.Op) &&
                      wbf.shape(3) == 2,
                  "wbf must be [k, ceil(k*C/2), ceil8(O), 2] bf16 bits, with bf16=True");
          a.wbf = wbf.data();
        }
        nb::gil_scoped_release release;
        dwr::float_conv(a, x.data(), out.data());
      },
      "x"_a.noconvert(), "w"_a.noconvert(), "O"_a, "stride"_a, "pad"_a, "bias"_a.noconvert(),
      "act"_a, "act_in"_a.noconvert().none(), "act_slope"_a.noconvert().none(),
      "act_out"_a.noconvert().none(), "out"_a.noconvert(), "nchw"_a = false, "bf16"_a = false,
      "wbf"_a.noconvert().none() = nb::none(),
      "act(conv(x, w) + bias) on float32, x NHWC (or NCHW with nchw=True), out NHWC; vectors "
      "padded to ceil8(O). bf16=True rounds x to bf16 (w must hold bf16 values) and sums the "
      "exact products in f32, with the native bf16 kernel where the table and CPU have one "
      "and wbf (the weights as bf16 tap pairs) is given.");

  m.def(
      "float_conv_int8",
      [](Arr<const float> x, Arr<const int8_t> wq, Arr<const int32_t> wsum,
         Arr<const float> wscale, int O, int stride, int pad, Arr<const float> bias, int act,
         Arr<const float> act_in, Arr<const float> act_slope, Arr<const float> act_out,
         Arr<float> out, bool nchw) {
        require(x.ndim() == 4 && wq.ndim() == 4 && out.ndim() == 4,
                "x, wq and out must be 4-D (NHWC or NCHW, [k, ceil(k*C/4), ceil8(O), 4], NHWC)");
        dwr::FloatConvArgs a =
            float_conv_args(x, static_cast<int>(wq.shape(0)), O, stride, pad, out, nchw);
        const size_t quads = (static_cast<size_t>(a.k) * a.C + 3) / 4;
        require(wq.shape(1) == quads && wq.shape(2) == static_cast<size_t>(a.Op) &&
                    wq.shape(3) == 4,
                "wq must be [k, ceil(k*C/4), ceil8(O), 4] int8");
        a.wq = wq.data();
        require(wsum.ndim() == 1 && wsum.shape(0) == static_cast<size_t>(a.Op),
                "wsum must be [ceil8(O)] int32");
        a.wsum = wsum.data();
        a.wscale = optional_vec(wscale, a.Op, "wscale (padded to ceil8(O))");
        require(a.wscale != nullptr, "wscale is required");
        set_epilogue(a, bias, act, act_in, act_slope, act_out);
        nb::gil_scoped_release release;
        dwr::float_conv(a, x.data(), out.data());
      },
      "x"_a.noconvert(), "wq"_a.noconvert(), "wsum"_a.noconvert(), "wscale"_a.noconvert(),
      "O"_a, "stride"_a, "pad"_a, "bias"_a.noconvert(), "act"_a, "act_in"_a.noconvert().none(),
      "act_slope"_a.noconvert().none(), "act_out"_a.noconvert().none(), "out"_a.noconvert(),
      "nchw"_a = false,
      "The int8 stem: act(float(dot) * (s_x * wscale[o]) + bias[o]), dot the exact int32 conv "
      "of each image quantized by s_x = max|x| / 127 (round(x / s_x), to nearest even, in "
      "[-127, 127]) with the per-channel int8 weights wq ([k, ceil(k*C/4), ceil8(O), 4] tap "
      "quads); wsum[o] = sum of wq[o]. VPDPBUSD where the table and CPU have AVX512_VNNI.");

  m.def(
      "int8_native",
      [] {
        bool native = false;
        dwr::int8_row(&native);
        return native;
      },
      "Whether the int8 stem runs a native (VNNI) kernel: the active table's, on this CPU.");

  m.def(
      "bf16_native", [] { return dwr::native_bf16_row() != nullptr; },
      "Whether a bf16 stem runs a native bf16 kernel (the active table's, on this CPU).");

  m.def(
      "max_pool",
      [](Arr<const float> x, int k, int s, int p, Arr<float> out) {
        require(x.ndim() == 4 && out.ndim() == 4, "x and out must be NHWC");
        require(k >= 1 && s >= 1 && p >= 0 && 2 * p <= k, "bad pooling parameters");
        const int H = static_cast<int>(x.shape(1)), W = static_cast<int>(x.shape(2));
        require(H + 2 * p >= k && W + 2 * p >= k, "input smaller than the pooling window");
        require(out.shape(0) == x.shape(0) && out.shape(3) == x.shape(3) &&
                    out.shape(1) == static_cast<size_t>((H + 2 * p - k) / s + 1) &&
                    out.shape(2) == static_cast<size_t>((W + 2 * p - k) / s + 1),
                "pooled output has the wrong shape");
        nb::gil_scoped_release release;
        dwr::max_pool(x.data(), static_cast<int>(x.shape(0)), H, W,
                      static_cast<int>(x.shape(3)), k, s, p, out.data());
      },
      "x"_a.noconvert(), "k"_a, "s"_a, "p"_a, "out"_a.noconvert(),
      "k x k max-pool, stride s, padding p (floor mode), on NHWC float32.");

  m.def(
      "avg_pool_ceil",
      [](Arr<const float> x, int s, Arr<float> out) {
        require(x.ndim() == 4 && out.ndim() == 4, "x and out must be NHWC");
        require(s >= 1, "bad pooling stride");
        const int H = static_cast<int>(x.shape(1)), W = static_cast<int>(x.shape(2));
        require(out.shape(0) == x.shape(0) && out.shape(3) == x.shape(3) &&
                    out.shape(1) == static_cast<size_t>((H + s - 1) / s) &&
                    out.shape(2) == static_cast<size_t>((W + s - 1) / s),
                "pooled output has the wrong shape");
        nb::gil_scoped_release release;
        dwr::avg_pool_ceil(x.data(), static_cast<int>(x.shape(0)), H, W,
                           static_cast<int>(x.shape(3)), s, out.data());
      },
      "x"_a.noconvert(), "s"_a, "out"_a.noconvert(),
      "s x s average pool, stride s, ceil mode, border windows average their own pixels.");

  m.def(
      "dense",
      [](Arr<const float> x, Arr<const float> w, Arr<const float> bias, Arr<float> out) {
        require(x.ndim() == 2 && w.ndim() == 3 && out.ndim() == 2,
                "x, w and out must be [N, C], [ceil(O/64), C, 64], [N, O]");
        const int N = static_cast<int>(x.shape(0)), C = static_cast<int>(x.shape(1));
        const int O = static_cast<int>(out.shape(1)), blocks = (O + 63) / 64;
        require(out.shape(0) == x.shape(0), "output has the wrong batch size");
        require(C >= 1 && O >= 1, "empty layer");
        require(w.shape(0) == static_cast<size_t>(blocks) &&
                    w.shape(1) == static_cast<size_t>(C) && w.shape(2) == 64,
                "weight must be [ceil(O/64), C, 64]");
        const float* b = optional_vec(bias, static_cast<size_t>(blocks) * 64,
                                      "bias (padded to a multiple of 64)");
        require(b != nullptr, "bias is required");
        nb::gil_scoped_release release;
        dwr::dense(x.data(), N, C, w.data(), b, O, out.data());
      },
      "x"_a.noconvert(), "w"_a.noconvert(), "bias"_a.noconvert(), "out"_a.noconvert(),
      "out = x @ W.T + bias on float32, W in 64-output blocks: w[o // 64, c, o % 64].");

  m.def("set_num_threads", [](int n) {
    require(n >= 1, "threads must be >= 1");
    nb::gil_scoped_release release;
    dwr::set_num_threads(n);
  });
  m.def("get_num_threads", &dwr::get_num_threads,
        "The pool's threads, or 1 on a thread in serial mode.");
  m.def("set_thread_serial", &dwr::set_thread_serial, "on"_a,
        "While on, this thread runs every kernel's tasks itself (one image per caller thread).");
  m.def(
      "check_pool",
      [](int jobs, int max_tasks) {
        require(jobs >= 0 && max_tasks >= 1, "jobs >= 0 and max_tasks >= 1");
        nb::gil_scoped_release release;
        return dwr::check_pool(jobs, max_tasks);
      },
      "jobs"_a, "max_tasks"_a,
      "Run back-to-back jobs on the thread pool; how many tasks ran other than once (0).");
  m.def(
      "prepare_weight",
      [](Arr<const uint64_t> w) {
        require(w.ndim() == 3 && w.shape(2) == 4, "packed weight must be [ceil4(O)/4, K, 4]");
        const int Op = static_cast<int>(w.shape(0)) * 4, K = static_cast<int>(w.shape(1));
        const int64_t n = dwr::prepared_weight_words(Op, K);
        auto* buf = new uint64_t[static_cast<size_t>(n)];
        nb::capsule owner(buf, [](void* p) noexcept { delete[] static_cast<uint64_t*>(p); });
        dwr::prepare_weight(w.data(), Op, K, buf);
        return nb::ndarray<nb::numpy, uint64_t, nb::ndim<1>>(buf, {static_cast<size_t>(n)},
                                                             owner);
      },
      "w"_a.noconvert(),
      "The lane-layout weight repacked for the active kernels (once per layer; pass it to the "
      "conv calls as wprep).");
  m.def(
      "popcount_peak",
      [](int64_t iters) {
        require(iters >= 1, "iters must be >= 1");
        const dwr::Kernels& k = dwr::kernels();
        uint64_t sum = 0;
        {
          nb::gil_scoped_release release;
          sum = k.popcount_peak(iters);
        }
        return nb::make_tuple(static_cast<int64_t>(k.peak_macs) * iters, sum);
      },
      "iters"_a,
      "Benchmarks: iters rounds of the active GEMM's XOR/popcount/add on registers; "
      "(binary MACs done, checksum).");
  m.def("isa", &dwr::kernel_isa, "The active kernel table: 'avx512', 'avx2' or 'portable'.");
  m.def(
      "tiles",
      [] {
        const dwr::Kernels& k = dwr::kernels();
        nb::dict d;
        d["binary"] = nb::make_tuple(k.binary_tile.pixels, k.binary_tile.outputs);
        d["float"] = nb::make_tuple(k.float_tile.pixels, k.float_tile.outputs);
        return d;
      },
      "The active table's blocks, {'binary': (pixels, outputs), 'float': (pixels, outputs)}.");
  m.def("load_isa", &dwr::load_isa, "The table chosen at load (CPUID, or DWR_ISA).");
  m.def("isas", &dwr::supported_isas, "The kernel tables this CPU runs, best first.");
  m.def("known_isas", &dwr::known_isas, "Every kernel table this build has.");
  m.def(
      "set_isa",
      [](const std::string& name) {
        require(dwr::set_isa(name), "kernel table '" + name + "' is not one this CPU runs");
      },
      "name"_a, "Switch the kernel table (one of isas()).");
}
