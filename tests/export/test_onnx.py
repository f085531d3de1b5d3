"""ONNX export: onnxruntime against PyTorch on registered models, exact ties, bad input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from dwr.backbones import create_model, list_models
from dwr.binary import BinaryConv2d, get_binarizer
from dwr.cli.main import main
from dwr.errors import DwrError
from dwr.export import export_onnx, to_onnx
from sign_ties import presign_values, tie_images

ort = pytest.importorskip("onnxruntime")


def trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics, shifts and slopes, as a trained model has (a fresh model's BN is
    the identity, which puts many pre-activations exactly on 0)."""
    g = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                uniform(m.running_mean, -0.5, 0.5)
                uniform(m.running_var, 0.5, 2.0)
                uniform(m.weight, 0.5, 1.5)
                uniform(m.bias, -0.3, 0.3)
            elif isinstance(m, nn.PReLU):
                uniform(m.weight, 0.0, 0.5)
            elif getattr(m, "bias", None) is not None and m.bias.dim() == 4:  # RSign/RPReLU
                uniform(m.bias, -0.2, 0.2)
    return model.eval()


def presign_names(proto) -> list[str]:
    """The tensors that the activation signs read, in graph order (the units' order); weight
    signs read constants, and the outer Sign of ``Sign(Sign(x) + 0.5)`` reads a sign."""
    made = {o: n for n in proto.graph.node for o in n.output}
    consts = {i.name for i in proto.graph.initializer}
    names = []
    for n in proto.graph.node:
        src = made.get(n.input[0]) if n.input else None
        if n.op_type not in ("Sign", "BipolarQuant") or n.input[0] in consts:
            continue
        if src is not None and src.op_type == "Constant":
            continue
        if src is not None and any(made.get(i, src).op_type == "Sign" for i in src.input):
            continue
        names.append(n.input[0])
    return names


def run_onnx(
    model: nn.Module, x: torch.Tensor, optimize: bool = True, proto=None, **options
) -> tuple[np.ndarray, list[np.ndarray]]:
    """onnxruntime's logits, and the pre-sign values of every activation sign (extra graph
    outputs, for :func:`sign_ties.tie_images`)."""
    from onnx import TensorProto, helper

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if not optimize:  # ORT folds Mul/Add into the conv weights, which rounds exact ties
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    proto = to_onnx(model, size=tuple(x.shape[2:]), **options) if proto is None else proto
    names = presign_names(proto)
    if "qonnx" in options.values():
        proto = _bipolar_quant_as_standard_ops(proto)
    proto.graph.output.extend(
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names
    )
    sess = ort.InferenceSession(proto.SerializeToString(), so)
    out = sess.run(None, {"input": x.numpy()})
    return out[0], out[1:]


def assert_matches_but_ties(
    ref_model: nn.Module, x: torch.Tensor, got: tuple, rel: float = 1e-4, min_clean: float = 0.9
) -> np.ndarray:
    """onnxruntime's logits ``got[0]`` equal ``ref_model``'s on every image without a tie (a
    sign of a value within rounding of 0 taken the other way, which tie_images checks is all
    that differs); at least ``min_clean`` of the images have none. Returns the tie images."""
    xx = x.to(next(ref_model.parameters()).dtype)
    want, pre = presign_values(ref_model, xx)
    ties = tie_images(pre, got[1])
    clean = ~ties
    assert clean.mean() >= min_clean, f"{int(ties.sum())}/{len(ties)} images hold a tie"
    tol = rel * float(np.abs(want).max())
    np.testing.assert_allclose(got[0][clean], want[clean], rtol=rel, atol=tol)
    return ties


def exact_model(model: nn.Module) -> nn.Module:
    """The model in float64 with integer dot products: ``alpha * conv(sign x, sign W)``, so
    a pre-activation that is 0 is exactly 0 (PyTorch's float conv of ±alpha rounds it)."""
    m = copy.deepcopy(model).double()
    for mod in m.modules():
        if isinstance(mod, BinaryConv2d) and mod.weight_binarizer is not None:
            w = mod.weight.detach()
            scaled = mod.weight_binarizer is get_binarizer("scaled_sign")
            alpha = w.abs().mean(dim=(1, 2, 3)) if scaled else torch.ones(len(w), dtype=w.dtype)
            mod.weight_binarizer = get_binarizer("ste_sign")
            mod.register_forward_hook(lambda _m, _i, out, a=alpha: out * a.view(1, -1, 1, 1))
    return m


