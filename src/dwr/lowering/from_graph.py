"""The front door: lower any eval-mode PyTorch BNN, not only dwr's backbones.

``lower_graph(model, example_input)`` traces the model (:mod:`dwr.lowering.graph`) and walks
its graph from the input to the logits, matching the lowered op list (:mod:`dwr.lowering.ops`):

    stem conv [BN] [act] [max-pool]  ->  [adapter: cat/slice of per-channel maps, PReLU]
    -> { binary unit | 2x2 max-pool }*  ->  global average pool, flatten, linear

A *binary unit* is ``act(BN(conv(sign(x + shift), alpha * sign(W))) + shortcut(x))``. What
makes a conv binary is read from values, not from layer names: its input equals
``sign(x + shift)`` of the unit's input ``x`` (any binarizer whose eval forward is a sign:
``torch.sign``, a custom ``autograd.Function``, a detach-trick STE) and its weight is
``alpha_o * (±1)`` per output channel (however the model computes it). The shortcut is ``x``,
``BN(conv1x1(x))`` or ``BN(conv1x1(avgpool(x)))``; the activation is a chain of Hardtanh, or
``[+shift] PReLU|ReLU [+shift]`` (RPReLU). Anything else raises one :class:`DwrError` naming
the node, its module path and what is supported.
"""

from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from dwr.binary import BinaryConv2d
from dwr.errors import DwrError
from dwr.lowering.from_module import fold_bn
from dwr.lowering.graph import (
    Graph,
    affine_of,
    is_sign_of,
    sign_scale,
    sign_ties,
    topological,
)
from dwr.lowering.ops import BinaryConv, Head, MaxPool2, Op, StemAdapter, StemConv
from dwr.lowering.rules import finish

SUPPORTED = (
    "a real-valued stem conv, binary conv2d (input sign(x + shift), weight alpha * sign(W)), "
    "BatchNorm2d, PReLU/RPReLU/Hardtanh/ReLU, residual add, concat and slice after the stem, "
    "avg/max/adaptive pooling, flatten, linear"
)
_CONV_FNS = (torch.conv2d, F.conv2d)
_ADD_FNS = (operator.add, torch.add)


@dataclass
class _Conv:
    """A convolution as the graph computes it: input node, the (binarized) input and weight
    values, bias and geometry."""

    node: fx.Node
    inp: fx.Node
    x: torch.Tensor
    w: torch.Tensor
    bias: torch.Tensor | None
    k: int
    stride: int
    pad: int


def _one(v, what: str) -> int:
    if isinstance(v, int):
        return v
    if isinstance(v, (tuple, list)) and len(set(v)) == 1 and isinstance(v[0], int):
        return v[0]
    raise DwrError(f"{what} must be square and symmetric, got {v!r}")


