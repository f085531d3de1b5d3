"""A fuzzer for engine files: hostile headers with a valid checksum, loaded and then run.

Each iteration takes one saved model, applies one random mutation (a meta value, an array
descriptor, the op list's structure, the spec, the preprocessing, the class names, the header's
raw JSON text or the payload's bytes), re-signs the file, loads it and, if it loads, runs it on
the stored input size and on a random one. Only :class:`DwrError` counts as a clean refusal;
any other exception is recorded (a crash would end the process).

    python tests/engine/engine_fuzz.py 5000     # the measurement (prints a JSON summary)
"""

from __future__ import annotations

import collections
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dwr.engine.compiled import _PREFIX, FORMAT_VERSION, MAGIC, CompiledModel
from dwr.errors import DwrError

GARBAGE = [
    None, -1, 0, 1, 2, 3, 5, 7, 8, 64, 65, 2**31, 2**63, -(2**40), 1.5, -0.0,
    float("inf"), float("-inf"), float("nan"), 1e308, True, False, "x", "", [], {},
    [1, -2], [2**31], [0], [1, 1, 1], {"a": 1}, "none", "bits", "float", "identity",
]  # fmt: skip


def repack(header: dict | list | str, payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    """A file with a valid checksum around ``header`` (a dict/list, or raw JSON text)."""
    h = (header if isinstance(header, str) else json.dumps(header)).encode()
    digest = hashlib.sha256(h + payload).digest()
    return _PREFIX.pack(MAGIC, version, 0, len(h), len(payload), digest) + h + payload


def split(blob: bytes) -> tuple[dict, bytes]:
    _, _, _, hlen, _, _ = _PREFIX.unpack_from(blob)
    body = blob[_PREFIX.size :]
    return json.loads(body[:hlen]), body[hlen:]


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _value(rng: np.random.Generator, old):
    """A replacement for ``old``: garbage, or a near miss of the same type."""
    if isinstance(old, bool) or not isinstance(old, int) or rng.random() < 0.4:
        return _pick(rng, GARBAGE)
    return int(old + _pick(rng, [-2, -1, 1, 2, old, -old]))


def _mutate_header(h: dict, rng: np.random.Generator) -> dict | list | str:
    ops = h["ops"]
    what = int(rng.integers(9))
    op = _pick(rng, ops)
    if what == 0 and op["meta"]:  # one meta value
        key = _pick(rng, list(op["meta"]))
        op["meta"][key] = _value(rng, op["meta"][key])
    elif what == 1 and op["arrays"]:  # one array descriptor
        desc = op["arrays"][_pick(rng, list(op["arrays"]))]
        key = _pick(rng, ["dtype", "shape", "offset"])
        if key == "shape" and desc["shape"] and rng.random() < 0.7:
            i = int(rng.integers(len(desc["shape"])))
            desc["shape"][i] = _value(rng, desc["shape"][i])
        elif key == "dtype" and rng.random() < 0.7:
            desc["dtype"] = _pick(rng, ["float32", "int32", "uint8", "uint64", "float64"])
        elif key == "offset" and rng.random() < 0.7:
            desc["offset"] = int(desc["offset"] + _pick(rng, [-64, -8, 8, 64, 10**6]))
        else:
            desc[key] = _pick(rng, GARBAGE)
    elif what == 2:  # the op list's structure
        i, j = int(rng.integers(len(ops))), int(rng.integers(len(ops)))
        action = _pick(rng, ["drop", "dup", "swap", "move"])
        if action == "drop":
            del ops[i]
        elif action == "dup":
            ops.insert(j, json.loads(json.dumps(ops[i])))
        elif action == "swap":
            ops[i], ops[j] = ops[j], ops[i]
        else:
            ops.insert(j, ops.pop(i))
    elif what == 3:  # a field of one op
        op[_pick(rng, ["kind", "name", "meta", "arrays"])] = _pick(rng, GARBAGE)
    elif what == 4 and isinstance(h.get("spec"), dict):  # the spec
        key = _pick(rng, list(h["spec"]))
        old = h["spec"][key]
        if isinstance(old, list) and old and rng.random() < 0.7:
            old[int(rng.integers(len(old)))] = _value(rng, old[0])
        else:
            h["spec"][key] = _value(rng, old)
    elif what == 5 and isinstance(h.get("preprocess"), dict):  # the preprocessing
        pre = h["preprocess"]
        key = _pick(rng, list(pre))
        if isinstance(pre[key], list) and rng.random() < 0.7:
            pre[key][int(rng.integers(len(pre[key])))] = _value(rng, pre[key][0])
        else:
            pre[key] = _value(rng, pre[key])
    elif what == 6:  # class names
        names = h.get("class_names")
        if isinstance(names, list) and names and rng.random() < 0.6:
            if rng.random() < 0.5:
                names.pop()
            else:
                names[int(rng.integers(len(names)))] = _pick(rng, GARBAGE)
        else:
            h["class_names"] = _pick(rng, GARBAGE)
    elif what == 7:  # the top level
        key = _pick(rng, ["ops", "spec", "preprocess", "class_names"])
        h[key] = _pick(rng, GARBAGE)
    else:  # the raw JSON text: one character changed, or a deep nesting
        text = json.dumps(h)
        if rng.random() < 0.1:
            return "[" * 100_000 + "]" * 100_000
        i = int(rng.integers(len(text)))
        return text[:i] + _pick(rng, list('0123456789-.,:[]{}"eE ')) + text[i + 1 :]
    return h


@dataclass
class FuzzResult:
    iterations: int = 0
    refused_at_load: int = 0
    loaded: int = 0
    inferences: int = 0
    inference_ok: int = 0
    refused_at_inference: int = 0
    other_exceptions: int = 0
    examples: dict[str, str] = field(default_factory=dict)

    def record(self, exc: BaseException, stage: str) -> None:
        self.other_exceptions += 1
        key = f"{stage}: {type(exc).__name__}"
        self.examples.setdefault(key, str(exc)[:200])


def fuzz(files: list[Path], iterations: int, seed: int = 0) -> FuzzResult:
    """Run ``iterations`` mutations over the saved engine ``files`` (round robin)."""
    rng = np.random.default_rng(seed)
    bases = [split(Path(f).read_bytes()) for f in files]
    out = FuzzResult()
    for it in range(iterations):
        header, payload = bases[it % len(bases)]
        h = json.loads(json.dumps(header))
        version = FORMAT_VERSION
        if rng.random() < 0.1:  # the payload's bytes (the checksum re-signed)
            data = bytearray(payload)
            for pos in rng.integers(0, len(data), int(rng.integers(1, 8))):
                data[pos] = int(rng.integers(256))
            blob = repack(h, bytes(data))
        else:
            if rng.random() < 0.05:
                version = int(rng.integers(1, FORMAT_VERSION + 1))
            blob = repack(_mutate_header(h, rng), payload, version)
        out.iterations += 1
        try:
            comp = CompiledModel.from_bytes(blob)
        except DwrError:
            out.refused_at_load += 1
            continue
        except Exception as exc:  # noqa: BLE001 - the point is to count these
            out.record(exc, "load")
            continue
        out.loaded += 1
        side = comp.preprocess.input_size[1] if comp.preprocess else 32
        for h_, w_ in ((side, side), tuple(int(v) for v in rng.integers(1, 80, 2))):
            x = rng.standard_normal((1, comp.in_channels, h_, w_)).astype(np.float32)
            out.inferences += 1
            try:
                logits = comp(x)
                assert logits.shape == (1, comp.num_classes)
                out.inference_ok += 1
            except DwrError:
                out.refused_at_inference += 1
            except Exception as exc:  # noqa: BLE001
                out.record(exc, "inference")
    return out


def saved_models(directory: Path) -> list[Path]:
    """A few small saved models covering every op kind and shortcut (random weights)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from engine_helpers import random_model

    import dwr.engine as engine
    from dwr.engine import Preprocess

    models = [
        ("vgg_small_cifar_dwr", {}, 32),  # bit outputs, pools on bits
        ("resnet20_cifar", {}, 32),  # zero-pad shortcuts
        ("resnet18_cifar_dwr", {"widths": [16, 24, 32, 48]}, 32),  # 1x1 conv shortcuts
        ("reactnet18", {"widths": [16, 24, 32, 48]}, 64),  # RSign, RPReLU, avgpool shortcuts
        ("birealnet18_dwr", {"widths": [24, 32, 48, 64]}, 64),  # the stem adapter
        ("reactnet_a", {"widths": [16, 32, 64, 128, 256]}, 64),  # 1x1 convs, avgpool, tile
    ]
    paths = []
    for name, overrides, side in models:
        model = random_model(name, **overrides)
        pre = Preprocess((3, side, side), side, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        names = [f"class {i}" for i in range(model.spec.num_classes)]
        path = directory / f"{name}.dwre"
        engine.convert(model, preprocess=pre, class_names=names).save(path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    import tempfile
    import time

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as tmp:
        files = saved_models(Path(tmp))
        t = time.perf_counter()
        result = fuzz(files, n, seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
        summary = {**result.__dict__, "seconds": round(time.perf_counter() - t, 1)}
    print(json.dumps(summary, indent=2))
    counts = collections.Counter({"other": result.other_exceptions})
    sys.exit(1 if counts["other"] else 0)
