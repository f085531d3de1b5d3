"""A traced PyTorch model with every node's value on one example input (the front door's view).

:func:`trace` runs ``torch.fx`` symbolic tracing (torch.nn layers and dwr's binary layers are
leaves) and then the graph itself on the example input, keeping each node's output. The
matcher in :mod:`dwr.lowering.from_graph` reads structure from the graph and facts that are
easier to check than to parse from the values: that a tensor is ``sign`` of another, that a
weight is ``alpha_o * sign(W)``, that a branch is a per-channel affine map of its input.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from dwr.binary import BinaryConv2d
from dwr.errors import DwrError

#: dwr layers kept whole: their forwards branch on tensor attributes fx cannot trace.
_DWR_LEAVES = (BinaryConv2d,)
#: Relative tolerance of the value checks: the detach trick of straight-through estimators
#: (``sign(x).detach() - p(x).detach() + p(x)``) rounds ±1 by a few float32 ulps.
TOL = 1e-5


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _DWR_LEAVES) or super().is_leaf_module(m, qualname)


class Graph:
    """An fx graph, its modules and the value of every node on the example input."""

    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        try:
            graph = _Tracer().trace(model)
        except Exception as exc:  # fx raises many kinds; all mean "not traceable"
            raise DwrError(
                f"cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); the front door needs a "
                "model without data-dependent control flow"
            ) from None
        self.gm = fx.GraphModule(model, graph)
        self.nodes = list(graph.nodes)
        self.modules = dict(self.gm.named_modules())
        try:
            self.values = self._run({}, example)
        except Exception as exc:  # the model's own code: any error means "not on this input"
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            raise DwrError(
                f"{type(model).__name__} fails on the example input of shape "
                f"{tuple(example.shape)} ({why}); give an input size the model accepts"
            ) from None

    # -- values -----------------------------------------------------------------------------
    def _run(self, replace: dict[fx.Node, torch.Tensor], example: Any, upto=None) -> dict:
        """Node values, recomputing only what depends on ``replace`` when values exist."""
        cached = getattr(self, "values", None)
        env: dict[fx.Node, Any] = {}
        dirty: set[fx.Node] = set()
        interp = fx.Interpreter(self.gm)
        with torch.no_grad():
            for node in self.nodes:
                if node.op == "output":
                    break
                if node in replace:
                    env[node] = replace[node]
                    dirty.add(node)
                elif cached is not None and not any(a in dirty for a in node.all_input_nodes):
                    env[node] = cached[node]
                elif node.op == "placeholder":
                    env[node] = example
                else:
                    interp.env = env
                    env[node] = interp.run_node(node)
                    if cached is not None:
                        dirty.add(node)
                if node is upto:
                    break
        return env

    def value(self, node: fx.Node) -> Any:
        return self.values[node]

    def evaluate(self, target: fx.Node, replace: dict[fx.Node, torch.Tensor]) -> torch.Tensor:
        """``target``'s value when the nodes in ``replace`` take the given values."""
        return self._run(replace, None, upto=target)[target]

    # -- structure ----------------------------------------------------------------------------
    def module(self, node: fx.Node) -> nn.Module | None:
        return self.modules.get(node.target) if node.op == "call_module" else None

    def users(self, node: fx.Node) -> list[fx.Node]:
        """Consumers of ``node``'s values, less uses of its shape alone (``x.size()``,
        ``x.shape``, ``b.expand_as(x)``)."""
        return [u for u in node.users if not _is_size_query(u, node)]

    def single_user(self, node: fx.Node) -> fx.Node | None:
        users = self.users(node)
        return users[0] if len(users) == 1 else None

    def descendants(self, node: fx.Node) -> set[fx.Node]:
        seen, todo = set(), [node]
        while todo:
            for u in todo.pop().users:
                if u not in seen:
                    seen.add(u)
                    todo.append(u)
        return seen

    def where(self, node: fx.Node) -> str:
        """``node 'add_3' (operator.add) in 'layer1.0'``: what messages name."""
        what = node.target if isinstance(node.target, str) else _qualname(node.target)
        stack = node.meta.get("nn_module_stack") or {}
        path = node.target if node.op == "call_module" else next(reversed(stack), "")
        if isinstance(path, tuple):
            path = path[0]
        inside = f" in '{path}'" if path and node.op != "call_module" else ""
        return f"node '{node.name}' ({node.op} {what}){inside}"

    def output(self) -> fx.Node:
        out = self.nodes[-1]
        return out.args[0]


