"""A compiled model: run the op list on NCHW input, save and load it as one file.

File layout (little endian)::

    magic    8 bytes   b"DWRENGN\\0"
    version  u32       the oldest format that holds the plan, at most FORMAT_VERSION (a newer
                       one is refused; format 1 stored binary weights as rows
                       [ceil4(O), ceil4(K)] and is converted to lanes on load)
    reserved u32       0
    hlen     u64       bytes of the JSON header
    plen     u64       bytes of the array payload
    sha256   32 bytes  of header + payload
    header   JSON      {"spec": ..., "ops": [{"kind", "name", "meta", "arrays": {name:
                       {"dtype", "shape", "offset"}}}], "preprocess": ..., "class_names": ...}
    payload            the arrays, each 64-byte aligned

Format 3 added ``preprocess`` (input size, resize, mean/std; see :mod:`dwr.engine.preprocess`)
and ``class_names``, both optional (``null``); format 2 files load without them. Format 4
added the stem's ``precision`` (``"bf16"``); only files with a bf16 stem are written as
format 4, so that an older dwr refuses them instead of running them in f32, and every other
file is still format 3 (a stem without the key is f32). Format 5 added ``"int8"``: only files
with an int8 stem are format 5 (a format-4 reader refuses them as newer).

Everything is parsed and checked in Python before the first inference (a regular file of a
plausible size, checksum, finite JSON numbers, dtypes, shapes, offsets, each op's own
consistency and geometry, the chain of ops), so the C++ kernels never see a malformed plan.
Loading and running need only NumPy and the compiled kernels: PyTorch is imported by
:func:`dwr.engine.convert` alone (a tensor passed in gives a tensor back).
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import stat
import struct
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

from dwr.backbones.spec import BackboneSpec
from dwr.engine import _kernels
from dwr.engine.ops import (
    OP_TYPES,
    BinaryConv,
    ChannelAdapter,
    Fields,
    FloatConv,
    Head,
    MaxPool2,
    Op,
    State,
)
from dwr.engine.pack import lanes_from_rows, words
from dwr.engine.preprocess import Preprocess, check_class_names
from dwr.errors import DwrError
from dwr.files import atomic_write
from dwr.lowering.rules import packs_next

MAGIC = b"DWRENGN\0"
FORMAT_VERSION = 5
_PREFIX = struct.Struct("<8sIIQQ32s")
_DTYPES = {"float32", "int32", "uint8", "uint64"}
#: The dtype of each op array that is not float32 (a file must store exactly these).
_ALIGN = 64
#: A batch runs in chunks whose largest float activation fits in about this many bytes.
CHUNK_BYTES = 1 << 20
#: Engine files larger than this are refused unread (birealnet18's is about 4 MB).
MAX_FILE_BYTES = 1 << 31
#: Thread pools beyond this are a typo (each thread has a stack and a queue).
MAX_THREADS = 256


def set_num_threads(n: int) -> None:
    """Threads of the engine's kernels (its thread pool runs every op), 1..MAX_THREADS."""
    try:
        count = operator.index(n)  # ints and NumPy integers; not floats, strings or bools
    except TypeError:
        count = None
    if count is None or isinstance(n, bool) or not 1 <= count <= MAX_THREADS:
        raise DwrError(f"threads must be a whole number from 1 to {MAX_THREADS}, got {n!r}")
    _kernels.set_num_threads(count)


_CALLER_THREADS: dict[int, Any] = {}


def _caller_threads(n: int) -> Any:
    """A persistent pool of ``n`` Python threads for :meth:`CompiledModel._run_by_image`
    (starting threads on every batched call cost about 0.35 ms here)."""
    if n not in _CALLER_THREADS:
        from concurrent.futures import ThreadPoolExecutor

        _CALLER_THREADS[n] = ThreadPoolExecutor(n, thread_name_prefix="dwr-engine")
    return _CALLER_THREADS[n]


