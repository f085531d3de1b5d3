"""Engine-vs-PyTorch comparisons that hold on any CPU, whatever its float rounding.

A value binarized within float rounding of 0 (a tie) may take either sign: the engine folds
BN and sums in its own order, PyTorch rounds its own way, and which side wins depends on the
CPU's kernels. One flipped sign moves an image's logits, so an exact comparison of whole models
is only sound once the ties are accounted for. :func:`assert_engine_matches` does that:

1. runs the engine op by op and records the signs each binary conv reads;
2. runs PyTorch with a hook at every sign site (the module whose input is the pre-sign value),
   asserts that wherever the signs differ the pre-sign value is within ``tie`` of 0 (a flip
   anywhere else is an engine error), and hands PyTorch the engine's sign there;
3. compares the logits to float rounding: everything except the tie decisions must agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from dwr.binary import BinaryConv2d
from dwr.engine import _kernels
from dwr.engine.ops import BinaryConv
from dwr.engine.pack import popcount, unpack_bits, words

#: a flip is allowed where |pre-sign value| <= TIE * max(1, max |pre-sign value| of the layer)
TIE = 2e-5


def binary_sites(model: nn.Module) -> list[nn.Module]:
    """The sign sites of a dwr backbone: its binary convs (they binarize their own input)."""
    return [m for m in model.modules() if isinstance(m, BinaryConv2d) and m.is_binary]


def _pack(x: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    """Sign bits of NHWC ``x (+ shift)``, as the engine packs them."""
    bits = np.empty(x.shape[:3] + (words(x.shape[3]),), dtype=np.uint64)
    _kernels.pack_signs(np.ascontiguousarray(x), shift, bits)
    return bits


def engine_signs(comp, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The engine's logits and the packed NHWC input signs of each binary conv, in run order."""
    signs: list[np.ndarray] = []
    st = comp._input(x)
    for op in comp.ops:
        if isinstance(op, BinaryConv):
            signs.append(st.bits if st.bits is not None else _pack(st.x, op.shift))
        st = op.run(st)
    return st.x, signs


def _hook(signs: list[np.ndarray], flips: list[int], tie: float):
    calls = iter(range(len(signs) + 1000))

    def pre(module: nn.Module, args: tuple) -> tuple | None:
        t = args[0]
        if isinstance(t, nn.Parameter):  # a weight through the same sign function
            return None
        k = next(calls)
        assert k < len(signs), f"PyTorch binarized more inputs than the engine's {len(signs)}"
        n, c, h, w = t.shape
        bits = signs[k]
        assert bits.shape == (n, h, w, words(c)), f"sign site {k}: engine {bits.shape}, {t.shape}"
        xor = bits ^ _pack(t.permute(0, 2, 3, 1).numpy())
        flips.append(int(popcount(xor).sum()))
        if flips[-1] == 0:
            return None
        differ = torch.from_numpy(unpack_bits(xor, c) < 0).permute(0, 3, 1, 2)
        bound = tie * max(1.0, float(t.abs().max()))
        far = differ & (t.abs() > bound)
        assert not far.any(), (
            f"sign site {k}: {int(far.sum())} signs differ at pre-sign values up to "
            f"{float(t.abs()[far].max()):.3g} (ties allowed within {bound:.2g} of 0)"
        )
        want = torch.where(t >= 0, -1.0, 1.0)  # the engine's sign where the two differ
        return (torch.where(differ, want, t),) + tuple(args[1:])

    return pre


def reference_with_engine_ties(
    model: nn.Module,
    comp,
    x: torch.Tensor,
    sites: Sequence[nn.Module] | None = None,
    tie: float = TIE,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(engine logits, PyTorch logits with the engine's tie decisions, flips)``; asserts
    that signs differ only at pre-sign values within ``tie`` of 0."""
    got, signs = engine_signs(comp, np.ascontiguousarray(x.numpy()))
    flips: list[int] = []
    sites = binary_sites(model) if sites is None else sites
    pre = _hook(signs, flips, tie)  # one counter for all sites: they fire in run order
    hooks = [m.register_forward_pre_hook(pre) for m in sites]
    try:
        with torch.no_grad():
            ref = model(x).numpy()
    finally:
        for h in hooks:
            h.remove()
    assert len(flips) == len(signs), f"PyTorch binarized {len(flips)} inputs, engine {len(signs)}"
    return got, ref, sum(flips)


def assert_engine_matches(
    model: nn.Module,
    comp,
    x: torch.Tensor,
    sites: Sequence[nn.Module] | None = None,
    rtol: float = 1e-4,
) -> int:
    """The engine's logits equal PyTorch's to float rounding once ties are settled the
    engine's way; returns how many signs were ties decided differently."""
    got, ref, flips = reference_with_engine_ties(model, comp, x, sites)
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale, err_msg=f"{flips} ties")
    return flips


def presign_values(
    model: nn.Module, x: torch.Tensor, sites: Sequence[nn.Module] | None = None
) -> tuple[np.ndarray, list[torch.Tensor]]:
    """PyTorch's logits and the pre-sign input of every sign site, in run order."""
    seen: list[torch.Tensor] = []
    sites = binary_sites(model) if sites is None else sites
    hooks = [m.register_forward_pre_hook(lambda _m, a: seen.append(a[0])) for m in sites]
    try:
        with torch.no_grad():
            logits = model(x).numpy()
    finally:
        for h in hooks:
            h.remove()
    return logits, seen


def tie_images(
    ref: Sequence[torch.Tensor], other: Sequence[np.ndarray], tie: float = TIE
) -> np.ndarray:
    """Images whose signs differ between two runs' pre-sign values (``ref`` from PyTorch),
    as a bool mask; asserts each first difference is a tie, 0 < |value| <= tie * scale (an
    exact 0 is no tie: both must map it to +1). After an image's first tie its later values
    may differ by anything, so they are not compared."""
    assert len(ref) == len(other), f"{len(ref)} sign sites in PyTorch, {len(other)} in the other"
    excused = np.zeros(len(ref[0]), dtype=bool)
    for k, (t, o) in enumerate(zip(ref, other, strict=True)):
        t = t.double().numpy()
        assert o.shape == t.shape, f"sign site {k}: {o.shape} vs {t.shape}"
        differ = ((t >= 0) != (o >= 0)) & ~excused.reshape((-1,) + (1,) * (t.ndim - 1))
        bound = tie * max(1.0, float(np.abs(t).max()))
        far = differ & ((np.abs(t) > bound) | (t == 0))
        assert not far.any(), f"sign site {k}: {int(far.sum())} signs differ beyond a tie"
        excused |= differ.reshape(len(t), -1).any(1)
    return excused