def _arg(node: fx.Node, i: int, name: str, default):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _reference(kind: str, x: torch.Tensor, conv: _Conv) -> torch.Tensor | None:
    """What the parameter-free shortcut ``kind`` makes of ``x`` for this conv."""
    out_channels, c, s = conv.w.shape[0], x.shape[1], conv.stride
    if kind == "zero_pad":
        r = x[:, :, ::s, ::s]
        extra = out_channels - c
        if extra >= 0:
            return F.pad(r, (0, 0, 0, 0, extra // 2, extra - extra // 2))
        return r[:, :out_channels]
    if kind == "tile":
        return None if s != 1 else torch.cat([x] * -(-out_channels // c), 1)[:, :out_channels]
    if s == 1 or out_channels != c:  # avgpool
        return None
    return F.avg_pool2d(x, s, s, ceil_mode=True, count_include_pad=False)


def _same(got: torch.Tensor, want: torch.Tensor | None) -> bool:
    if want is None or got.shape != want.shape:
        return False
    return bool(((got - want).abs() <= 1e-5 * (1 + want.abs())).all())


class _Matcher:
    """Walks the graph once, appending the lowered ops it recognises."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        self.ops: list[Op] = []
        self.ties = 0  # binarizer inputs that are exactly 0 on the example (see sign_ties)

    def fail(self, node: fx.Node, why: str) -> DwrError:
        return DwrError(f"cannot lower {self.g.where(node)}: {why}; supported: {SUPPORTED}")

    # -- single nodes -----------------------------------------------------------------------
    def conv(self, node: fx.Node) -> _Conv | None:
        g, mod = self.g, self.g.module(node)
        if isinstance(mod, BinaryConv2d):  # dwr's layer, kept whole: binarizers inside
            x = g.value(node.args[0])
            with torch.no_grad():
                xb = mod.input_binarizer(x) if mod.input_binarizer is not None else x
                w = mod.weight_binarizer(mod.weight) if mod.weight_binarizer else mod.weight
            return self._conv_from(node, xb, w, mod.bias, mod)
        if isinstance(mod, nn.Conv2d):
            return self._conv_from(node, g.value(node.args[0]), mod.weight, mod.bias, mod)
        if node.op == "call_function" and node.target in _CONV_FNS:
            w_node, b_node = _arg(node, 1, "weight", None), _arg(node, 2, "bias", None)
            padding = _arg(node, 4, "padding", 0)
            if isinstance(padding, str):
                raise self.fail(node, f"padding={padding!r}; give the padding as an int")
            geometry = {
                "stride": _arg(node, 3, "stride", 1),
                "padding": padding,
                "dilation": _arg(node, 5, "dilation", 1),
                "groups": _arg(node, 6, "groups", 1),
            }
            return self._conv_from(
                node,
                g.value(node.args[0]),
                g.value(w_node),
                None if b_node is None else g.value(b_node),
                geometry,
            )
        return None

    def _conv_from(self, node, x, w, bias, geo) -> _Conv:
        get = (lambda k: getattr(geo, k)) if isinstance(geo, nn.Module) else geo.__getitem__
        try:
            stride, pad = _one(get("stride"), "stride"), _one(get("padding"), "padding")
            dilation, groups = _one(get("dilation"), "dilation"), get("groups")
        except DwrError as exc:
            raise self.fail(node, str(exc)) from None
        if isinstance(geo, nn.Module) and geo.padding_mode != "zeros":
            raise self.fail(node, f"padding_mode {geo.padding_mode!r}")
        w = w.detach()
        if w.dim() != 4 or w.shape[2] != w.shape[3] or dilation != 1 or groups != 1:
            raise self.fail(node, "a dense, square, undilated conv is expected")
        bias = None if bias is None else bias.detach().double()
        return _Conv(node, node.args[0], x, w, bias, w.shape[2], stride, pad)

    def bn(self, node: fx.Node | None) -> tuple[np.ndarray, np.ndarray] | None:
        mod = self.g.module(node) if node is not None else None
        if not isinstance(mod, nn.BatchNorm2d):
            return None
        try:
            return fold_bn(mod)
        except DwrError as exc:
            raise self.fail(node, str(exc)) from None

    def is_add(self, node: fx.Node | None) -> bool:
        return node is not None and (
            (node.op == "call_function" and node.target in _ADD_FNS and len(node.args) == 2)
            or (node.op == "call_method" and node.target == "add" and len(node.args) == 2)
        )

    def pool(self, node: fx.Node | None) -> tuple[str, int, int, int, bool] | None:
        """``(kind, kernel, stride, padding, ceil_mode)`` of a max/avg pool node."""
        if node is None:
            return None
        mod = self.g.module(node)
        if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
            kind = "max" if isinstance(mod, nn.MaxPool2d) else "avg"
            if kind == "max" and (_one(mod.dilation, "dilation") != 1 or mod.return_indices):
                return None
            k = _one(mod.kernel_size, "kernel")
            s = _one(mod.stride if mod.stride is not None else k, "stride")
            return kind, k, s, _one(mod.padding, "padding"), bool(mod.ceil_mode)
        if node.op == "call_function" and node.target in (F.max_pool2d, F.avg_pool2d):
            kind = "max" if node.target is F.max_pool2d else "avg"
            k = _one(_arg(node, 1, "kernel_size", None), "kernel")
            s = _arg(node, 2, "stride", None)
            s = k if s in (None, [], ()) else _one(s, "stride")
            ceil = bool(_arg(node, 5 if kind == "max" else 4, "ceil_mode", False))
            return kind, k, s, _one(_arg(node, 3, "padding", 0), "padding"), ceil
        return None

    def activation_kind(self, node: fx.Node) -> tuple[str, object] | None:
        """``("identity"|"hardtanh"|"slope"|"shift", value)`` for one elementwise node."""
        g, mod = self.g, self.g.module(node)
        if isinstance(mod, (nn.Identity, nn.Dropout)):
            return "identity", None
        if isinstance(mod, nn.Hardtanh) or (
            node.op == "call_function" and node.target is F.hardtanh
        ):
            lo = mod.min_val if mod is not None else _arg(node, 1, "min_val", -1.0)
            hi = mod.max_val if mod is not None else _arg(node, 2, "max_val", 1.0)
            return ("hardtanh", None) if (lo, hi) == (-1.0, 1.0) else None
        channels = g.value(node.args[0]).shape[1] if node.args else 0
        if isinstance(mod, nn.ReLU) or (
            node.op in ("call_function", "call_method")
            and node.target in (F.relu, torch.relu, "relu")
        ):
            return "slope", np.zeros(channels)
        if isinstance(mod, nn.PReLU):
            slope = mod.weight.detach().double().numpy().reshape(-1)
            return "slope", np.full(channels, slope[0]) if slope.size == 1 else slope
        if len(node.all_input_nodes) >= 1:
            src = node.all_input_nodes[0]
            fit = affine_of(g, src, node)
            if fit is not None and bool(((fit[0] - 1).abs() <= 1e-5).all()):
                return "shift", fit[1].numpy()
        return None

    # -- chains -----------------------------------------------------------------------------
    def activation(self, start: fx.Node) -> tuple[str, tuple | None, fx.Node]:
        """The elementwise chain after ``start`` as a lowered ``(act, rprelu)`` and the
        chain's last node: Hardtanh, or ``[+shift_in] PReLU|ReLU [+shift_out]``."""
        node, parts = start, {}
        while (nxt := self.g.single_user(node)) is not None:
            kind = self.activation_kind(nxt)
            if kind is None or kind[0] == "identity":
                if kind is None:
                    break
                node = nxt
                continue
            name, value = kind
            if name == "hardtanh" and not parts:
                parts["hardtanh"] = True
            elif name == "shift" and "slope" not in parts and "shift_in" not in parts:
                after = self.g.single_user(nxt)
                if after is None or (self.activation_kind(after) or ("",))[0] != "slope":
                    break  # a shift before a sign belongs to the next unit's binarizer
                parts["shift_in"] = value
            elif name == "slope" and "slope" not in parts and "hardtanh" not in parts:
                parts["slope"] = value
            elif name == "shift" and "slope" in parts and "shift_out" not in parts:
                parts["shift_out"] = value
            else:
                break
            node = nxt
        if "hardtanh" in parts:
            return "hardtanh", None, node
        if "slope" not in parts:
            return "none", None, node
        n = len(parts["slope"])
        rprelu = (
            parts.get("shift_in", np.zeros(n)),
            parts["slope"],
            parts.get("shift_out", np.zeros(n)),
        )
        return "rprelu", rprelu, node

    def ancestors_from(self, node: fx.Node, root: fx.Node) -> set[fx.Node]:
        """Nodes between ``root`` and ``node`` (both included) on paths that reach ``node``."""
        below = self.g.descendants(root) | {root}
        seen, todo = {node}, [node]
        while todo:
            for a in todo.pop().all_input_nodes:
                if a in below and a not in seen:
                    seen.add(a)
                    todo.append(a)
        return seen

    # -- ops --------------------------------------------------------------------------------
    def stem(self, x: fx.Node) -> fx.Node:
        first = self.g.single_user(x)
        conv = self.conv(first) if first is not None else None
        if conv is None:
            raise self.fail(first or x, "the model must start with a real-valued conv")
        if sign_scale(conv.w) is not None and is_sign_of(conv.x, self.g.value(x)):
            raise self.fail(conv.node, "the first conv is binary; it must be real-valued")
        post, (a, b) = self._bn_after(conv)
        w = conv.w.double().numpy() * a[:, None, None, None]
        act, rprelu, node = self.activation(post)
        pool, nxt = "none", self.g.single_user(node)
        geometry = self.pool(nxt)
        if (
            geometry is not None
            and geometry[0] == "max"
            and geometry[1:4] in ((3, 2, 1), (2, 2, 0))
        ):
            pool, node = ("max3" if geometry[1] == 3 else "max2"), nxt
        o, c = w.shape[:2]
        op = StemConv(
            "stem",
            c,
            o,
            k=conv.k,
            stride=conv.stride,
            pad=conv.pad,
            act=act,
            pool=pool,
            w=w,
            b=b,
            rprelu=rprelu,
        )
        self.ops.append(op)
        return node

    def _bn_after(self, conv: _Conv) -> tuple[fx.Node, tuple[np.ndarray, np.ndarray]]:
        """The node after the conv's BN (if any) and the folded ``(a, b)`` of BN(conv + bias)."""
        o = conv.w.shape[0]
        nxt = self.g.single_user(conv.node)
        folded = self.bn(nxt)
        a, b = folded if folded is not None else (np.ones(o), np.zeros(o))
        if conv.bias is not None:
            b = b + a * conv.bias.numpy()
        return (nxt if folded is not None else conv.node), (a, b)

    def adapter(self, cursor: fx.Node) -> fx.Node | None:
        """``PReLU(cat([f_i(x)], 1)[:, :w])`` with every ``f_i`` a per-channel affine map."""
        cat = next(
            (
                d
                for d in topological(self.g.descendants(cursor), self.g.nodes)
                if d.op == "call_function" and d.target is torch.cat
            ),
            None,
        )
        if cat is None or cat not in {u for n in self.g.users(cursor) for u in [n, *n.users]}:
            return None
        parts = cat.args[0]
        if _arg(cat, 1, "dim", 0) != 1 or not isinstance(parts, (list, tuple)):
            raise self.fail(cat, "only a channel concat (dim=1) of the stem output is supported")
        fits = [affine_of(self.g, cursor, p) for p in parts]
        if any(f is None for f in fits):
            raise self.fail(cat, "each concatenated input must be a per-channel map of the stem")
        c = self.g.value(cursor).shape[1]
        src = np.concatenate([np.arange(c)] * len(parts))
        scale = np.concatenate([f[0].numpy() for f in fits])
        shift = np.concatenate([f[1].numpy() for f in fits])
        node = cat
        nxt = self.g.single_user(cat)
        if nxt is not None and nxt.op == "call_function" and nxt.target is operator.getitem:
            width = self.g.value(nxt).shape[1]
            if not torch.equal(self.g.value(nxt), self.g.value(cat)[:, :width]):
                raise self.fail(nxt, "only a leading channel slice [:, :w] is supported")
            src, scale, shift, node = src[:width], scale[:width], shift[:width], nxt
        act = self.activation_kind(self.g.single_user(node)) if self.g.single_user(node) else None
        if act is None or act[0] != "slope":
            raise self.fail(node, "the concat must be followed by PReLU")
        self.ops.append(
            StemAdapter(
                "stem.adapter", c, len(src), src=src, scale=scale, shift=shift, slope=act[1]
            )
        )
        return self.g.single_user(node)

    def unit(self, cursor: fx.Node) -> fx.Node:
        conv = self._binary_conv(cursor)
        shift = self._input_shift(conv, cursor)
        alpha = sign_scale(conv.w).numpy()
        post, (a, b) = self._bn_after(conv)
        add, shortcut = self.g.single_user(post), {"shortcut": "none", "_nodes": set()}
        end = post
        if self.is_add(add):
            other = next(n for n in add.args if n is not post)
            shortcut, end = self._shortcut(other, cursor, conv), add
        self._check_consumers(cursor, conv, shortcut, end)
        act, rprelu, node = self.activation(end)
        w = conv.w.double().numpy()
        try:
            op = BinaryConv(
                conv.node.name,
                w.shape[1],
                w.shape[0],
                k=conv.k,
                stride=conv.stride,
                pad=conv.pad,
                shifted=shift is not None,
                weight=np.where(w >= 0, 1.0, -1.0),
                scale=alpha * a,
                bias=b,
                shift=shift,
                act=act,
                rprelu=rprelu,
                **{k: v for k, v in shortcut.items() if not k.startswith("_")},
            )
        except DwrError as exc:
            raise self.fail(conv.node, str(exc)) from None
        self.ops.append(op)
        return node

    def _binary_conv(self, cursor: fx.Node) -> _Conv:
        """The unit's binary conv: the first conv below ``cursor`` with ±1 input and weights."""
        frontier, seen = [cursor], {cursor}
        for _ in range(16):
            nxt = []
            for n in frontier:
                for u in self.g.users(n):
                    if u in seen:
                        continue
                    seen.add(u)
                    conv = self.conv(u)
                    if conv is not None and sign_scale(conv.w) is not None:
                        return conv
                    if conv is None:
                        nxt.append(u)
            frontier = nxt
        raise self.fail(
            self.g.users(cursor)[0] if self.g.users(cursor) else cursor,
            "expected a binary conv next (a real-valued conv may only be the stem or a shortcut)",
        )

    def _input_shift(self, conv: _Conv, cursor: fx.Node) -> np.ndarray | None:
        """``shift`` with ``conv.x == sign(cursor + shift)``, read from the graph node whose
        sign the conv reads (``None`` when that is ``cursor`` itself)."""
        region = self.ancestors_from(conv.inp, cursor)
        for cand in reversed(topological(region, self.g.nodes)):
            value = self.g.value(cand)
            if not isinstance(value, torch.Tensor) or not is_sign_of(conv.x, value):
                continue
            self.ties += sign_ties(conv.x, value)
            fit = None if cand is cursor else affine_of(self.g, cursor, cand)
            if cand is cursor or (fit is not None and bool(fit[1].abs().max() == 0)):
                return None
            if fit is not None and bool(((fit[0] - 1).abs() <= 1e-5).all()):
                return fit[1].numpy()
        raise self.fail(conv.node, "its input is not sign(x + shift) of the previous unit's output")

    def _shortcut(self, other: fx.Node, cursor: fx.Node, conv: _Conv) -> dict:
        nodes = set()
        while other is not cursor and isinstance(self.g.module(other), (nn.Identity, nn.Dropout)):
            nodes.add(other)
            other = other.args[0]
        if other is cursor:
            return {"shortcut": "identity", "_nodes": nodes}
        bn_node = other
        nodes.add(other)
        folded = self.bn(bn_node)
        sc_conv_node = bn_node.args[0] if folded is not None else bn_node
        sc = self.conv(sc_conv_node)
        kind = self._parameter_free(other, cursor, conv) if sc is None else None
        if kind is not None:
            return {
                "shortcut": kind,
                "sc_stride": conv.stride,
                "_nodes": nodes | self.ancestors_from(other, cursor),
            }
        if sc is None or sc.k != 1 or sc.pad != 0:
            raise self.fail(
                other, "a shortcut must be x, BN(conv1x1(x)) or BN(conv1x1(avgpool(x)))"
            )
        nodes.add(sc_conv_node)
        a, b = folded if folded is not None else (np.ones(sc.w.shape[0]), np.zeros(sc.w.shape[0]))
        if sc.bias is not None:
            b = b + a * sc.bias.numpy()
        w = sc.w.double().numpy() * a[:, None, None, None]
        src = sc.inp
        if src is cursor:
            return {
                "shortcut": "conv",
                "sc_stride": sc.stride,
                "sc_w": w,
                "sc_b": b,
                "_nodes": nodes,
            }
        pool = self.pool(src)
        h, wd = self.g.value(cursor).shape[2:]
        if (
            pool is None
            or pool[0] != "avg"
            or src.args[0] is not cursor
            or sc.stride != 1
            or pool[1] != pool[2]
            or pool[3] != 0
            or not (pool[4] or (h % pool[1] == 0 and wd % pool[1] == 0))
        ):
            raise self.fail(src, "the shortcut's pool must be AvgPool2d(s, s) of the unit input")
        return {
            "shortcut": "avgpool_conv",
            "sc_stride": pool[1],
            "sc_w": w,
            "sc_b": b,
            "_nodes": nodes | {src},
        }

    def _parameter_free(self, other: fx.Node, cursor: fx.Node, conv: _Conv) -> str | None:
        """The kind (``zero_pad``, ``tile``, ``avgpool``) of a shortcut without weights that
        ``other`` computes from ``cursor``, checked on the example and on a random probe."""
        x = self.g.value(cursor)
        probe = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        pairs = ((x, self.g.value(other)), (probe, self.g.evaluate(other, {cursor: probe})))
        for kind in ("zero_pad", "tile", "avgpool"):
            if all(_same(got, _reference(kind, inp, conv)) for inp, got in pairs):
                return kind
        return None

    def _check_consumers(self, cursor, conv: _Conv, shortcut: dict, end: fx.Node) -> None:
        used = self.ancestors_from(conv.inp, cursor) | shortcut["_nodes"] | {end, conv.node}
        for u in self.g.users(cursor):
            if u not in used:
                raise self.fail(
                    u, "the unit's input feeds something besides the binary conv and its shortcut"
                )

    def head(self, pool_node: fx.Node) -> None:
        node = pool_node
        while (nxt := self.g.single_user(node)) is not None and self._is_flatten(nxt):
            node = nxt
        fc = self.g.single_user(node)
        mod = self.g.module(fc) if fc is not None else None
        if not isinstance(mod, nn.Linear) or fc is not self.g.output():
            raise self.fail(fc or node, "the model must end with global pool, flatten, Linear")
        bias = mod.bias.detach().double().numpy() if mod.bias is not None else None
        w = mod.weight.detach().double().numpy()
        b = np.zeros(len(w)) if bias is None else bias
        self.ops.append(Head("head", w.shape[1], w.shape[0], w=w, b=b))

    def is_global_pool(self, node: fx.Node) -> bool:
        mod, value = self.g.module(node), self.g.value(node)
        if isinstance(mod, nn.AdaptiveAvgPool2d) or (
            node.op == "call_function" and node.target is F.adaptive_avg_pool2d
        ):
            return tuple(value.shape[2:]) == (1, 1)
        if node.op in ("call_method", "call_function") and node.target in ("mean", torch.mean):
            dims = _arg(node, 1, "dim", None)
            dims = {
                d % 4
                for d in (dims if isinstance(dims, (list, tuple)) else [dims])
                if isinstance(d, int)
            }
            return dims == {2, 3}
        return False

    def _is_flatten(self, node: fx.Node) -> bool:
        if isinstance(self.g.module(node), nn.Flatten):
            return True
        return (
            node.op == "call_method" and node.target in ("view", "reshape", "flatten", "squeeze")
        ) or (node.op == "call_function" and node.target in (torch.flatten, torch.squeeze))

    def walk(self, x: fx.Node) -> None:
        cursor = self.stem(x)
        cursor = self.adapter(cursor) or cursor
        while True:
            nxt = self.g.single_user(cursor)
            if nxt is not None and self.is_global_pool(nxt):
                return self.head(nxt)
            geometry = self.pool(nxt)
            if geometry is not None and geometry[0] == "max" and geometry[1:4] == (2, 2, 0):
                channels = self.ops[-1].out_channels
                self.ops.append(MaxPool2(nxt.name, channels, channels))
                cursor = nxt
                continue
            if nxt is not None and nxt.op == "output":
                raise self.fail(nxt, "the model must end with a linear classifier")
            cursor = self.unit(cursor)


def lower_graph(model: nn.Module, example_input: torch.Tensor, fold_signs: bool = True) -> list[Op]:
    """The lowered ops of an eval-mode ``model`` traced on ``example_input`` (NCHW), weights
    attached."""
    if model.training:
        raise DwrError("the model is in training mode; call model.eval() before converting")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() != 4:
        raise DwrError("example_input must be an NCHW float tensor")
    g = Graph(model, example_input.float())
    inputs = [n for n in g.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise DwrError(f"the model must take one input tensor, it takes {len(inputs)}")
    matcher = _Matcher(g)
    matcher.walk(inputs[0])
    if matcher.ties:
        warnings.warn(
            f"{matcher.ties} binarizer inputs of the example are exactly 0, which the model's "
            "sign maps to 0 and dwr (the engine, the exact ONNX export) to +1: results differ "
            "there (common in untrained models; rare once BN statistics are trained)",
            stacklevel=4,
        )
    return finish(matcher.ops, tuple(example_input.shape[2:]), fold_signs)


__all__ = ["SUPPORTED", "lower_graph"]