class CompiledModel:
    """A backbone compiled to bit-packed binary convolutions; call it on NCHW float32 input."""

    def __init__(
        self,
        ops: list[Op],
        spec: BackboneSpec | None = None,
        preprocess: Preprocess | None = None,
        class_names: list[str] | None = None,
    ) -> None:
        self.ops = list(ops)
        self.spec = spec
        self._chunks: dict[tuple[int, int], int] = {}
        #: How a batch of several chunks uses the threads: ``"images"`` (each thread runs
        #: whole chunks) or ``"pixels"`` (all threads split every layer of one chunk).
        self.batch_split = "images"
        self._check_chain()
        for op in self.ops:  # a damaged file, or a model compiled from NaN weights
            check_finite(op.arrays().items(), op.name)
        #: How images become inputs (``None``: not recorded, e.g. a format-2 file).
        self.preprocess = preprocess
        if preprocess is not None:
            if preprocess.input_size[0] != self.in_channels:
                raise DwrError(
                    f"preprocessing makes {preprocess.input_size[0]}-channel inputs but the "
                    f"model takes {self.in_channels}"
                )
            self._check_size(*preprocess.input_size[1:])
        #: One label per logit (``None``: not recorded).
        self.class_names = (
            None if class_names is None else check_class_names(class_names, self.num_classes)
        )
        # A binary conv that writes floats for the next binary conv also packs that conv's
        # input in its epilogue (sign of out + the next RSign shift), saving a pass over them.
        for op, nxt in zip(self.ops, self.ops[1:], strict=False):
            if packs_next(op.kind, getattr(op, "out", ""), nxt.kind):
                op.feeds(nxt)

    # -- structure --------------------------------------------------------------------------
    def _check_chain(self) -> None:
        ops = self.ops
        if len(ops) < 2 or not isinstance(ops[0], FloatConv) or not isinstance(ops[-1], Head):
            raise DwrError("a compiled model must start with the stem and end with the head")
        channels, bits = ops[0].out_channels, False
        for op in ops[1:]:
            if isinstance(op, (FloatConv, Head)) and op is not ops[-1]:
                raise DwrError(f"{op.name}: unexpected {op.kind} in the middle of the plan")
            if isinstance(op, BinaryConv):
                if op.in_channels != channels:
                    raise DwrError(
                        f"{op.name}: takes {op.in_channels} channels but gets {channels}"
                    )
                if bits and (op.shift is not None or op.shortcut != "none"):
                    raise DwrError(f"{op.name}: needs float input but gets sign bits")
                channels, bits = op.out_channels, op.out == "bits"
            elif isinstance(op, ChannelAdapter):
                if op is not ops[1] or op.in_channels != channels or bits:
                    raise DwrError(f"{op.name}: the stem adapter must follow the stem")
                channels = op.out_channels
            elif isinstance(op, MaxPool2):
                if op.on_bits != bits:
                    raise DwrError(f"{op.name}: pool and its input disagree on bits vs floats")
            elif isinstance(op, Head):
                if bits or op.in_channels != channels:
                    raise DwrError(f"{op.name}: classifier takes {op.in_channels} channels")
        if self.spec is not None and ops[0].in_channels != self.spec.in_channels:
            raise DwrError("the stem does not match the spec's input channels")

    @property
    def in_channels(self) -> int:
        return self.ops[0].in_channels

    @property
    def format_version(self) -> int:
        """The engine format :meth:`save` writes: the oldest that holds every op."""
        return max(op.min_format() for op in self.ops)

    @property
    def stem_precision(self) -> str:
        """The stem conv's precision, ``"f32"``, ``"bf16"`` or ``"int8"`` (see ``convert``)."""
        return self.ops[0].precision

    @property
    def num_classes(self) -> int:
        return self.ops[-1].w.shape[0]

    def summary(self) -> list[dict[str, Any]]:
        """One row per op: name, kind and (binary convs) channels, stride and output mode."""
        rows = []
        for op in self.ops:
            row: dict[str, Any] = {"name": op.name, "kind": op.kind, **op.meta()}
            rows.append(row)
        return rows

    # -- inference --------------------------------------------------------------------------
    def _input(self, x: Any) -> State:
        """The first op's input State from an NCHW float32 array or tensor (checked).

        The stem (a :class:`FloatConv`) reads NCHW directly (its zero-padded copy transposes
        it); any other first op gets NHWC. NaN or infinite values are refused: they would
        only give non-finite logits (binarization maps NaN to -1 without a trace)."""
        if _is_tensor(x):
            if str(x.dtype) != "torch.float32":
                raise DwrError(f"input must be float32, got tensor of dtype {x.dtype}")
            x = x.detach().cpu().numpy()
        elif isinstance(x, np.ndarray):
            if x.dtype != np.float32:
                raise DwrError(f"input must be float32, got array of dtype {x.dtype}")
        else:
            raise DwrError(f"input must be a numpy array or torch tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise DwrError(f"input must be NCHW (4-D), got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        if c != self.in_channels:
            raise DwrError(f"input has {c} channels, the model takes {self.in_channels} (NCHW)")
        if n < 1 or h < 1 or w < 1:
            raise DwrError(f"input must be non-empty, got NCHW shape {(n, c, h, w)}")
        self._check_size(h, w)
        if not (np.isfinite(x.min()) and np.isfinite(x.max())):  # one pass each, no copy
            raise DwrError("input holds NaN or infinite values")
        if isinstance(self.ops[0], FloatConv):
            return State(x=np.ascontiguousarray(x), nchw=True)
        return State(x=np.ascontiguousarray(x.transpose(0, 2, 3, 1)))

    def _sizes(self, h: int, w: int) -> list[tuple[Op, int, int, int]]:
        """``(op, height, width, channels)`` of every op's output for an ``h x w`` input;
        raises :class:`DwrError` when the input shrinks below one pixel."""
        k = self.ops[0].w.shape[2]
        size, channels, out = [h, w], self.in_channels, []
        for op in self.ops:
            if isinstance(op, FloatConv):
                size = [(s + 2 * op.pad - k) // op.stride + 1 for s in size]
                if op.pool == "max3":
                    size = [(s - 1) // 2 + 1 for s in size]
                elif op.pool == "max2":
                    size = [s // 2 for s in size]
            elif isinstance(op, BinaryConv):
                size = [0, 0] if min(size) + 2 * op.pad < op.k else list(op.out_size(*size))
            elif isinstance(op, MaxPool2):
                size = [s // 2 for s in size]
            if min(size) < 1:
                raise DwrError(f"input {h}x{w} is too small: it shrinks below 1 pixel at {op.name}")
            channels = getattr(op, "out_channels", channels)
            out.append((op, size[0], size[1], channels))
        return out

    def _check_size(self, h: int, w: int) -> None:
        self._sizes(h, w)

    def chunk_size(self, h: int, w: int) -> int:
        """Images per pass through the op chain at ``h x w``: a batch runs in chunks whose
        largest float activation stays within :data:`CHUNK_BYTES` (about the L2 cache), since
        a whole batch of 32 images falls out of cache and costs 2-6x more per image."""
        if (h, w) not in self._chunks:
            peak = max(4 * oh * ow * c for _, oh, ow, c in self._sizes(h, w))
            self._chunks[(h, w)] = max(1, CHUNK_BYTES // peak)
        return self._chunks[(h, w)]

    def __call__(self, x: Any) -> Any:
        """Logits ``[N, classes]`` for NCHW float32 ``x`` (a tensor in, a tensor out)."""
        as_tensor = _is_tensor(x)
        st = self._input(x)
        n, (h, w) = st.x.shape[0], (st.x.shape[2:] if st.nchw else st.x.shape[1:3])
        step = self.chunk_size(h, w)
        starts = list(range(0, n, step))
        threads = _kernels.get_num_threads()
        if self.batch_split == "images" and threads > 1 and len(starts) >= threads:
            parts = self._run_by_image(st, starts, step, threads)
        else:
            parts = [self._run(State(x=st.x[i : i + step], nchw=st.nchw)) for i in starts]
        logits = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return sys.modules["torch"].from_numpy(logits) if as_tensor else logits

    def _run_by_image(self, st: State, starts: list[int], step: int, threads: int) -> list:
        """The chunks of a batch shared out over ``threads`` caller threads, each running
        whole chunks with every kernel on its own core (``set_thread_serial``): no layer waits
        for the slowest of its slices, and there is one hand-off per chunk instead of one per
        layer. Every op computes the same numbers either way (the split is over pixels and
        images, never over a sum), so the logits are bit-identical to the one-thread run's."""

        def run_chunks(group: list[int]) -> list[np.ndarray]:
            _kernels.set_thread_serial(True)
            try:
                return [self._run(State(x=st.x[i : i + step], nchw=st.nchw)) for i in group]
            finally:
                _kernels.set_thread_serial(False)

        groups = [starts[k::threads] for k in range(threads)]  # chunk j runs on thread j % k
        done = list(_caller_threads(threads).map(run_chunks, groups))
        return [done[j % threads][j // threads] for j in range(len(starts))]

    def _run(self, st: State) -> np.ndarray:
        for op in self.ops:  # every op runs in the engine's kernels, on its thread pool
            st = op.run(st)
        return st.x

    # -- files ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the plan to one file (see the module docstring for the layout), atomically:
        the target is the old file or the complete new one; an OS error is a DwrError."""
        entries, chunks, offset = [], [], 0
        for op in self.ops:
            arrays = {}
            for name, arr in op.arrays().items():
                arr = np.ascontiguousarray(arr)
                data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
                pad = (-offset) % _ALIGN
                chunks.append(b"\0" * pad)
                offset += pad
                arrays[name] = {"dtype": arr.dtype.name, "shape": list(arr.shape), "offset": offset}
                chunks.append(data)
                offset += len(data)
            entries.append({"kind": op.kind, "name": op.name, "meta": op.meta(), "arrays": arrays})
        header = json.dumps(
            {
                "spec": self.spec.to_dict() if self.spec else None,
                "ops": entries,
                "preprocess": self.preprocess.to_dict() if self.preprocess else None,
                "class_names": self.class_names,
            },
            allow_nan=False,
        ).encode()
        payload = b"".join(chunks)
        digest = hashlib.sha256(header + payload).digest()
        prefix = _PREFIX.pack(MAGIC, self.format_version, 0, len(header), len(payload), digest)
        atomic_write(path, prefix + header + payload)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CompiledModel:
        """Read a file written by :meth:`save`; any damage raises :class:`DwrError`."""
        return cls.from_bytes(_read_regular_file(path), os.fspath(path))

    @classmethod
    def from_bytes(cls, blob: bytes, where: str = "<bytes>") -> CompiledModel:
        def bad(why: str) -> DwrError:
            return DwrError(f"{where} is not a valid dwr engine file: {why}")

        if len(blob) < _PREFIX.size:
            raise bad(f"truncated ({len(blob)} bytes)")
        magic, version, _, hlen, plen, digest = _PREFIX.unpack_from(blob)
        if magic != MAGIC:
            raise bad("wrong magic bytes")
        if version > FORMAT_VERSION:
            raise DwrError(
                f"{where} was written by a newer dwr (engine format {version}; this version "
                f"reads up to {FORMAT_VERSION}); upgrade dwr to load it"
            )
        if version < 1:
            raise bad(f"unknown format version {version}")
        if _PREFIX.size + hlen + plen != len(blob):
            raise bad(
                f"truncated or padded ({len(blob)} bytes, expected {_PREFIX.size + hlen + plen})"
            )
        body = blob[_PREFIX.size :]
        if hashlib.sha256(body).digest() != digest:
            raise bad("checksum mismatch (the file is corrupted)")
        try:
            header = json.loads(
                body[:hlen].decode(), parse_constant=_no_constant, parse_float=_finite_float
            )
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            # ValueError: bad JSON, NaN/Infinity, an overlong integer; RecursionError: nesting
            raise bad(f"unreadable header ({str(exc)[:200]})") from None
        payload = memoryview(body)[hlen:]
        try:
            return cls._from_header(header, payload, version)
        except DwrError as exc:
            raise bad(str(exc)) from None
        except (
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            IndexError,
            OverflowError,
            RecursionError,
        ) as exc:
            raise bad(f"malformed plan ({type(exc).__name__}: {str(exc)[:200]})") from None

    @classmethod
    def _from_header(cls, header: dict, payload: memoryview, version: int) -> CompiledModel:
        if not isinstance(header, dict) or not isinstance(header.get("ops"), list):
            raise DwrError("header has no op list")
        spec = None if header.get("spec") is None else BackboneSpec.from_dict(header["spec"])
        preprocess = class_names = None
        if version >= 3:
            if header.get("preprocess") is not None:
                preprocess = Preprocess.from_dict(header["preprocess"])
            class_names = header.get("class_names")
        ops: list[Op] = []
        for entry in header["ops"]:
            kind = entry["kind"]
            if kind not in OP_TYPES:
                raise DwrError(f"unknown op kind {kind!r}")
            arrays = {k: _array(v, payload) for k, v in dict(entry["arrays"]).items()}
            op_type = OP_TYPES[kind]
            for key, arr in arrays.items():
                if arr.dtype.name != op_type.dtypes.get(key, "float32"):
                    raise DwrError(f"{entry['name']}: array {key!r} has dtype {arr.dtype.name}")
            if version == 1 and kind == BinaryConv.kind:
                _upgrade_v1_weights(entry, arrays)
            ops.append(op_type.from_file(Fields(str(entry["name"]), dict(entry["meta"]), arrays)))
        return cls(ops, spec, preprocess, class_names)


def check_finite(named: Iterable[tuple[str, Any]], where: str) -> None:
    """Refuse (:class:`DwrError`) NaN or infinite values in any floating-point array or
    tensor of ``named``: weights like that only give NaN logits (and NaN scores, which are
    not valid JSON). The one finiteness check of conversion and of loading engine files."""
    for name, a in named:
        if _is_tensor(a):
            if not a.is_floating_point():
                continue
            a = a.detach().float().cpu().numpy()
        a = np.asarray(a)
        if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
            raise DwrError(
                f"{where}: {name} holds NaN or infinite values; a model with non-finite "
                "weights cannot be compiled (did its training diverge?)"
            )


def _no_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name} in the header")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor, without importing torch (if nothing imported it, no
    tensor can exist)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _read_regular_file(path: str | os.PathLike) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most MAX_FILE_BYTES: a device
    (``/dev/zero``), FIFO, socket or directory is refused before it is read (opened
    non-blocking, so a FIFO swapped in after the check cannot hang the open either)."""
    where = os.fspath(path)

    def check(st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise DwrError(f"engine file {where!r} is not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise DwrError(
                f"engine file {where!r} is implausibly large ({st.st_size} bytes, the limit "
                f"is {MAX_FILE_BYTES})"
            )

    try:
        check(os.stat(where))
        fd = os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            size = os.fstat(fd).st_size
            check(os.fstat(fd))
            with os.fdopen(fd, "rb", closefd=False) as f:
                blob = f.read(size + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise DwrError(f"cannot read engine file {where!r}: {reason}") from None
    if len(blob) != size:
        raise DwrError(f"engine file {where!r} changed while it was read")
    return blob


def _array(desc: dict, payload: memoryview) -> np.ndarray:
    dtype, shape, offset = desc["dtype"], desc["shape"], desc["offset"]
    if dtype not in _DTYPES:
        raise DwrError(f"array dtype {dtype!r} not allowed")
    if not isinstance(shape, list) or not all(isinstance(s, int) and 0 <= s < 2**31 for s in shape):
        raise DwrError(f"bad array shape {shape!r}")
    if not isinstance(offset, int) or offset < 0:
        raise DwrError(f"bad array offset {offset!r}")
    dt = np.dtype(dtype).newbyteorder("<")
    nbytes = math.prod(shape) * dt.itemsize  # Python ints: no overflow
    if offset + nbytes > len(payload):
        raise DwrError("array extends past the end of the payload")
    arr = np.frombuffer(payload, dtype=dt, count=nbytes // dt.itemsize, offset=offset)
    return arr.reshape(shape).astype(dt.newbyteorder("="), copy=True)


def _upgrade_v1_weights(entry: dict, arrays: dict[str, np.ndarray]) -> None:
    """Format 1 -> 2: weight rows ``[ceil4(O), ceil4(K)]`` (zero-padded) to lane layout."""
    meta, rows = dict(entry["meta"]), arrays.get("wbits")
    k, c = meta.get("k"), meta.get("in_channels")
    if rows is None or not (isinstance(k, int) and isinstance(c, int) and k >= 1 and c >= 1):
        return  # the op's own checks name what is missing
    n = k * k * words(c)
    if rows.ndim != 2 or rows.shape[0] % 4 or rows.shape[1] < n:
        raise DwrError(f"{entry.get('name')}: format-1 packed weight has shape {rows.shape}")
    arrays["wbits"] = lanes_from_rows(rows[:, :n])


def load(path: str | os.PathLike) -> CompiledModel:
    """Load a compiled model saved with :meth:`CompiledModel.save`."""
    return CompiledModel.load(path)


__all__ = ["CompiledModel", "FORMAT_VERSION", "load", "set_num_threads", "words"]
