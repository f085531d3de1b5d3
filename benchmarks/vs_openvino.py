"""Our engine against OpenVINO's CPU plugin on the same Bi-Real-18 (``birealnet18``), batch 1.

    pip install openvino          # not a dwr dependency
    python benchmarks/vs_openvino.py [--rounds 5] [--repeats 50] [--out ...vs_openvino.json]

The OpenVINO model is built from our compiled ops, so both run the same weights: the stem
(BN folded) and max-pool in f32; every binary conv as the binarizing ``FakeQuantize`` and
opset1 ``BinaryConvolution`` (``binary_conv``), then the folded BN scale and bias, the
shortcut (identity or average pool + 1x1 conv) and the classifier. Checked before timing:

- one binary conv layer against numpy (``conv_reference``) to the integer, since OpenVINO's
  own 1-bit constants were seen to read bytes in the opposite bit order (we hand it f32 ±1
  weights and let its transformation pack them);
- the execution graph: every binary conv must run as ``BinaryConvolution``; the JIT kernel
  it chose (``primitiveType``) is reported. (A FakeQuantize with input_low == input_high == 0
  was seen to binarize every value to +1 in the CPU plugin; the range [-1, 1] binarizes at 0.)
- the whole model's logits against ours (OpenVINO's sign maps 0 to -1, ours to +1: exact
  zeros are ties; random inputs have none at the first layer).

Timing: min of ``repeats`` calls per round, rounds interleaved (ours with the exact f32 stem,
ours with the opt-in bf16 and int8 stems, OpenVINO f32 float layers, OpenVINO default
precision, at 1 then 2 threads), best round kept.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import openvino as ov
import openvino.opset1 as o1
import openvino.opset13 as o

import dwr.engine as engine
from dwr.backbones import create_model
from dwr.engine.cpu import cpu_info, describe_cpu
from dwr.engine.ops import BinaryConv, FloatConv, Head
from dwr.engine.pack import conv_reference, unpack_bits
from dwr.files import atomic_write_json


def sign_weight(op: BinaryConv) -> np.ndarray:
    """The op's ±1 weight ``[O, C, k, k]`` from its packed lane layout."""
    op4, kw, _ = op.wbits.shape
    rows = op.wbits.transpose(0, 2, 1).reshape(op4 * 4, kw)[: op.out_channels]
    t = op.k * op.k
    bits = unpack_bits(rows.reshape(op.out_channels, t, -1), op.in_channels)
    return np.ascontiguousarray(bits.reshape(op.out_channels, op.k, op.k, -1).transpose(0, 3, 1, 2))


def _vec(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, np.float32).reshape(1, -1, 1, 1)


def u1_weight(w: np.ndarray) -> ov.Node:
    """±1 weights as a u1 ``Constant`` that the CPU plugin reads as meant: Python's
    ``Constant`` packs eight literals into a byte first-to-last from the high bit, the plugin
    reads a byte from the low bit, so each run of eight literals is given reversed."""
    bits = (w.reshape(-1) > 0).astype(np.uint8)
    if bits.size % 8:
        raise SystemExit("u1 weights here need a multiple of 8 values")
    literals = bits.reshape(-1, 8)[:, ::-1].reshape(-1).astype(np.float32).tolist()
    return ov.op.Constant(ov.Type.u1, ov.Shape(list(w.shape)), literals)


def binary_conv(x, w: np.ndarray, stride: int, pad: int):
    """``conv(sign(x), w)`` with zero padding, as OpenVINO runs it natively: the binarizing
    quantizer ``FakeQuantize(x, 0, 0, 0, 1, levels=2)`` (u1 bits straight out: x > 0 is +1)
    and opset1 ``BinaryConvolution`` (xnor-popcount, pad value 0) on u1 weights. The form
    ``FakeQuantize(x, -1, 1, -1, 1)`` + ``Convolution`` also becomes ``BinaryConvolution``,
    but quantizes to f32 first and packs with a reference reorder before every binary conv
    (2.0 of OpenVINO's 4.9 ms)."""
    zero, one = np.float32(0.0), np.float32(1.0)
    bits = o.fake_quantize(x, zero, zero, zero, one, 2)
    pads = [pad] * 2
    return o1.binary_convolution(
        bits, u1_weight(w), [stride] * 2, pads, pads, [1, 1], "xnor-popcount", 0.0
    )