def fraction_close(a: np.ndarray, b: np.ndarray, rel: float = 1e-4) -> float:
    tol = rel * float(np.abs(b).max())
    return float(np.mean([np.allclose(a[i], b[i], rtol=rel, atol=tol) for i in range(len(a))]))


@pytest.mark.parametrize(
    "name, size, batch",
    [
        ("resnet20_cifar", 32, 200),  # zero-pad shortcuts, Hardtanh
        ("vgg11_cifar_dwr", 32, 32),  # no shortcuts, max-pools between binary convs
        ("reactnet18", 32, 32),  # RSign, RPReLU, avg-pool shortcuts
        ("birealnet18_dwr", 32, 32),  # the DWR stem adapter (when the spec has one)
    ],
)
def test_onnxruntime_matches_pytorch(name: str, size: int, batch: int) -> None:
    torch.manual_seed(0)
    model = trained_like(create_model(name))
    x = torch.randn(batch, 3, size, size)
    assert_matches_but_ties(model, x, run_onnx(model, x))


def test_registry_exports_and_matches_the_exact_model() -> None:
    """Every registered architecture, at an eighth of its widths to stay fast."""
    from dwr.backbones import get_spec

    torch.manual_seed(1)
    x = torch.randn(8, 3, 32, 32)
    for name in list_models():
        widths = [max(8, w // 8) for w in get_spec(name).widths]
        model = trained_like(create_model(name, widths=widths))
        got = run_onnx(model, x, optimize=False)
        assert_matches_but_ties(exact_model(model), x, got, min_clean=7 / 8)


@pytest.mark.parametrize("name", ["resnet20_cifar", "reactnet18"])
def test_full_precision_units_export(name: str) -> None:
    """A spec with ``binary=False`` (real input and weights in every unit) has no sign, so
    onnxruntime matches PyTorch to float rounding everywhere; the engine refuses it."""
    import dwr.engine
    from dwr.backbones import get_spec

    torch.manual_seed(4)
    widths = [8] * len(get_spec(name).widths)
    model = trained_like(create_model(name, binary=False, widths=widths))
    x = torch.randn(4, 3, 32, 32)
    proto = to_onnx(model, size=(32, 32))
    assert not {"Sign", "BipolarQuant"} & {n.op_type for n in proto.graph.node}
    got, _ = run_onnx(model, x, proto=proto)
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    with pytest.raises(DwrError, match="full-precision convolution at 'stages.0.0'"):
        dwr.engine.convert(model)


@pytest.mark.parametrize("name", ["vgg11_cifar_dwr", "resnet20_cifar"])
def test_sign_of_zero_is_plus_one_like_dwr(name: str) -> None:
    """A fresh model's identity BN puts pre-activations exactly on 0: the default binarizer
    maps them to +1 as dwr does; the plain ONNX Sign maps them to 0 and the logits move."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(16, 3, 32, 32)
    exact = exact_model(model)
    assert_matches_but_ties(exact, x, run_onnx(model, x, optimize=False), rel=1e-5)
    plain = run_onnx(model, x, optimize=False, sign="plain")[0]
    with torch.no_grad():
        assert fraction_close(plain, exact(x.double()).numpy(), 1e-5) < 1.0


def test_graph_uses_standard_ops_and_opset(tmp_path) -> None:
    import onnx

    path = tmp_path / "m.onnx"
    assert main(["export", "resnet20_cifar", "--format", "onnx", "-o", str(path)]) == 0
    proto = onnx.load(str(path))
    assert proto.opset_import[0].domain == "" and proto.opset_import[0].version >= 17
    ops = {n.op_type for n in proto.graph.node}
    assert "Sign" in ops and "Conv" in ops and "BatchNormalization" not in ops
    convs = [
        i for i in proto.graph.initializer if i.name.startswith("stages.") and "weight" in i.name
    ]
    assert convs and all(
        set(np.unique(onnx.numpy_helper.to_array(w))) <= {-1.0, 1.0} for w in convs
    )
    sess = ort.InferenceSession(str(path))
    out = sess.run(None, {"input": np.zeros((3, 3, 32, 32), np.float32)})[0]
    assert out.shape == (3, 10)


def test_bad_input_is_one_clear_error(tmp_path, capsys) -> None:
    with pytest.raises(DwrError, match="example NCHW input"):
        to_onnx(nn.Linear(2, 2))
    model = create_model("resnet20_cifar").eval()
    model.stem.act = nn.ReLU()
    with pytest.raises(DwrError, match=r"ReLU at 'stem\.act'"):
        to_onnx(model)
    with pytest.raises(DwrError, match="opset 16"):
        to_onnx(create_model("resnet20_cifar"), opset=16)
    out = tmp_path / "m.onnx"
    assert main(["export", str(tmp_path / "missing.ckpt"), "-o", str(out)]) == 2
    assert main(["export", "no_such_model", "-o", str(out)]) == 2
    assert main(["export", "resnet20_cifar", "-o", str(tmp_path)]) == 2  # a directory
    assert main(["export", "torch.nn:Identity", "-o", str(out)]) == 2  # not a conv BNN
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("dwr: error: ") for line in err)
    assert "missing.ckpt" in err[0] and "no_such_model" in err[1] and "directory" in err[2]
    assert "Identity has no Conv2d" in err[3]
    assert not out.exists()
    export_onnx(create_model("resnet20_cifar"), out)
    assert out.stat().st_size > 0


def test_export_a_checkpoint(tmp_path, capsys) -> None:
    """A checkpoint written the way training writes it, through the CLI."""
    import onnx

    import dwr
    from dwr.train import load_checkpoint
    from dwr.train.checkpoint import AtomicCheckpointIO

    spec = dwr.get_spec("resnet20_cifar", depths=[1, 1, 1], widths=[8, 8, 8])
    trained = trained_like(create_model(spec), seed=3)
    ckpt_path = tmp_path / "last.ckpt"
    ckpt = {
        "dwr": {"format": 1, "spec": spec.to_dict(), "epoch": 1, "dataset": "digits"},
        "state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()},
    }
    AtomicCheckpointIO().save_checkpoint(ckpt, ckpt_path)
    path = tmp_path / "model.onnx"
    assert main(["export", str(ckpt_path), "--format", "onnx", "-o", str(path)]) == 0
    assert "opset 17" in capsys.readouterr().out
    model = load_checkpoint(ckpt_path)
    x = torch.randn(200, *model.spec.input_size)
    assert_matches_but_ties(model, x, run_onnx(model, x, proto=onnx.load(str(path))))


def _bipolar_quant_as_standard_ops(proto):
    """QONNX's BipolarQuant, ``(x >= 0 ? 1 : -1) * scale`` (its reference implementation in
    qonnx.custom_op.general.bipolar_quant), rewritten with standard ops so onnxruntime runs it."""
    import onnx
    from onnx import helper

    nodes = []
    for n in proto.graph.node:
        if n.op_type != "BipolarQuant":
            nodes.append(n)
            continue
        x, scale = n.input
        y = n.output[0]
        nodes += [
            helper.make_node("Constant", [], [f"{y}.zero"], value_float=0.0),
            helper.make_node("Constant", [], [f"{y}.one"], value_float=1.0),
            helper.make_node("Constant", [], [f"{y}.minus"], value_float=-1.0),
            helper.make_node("GreaterOrEqual", [x, f"{y}.zero"], [f"{y}.ge"]),
            helper.make_node("Where", [f"{y}.ge", f"{y}.one", f"{y}.minus"], [f"{y}.pm"]),
            helper.make_node("Mul", [f"{y}.pm", scale], [y]),
        ]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    del proto.opset_import[1:]
    onnx.checker.check_model(proto)
    return proto


def test_qonnx_bipolar_quant_graph_matches_the_exact_model(tmp_path) -> None:
    import onnx

    torch.manual_seed(2)
    model = create_model("resnet20_cifar").eval()  # fresh: many exact zeros, BipolarQuant -> +1
    x = torch.randn(16, 3, 32, 32)
    path = tmp_path / "m.qonnx.onnx"
    assert main(["export", "resnet20_cifar", "--format", "qonnx", "-o", str(path)]) == 0
    proto = onnx.load(str(path))
    assert {"BipolarQuant", "Conv"} <= {n.op_type for n in proto.graph.node}
    assert "Sign" not in {n.op_type for n in proto.graph.node}
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 32, 32]  # static, as FINN wants
    proto = to_onnx(model, sign="qonnx", batch=16)
    got = run_onnx(model, x, optimize=False, proto=proto, sign="qonnx")
    assert_matches_but_ties(exact_model(model), x, got, rel=1e-5)
    assert main(["export", "resnet20_cifar", "--format", "qonnx", "--plain-sign", "-o", "x"]) == 2