def _qualname(fn: Any) -> str:
    if fn is operator.add:
        return "operator.add"
    mod = getattr(fn, "__module__", None) or ""
    return f"{mod + '.' if mod else ''}{getattr(fn, '__name__', repr(fn))}"


def _is_size_query(node: fx.Node, of: fx.Node) -> bool:
    if node.op == "call_method" and node.target in ("expand_as", "view_as", "reshape_as"):
        return len(node.args) > 1 and node.args[1] is of and node.args[0] is not of
    return (node.op == "call_method" and node.target in ("size", "dim")) or (
        node.op == "call_function" and node.target is getattr and node.args[1] == "shape"
    )


# -- value facts ----------------------------------------------------------------------------
def is_sign_of(y: torch.Tensor, x: torch.Tensor) -> bool:
    """``y == sign(x)`` with sign(0) = +1, or 0 where ``x`` is exactly 0 (``torch.sign``; see
    :func:`sign_ties`), and ``x`` not itself all ±1 (which a clamp gives)."""
    if y.shape != x.shape or not torch.is_floating_point(y):
        return False
    target = torch.where(x >= 0, 1.0, -1.0).to(y.dtype)
    ok = ((y - target).abs() <= TOL * 4) | ((x == 0) & (y == 0))
    return bool(ok.all()) and bool((x.abs() != 1).any())


def sign_ties(y: torch.Tensor, x: torch.Tensor) -> int:
    """How many ``x == 0`` the model maps to 0 (``torch.sign``) where the engine gives +1."""
    return int(((x == 0) & (y == 0)).sum())


def sign_scale(w: torch.Tensor) -> torch.Tensor | None:
    """``alpha`` with ``w[o] = alpha_o * (±1)`` for every output ``o``, else ``None``."""
    if w.dim() != 4 or not torch.is_floating_point(w):
        return None
    mag = w.abs().flatten(1)
    alpha = mag.mean(1)
    if bool((alpha <= 0).any()):
        return None
    ok = ((mag - alpha[:, None]).abs() <= TOL * alpha[:, None]).all()
    return alpha.double() if bool(ok) else None


def channel_constant(t: torch.Tensor, tol: float = TOL) -> torch.Tensor | None:
    """The per-channel vector when ``t`` ([N, C, H, W] or [N, C]) is constant over all but
    the channel dim, else ``None``."""
    if t.dim() not in (2, 4):
        return None
    v = t[0, :, 0, 0] if t.dim() == 4 else t[0]
    full = v[None, :, None, None] if t.dim() == 4 else v[None, :]
    scale = 1.0 + v.abs().max().item() if v.numel() else 1.0
    return v.double() if bool(((t - full).abs() <= tol * scale).all()) else None


def affine_of(g: Graph, src: fx.Node, t: fx.Node) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(a, b)`` when ``t = a_c * src + b_c`` per channel for every input (checked on zeros,
    ones and the example), else ``None``."""
    x = g.value(src)
    if not isinstance(x, torch.Tensor) or g.value(t).shape != x.shape:
        return None
    b = channel_constant(g.evaluate(t, {src: torch.zeros_like(x)}), 1e-4)
    ab = channel_constant(g.evaluate(t, {src: torch.ones_like(x)}), 1e-4)
    if b is None or ab is None:
        return None
    a = ab - b
    shape = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
    predicted = a.view(shape).float() * x + b.view(shape).float()
    scale = 1.0 + g.value(t).abs().max().item()
    if not bool(((predicted - g.value(t)).abs() <= 1e-4 * scale).all()):
        return None
    return a, b


def topological(nodes: Iterable[fx.Node], order: list[fx.Node]) -> list[fx.Node]:
    index = {n: i for i, n in enumerate(order)}
    return sorted(nodes, key=index.__getitem__)