def _act(y, act: str, rprelu):
    if act == "hardtanh":
        return o.clamp(y, -1.0, 1.0)
    if act == "rprelu":
        a_in, slope, a_out = rprelu
        return o.add(o.prelu(o.add(y, _vec(a_in)), slope.astype(np.float32)), _vec(a_out))
    return y


def _shortcut(x, op: BinaryConv):
    if op.shortcut == "identity":
        return x
    if op.shortcut == "avgpool_conv":
        s = op.sc_stride
        if s > 1:
            x = o.avg_pool(x, [s, s], [0, 0], [0, 0], [s, s], True, "ceil")
        conv = o.convolution(x, op.sc_w, [1, 1], [0, 0], [0, 0], [1, 1])
        return o.add(conv, _vec(op.sc_b))
    if op.shortcut == "none":
        return None
    raise SystemExit(f"{op.name}: shortcut {op.shortcut!r} is not built here")


def _unit(x, op: BinaryConv):
    if op.shift is not None:
        x_in = o.add(x, _vec(op.shift))
    else:
        x_in = x
    y = binary_conv(x_in, sign_weight(op), op.stride, op.pad)
    y = o.add(o.multiply(y, _vec(op.scale)), _vec(op.bias))
    res = _shortcut(x, op)
    if res is not None:
        y = o.add(y, res)
    return _act(y, op.act, op.rprelu)


def _stem(x, op: FloatConv):
    y = o.add(
        o.convolution(x, op.w, [op.stride] * 2, [op.pad] * 2, [op.pad] * 2, [1, 1]), _vec(op.b)
    )
    y = _act(y, op.act, op.rprelu)
    if op.pool == "max3":
        y = o.max_pool(y, [2, 2], [1, 1], [1, 1], [1, 1], [3, 3]).output(0)
    elif op.pool != "none":
        raise SystemExit(f"stem pool {op.pool!r} is not built here")
    return y


def _head(y, op: Head):
    """Global average pool (an AvgPool over the whole map: a ReduceMean here made the CPU
    plugin fail to lay out the last binary conv's input) and the classifier."""
    h, w = (int(d) for d in y.get_output_partial_shape(0).to_shape()[2:])
    pooled = o.avg_pool(y, [1, 1], [0, 0], [0, 0], [h, w], True)
    flat = o.reshape(pooled, np.array([1, -1]), False)
    return o.add(o.matmul(flat, op.w, False, True), op.b.reshape(1, -1))


def ov_model(comp, input_size: tuple[int, int, int]) -> ov.Model:
    """The compiled model's ops as an OpenVINO graph (the op kinds birealnet18 uses)."""
    x = o.parameter([1, *input_size], np.float32, name="input")
    y = x
    for op in comp.ops:
        if isinstance(op, FloatConv):
            y = _stem(y, op)
        elif isinstance(op, BinaryConv):
            if op.out != "float":
                raise SystemExit(f"{op.name}: bit outputs are not built here")
            y = _unit(y, op)
        elif isinstance(op, Head):
            y = _head(y, op)
        else:
            raise SystemExit(f"{op.name}: op {op.kind!r} is not built here")
    return ov.Model([y], [x], "birealnet18")


def compile_model(model: ov.Model, threads: int, precision: str | None) -> ov.CompiledModel:
    config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    return ov.Core().compile_model(model, "CPU", config)


def graph_kernels(compiled: ov.CompiledModel) -> dict[str, list[str]]:
    """Layer type -> the primitive types its nodes run as, from the execution graph."""
    out: dict[str, list[str]] = {}
    for node in compiled.get_runtime_model().get_ordered_ops():
        rt = node.get_rt_info()
        kind = str(rt["layerType"].astype(str)) if "layerType" in rt else node.get_type_name()
        prim = str(rt["primitiveType"].astype(str)) if "primitiveType" in rt else "?"
        out.setdefault(kind, []).append(prim)
    return out


def check_one_layer() -> dict:
    """One binary 3x3 conv (64 -> 64 at 14x14, pad 1) in OpenVINO against numpy, exactly."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 64, 14, 14)).astype(np.float32)
    x[x == 0] = 1.0
    w = np.where(rng.standard_normal((64, 64, 3, 3)) >= 0, 1.0, -1.0).astype(np.float32)
    p = o.parameter([1, 64, 14, 14], np.float32)
    model = ov.Model([binary_conv(p, w, 1, 1)], [p])
    compiled = compile_model(model, 1, "f32")
    got = compiled(x)[0]
    want = conv_reference(np.where(x > 0, 1, -1), w.astype(np.int64), 1, 1)
    kinds = graph_kernels(compiled)
    ok = bool(np.array_equal(got, want))
    print(f"one layer vs numpy: {'exact' if ok else 'DIFFERENT'}; graph {kinds}")
    if not ok or "BinaryConvolution" not in kinds:
        raise SystemExit("OpenVINO's binary conv does not match numpy or is not binary")
    return {"exact": ok, "kernels": kinds["BinaryConvolution"]}


def best_ms(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join("benchmarks", "results", "vs_openvino.json"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    print(f"{describe_cpu()}  ours: {engine.kernel_isa()}  openvino {ov.__version__}")
    layer = check_one_layer()

    net = create_model("birealnet18").eval()
    comp = engine.convert(net)
    ours = {
        "ours": comp,
        "ours_bf16_stem": engine.convert(net, stem_precision="bf16"),
        "ours_int8_stem": engine.convert(net, stem_precision="int8"),
    }
    model = ov_model(comp, net.spec.input_size)
    x = np.random.default_rng(1).standard_normal((1, *net.spec.input_size)).astype(np.float32)
    variants, failed, compiled = {"f32": "f32", "default": None}, {}, {}
    for v, p in list(variants.items()):
        try:
            compiled.update({(v, t): compile_model(model, t, p) for t in args.threads})
        except RuntimeError as exc:  # seen: the bf16 default fails to lay out a binary input
            failed[v] = [line for line in str(exc).splitlines() if line.strip()][-1]
            print(f"openvino {v}: does not compile here: {failed[v]}")
            del variants[v]
    graphs = {v: graph_kernels(compiled[(v, args.threads[0])]) for v in variants}
    for v, kinds in graphs.items():
        binary = kinds.get("BinaryConvolution", [])
        print(
            f"openvino {v}: {len(binary)} BinaryConvolution {sorted(set(binary))}, "
            f"Convolution {sorted(set(kinds.get('Convolution', [])))}"
        )
    ours_logits = comp(x)
    agree = {
        v: float(np.abs(compiled[(v, args.threads[0])](x)[0] - ours_logits).max()) for v in variants
    }
    print(f"max |logit difference| against ours: {agree}")
    for name in ("ours_bf16_stem", "ours_int8_stem"):
        agree[name] = float(np.abs(ours[name](x) - ours_logits).max())

    times: dict[str, float] = {}
    for _ in range(args.rounds):
        for t in args.threads:
            engine.set_num_threads(t)
            for name, c in ours.items():
                key = f"{name}_t{t}"
                ms = best_ms(lambda c=c: c(x), args.repeats)
                times[key] = min(times.get(key, np.inf), ms)
            for v in variants:
                req = compiled[(v, t)].create_infer_request()
                key = f"openvino_{v}_t{t}"
                ms = best_ms(lambda req=req: req.infer({0: x}), args.repeats)
                times[key] = min(times.get(key, np.inf), ms)
    engine.set_num_threads(1)
    for t in args.threads:
        ours = times[f"ours_t{t}"]
        cells = "  ".join(
            f"openvino {v} {times[f'openvino_{v}_t{t}']:.2f} ms "
            f"(= {times[f'openvino_{v}_t{t}'] / ours:.2f}x ours)"
            for v in variants
        )
        bf16, int8 = times[f"ours_bf16_stem_t{t}"], times[f"ours_int8_stem_t{t}"]
        stems = f"bf16 stem {bf16:.2f} ms, int8 stem {int8:.2f} ms"
        print(f"threads {t}: ours {ours:.2f} ms ({stems})  {cells}")
    atomic_write_json(
        args.out,
        {
            "cpu": cpu_info(),
            "ours_kernel": engine.kernel_isa(),
            "openvino": ov.__version__,
            "one_layer_check": layer,
            "graphs": graphs,
            "failed_to_compile": failed,
            "max_logit_difference": agree,
            "times_ms": times,
            "rounds": args.rounds,
            "repeats": args.repeats,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
