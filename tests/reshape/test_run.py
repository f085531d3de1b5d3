"""A tiny end-to-end ``dwr run``: crash in pruning, resume, skip, report, and ``dwr prune``."""

import importlib
import json

import numpy as np
import pytest

from dwr import DwrError, get_spec
from dwr.cli.main import main
from dwr.data import load_dataset
from dwr.reshape import metric_value
from dwr.reshape.pipeline import run_pipeline

pipeline = importlib.import_module("dwr.reshape.pipeline")
TINY = get_spec("resnet20_cifar", depths=[2, 2, 2], widths=[4, 8, 16])  # stem 16 as registered


@pytest.fixture(scope="module")
def small_digits():
    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    for split, n in (("train", 160), ("test", 80)):
        s = data.splits[split]
        data.splits[split] = s.subset(np.sort(rng.choice(len(s), n, replace=False)))
    return data


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, small_digits):
    """Run once with pruning failing, then resume; record which trainings ran."""
    out = tmp_path_factory.mktemp("run")
    mp = pytest.MonkeyPatch()
    calls: list[str] = []
    train_mod = importlib.import_module("dwr.train")
    real_train = train_mod.train

    def counting_train(spec, data, out_dir, *a, **k):
        calls.append(out_dir.name)
        return real_train(spec, data, out_dir, *a, **k)

    mp.setattr(train_mod, "train", counting_train)

    def crash(*a, **k):
        raise DwrError("simulated crash in pruning")

    kwargs = dict(data=small_digits, epochs=1, pretrain_epochs=1, samples=32, quiet=True)
    mp.setattr(pipeline, "prune", crash)
    with pytest.raises(DwrError, match="simulated crash"):
        run_pipeline(TINY, out_dir=out, **kwargs)
    first = list(calls)
    crashed = {
        "report": (out / "report.json").exists(),
        "done": sorted(p.parent.name for p in out.glob("*/done.json")),
    }
    mp.undo()
    mp.setattr(train_mod, "train", counting_train)
    calls.clear()
    report = run_pipeline(TINY, out_dir=out, resume=True, **kwargs)
    second = list(calls)
    calls.clear()
    again = run_pipeline(TINY, out_dir=out, resume=True, **kwargs)
    third = list(calls)
    mp.undo()
    return out, first, crashed, second, report, third, again


def test_crash_leaves_no_report_and_resume_skips(finished_run):
    out, first, crashed, second, report, third, again = finished_run
    assert first == ["original", "naive", "pretrain"]
    assert crashed == {"report": False, "done": ["naive", "original", "pretrain"]}
    # finished stages skipped; at the default eps the clustering merged nothing here, so the
    # pruned spec is the naive network and its run is reused instead of trained again
    assert report["dwr_same_as_naive"] and second == []
    assert report["prune"]["raw_widths"] == report["prune"]["from_widths"]
    assert json.loads((out / "dwr" / "done.json").read_text())["same_as"] == "naive"
    _, naive, dwr = report["rows"]
    assert (dwr["widths"], dwr["top1"]) == (naive["widths"], naive["top1"])
    assert "reuses its run" in (out / "report.md").read_text()
    assert third == []
    assert again["rows"] == report["rows"]


def test_a_reshaped_clustering_is_trained(tmp_path, small_digits):
    """eps bisected to the budget merges channels unevenly, so the widths' proportions change
    (here [5, 12, 28] against naive's [6, 11, 22]): that spec is trained."""
    kwargs = dict(data=small_digits, epochs=1, pretrain_epochs=1, samples=32, quiet=True)
    report = run_pipeline(TINY, out_dir=tmp_path, eps=None, **kwargs)
    assert not report["dwr_same_as_naive"]
    assert report["rows"][2]["widths"] != report["rows"][1]["widths"]
    assert (tmp_path / "dwr" / "last.ckpt").is_file()
    assert "same_as" not in json.loads((tmp_path / "dwr" / "done.json").read_text())


def test_report_rows_and_budget(finished_run):
    out, *_, report, _, _ = finished_run
    saved = json.loads((out / "report.json").read_text())
    assert saved["rows"] == report["rows"] and saved["budget_metric"] == "bops"
    assert [r["name"] for r in saved["rows"]] == ["original", "naive", "dwr"]
    for row in saved["rows"]:
        for key in ("depths", "widths", "bops", "flops", "ops", "activations", "params", "top1"):
            assert key in row
        assert 0 <= row["top1"] <= 100
    original, naive, dwr = saved["rows"]
    assert naive["depths"] == [1, 1, 1]
    assert abs(naive["bops"] / original["bops"] - 1) <= 0.03  # scaled to the budget
    assert dwr["depths"] == [1, 1, 1]
    assert abs(dwr["bops"] / original["bops"] - 1) <= 0.03
    assert original["bops"] == metric_value(TINY, "bops")
    prune = saved["prune"]
    assert prune["from_widths"] == [11, 21, 42] and len(prune["raw_widths"]) == 3  # s=3, x1.5
    defaults = {"tensor": "conv", "min_samples": 5, "eps": 0.021, "eps_scale": "global"}
    assert saved["cluster"] == defaults
    assert (out / "report.md").read_text().count("| dwr |") == 1
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_rerun_without_resume_is_refused(finished_run, small_digits):
    out = finished_run[0]
    with pytest.raises(DwrError, match="pass --resume"):
        run_pipeline(TINY, out_dir=out, data=small_digits, epochs=1, samples=32, quiet=True)
    assert (out / "report.json").exists()  # refused before touching anything


def test_cli_prune_checkpoint(finished_run, capsys):
    out = finished_run[0]
    ckpt = json.loads((out / "pretrain" / "done.json").read_text())["checkpoint"]
    budget = str(metric_value(TINY, "bops"))
    argv = ["prune", ckpt, "--model", "resnet20_cifar", "--samples", "32", "--budget", budget]
    assert main(argv + ["--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert abs(res["cost"]["bops"] / float(budget) - 1) <= 0.03
    assert res["eps_scales"] == [1.0, 1.0, 1.0]
    target = out / "pruned" / "p.json"  # a plain directory: no lock file left in it
    assert main(argv + ["--out", str(target)]) == 0
    capsys.readouterr()
    assert [p.name for p in target.parent.iterdir()] == ["p.json"]
    # eps in each stage's own unit: a bisection over one multiplier, scales reported
    assert main(argv + ["--eps-scale", "stage", "--eps", "auto", "--min-samples", "2"]) == 0
    shown = capsys.readouterr().out
    assert "x each stage's k-distance [" in shown and "pruned" in shown
    assert main(argv + ["--eps-scale", "stage", "--eps", "0.5", "--json"]) == 0  # 0.5 x k-dist
    res = json.loads(capsys.readouterr().out)
    assert res["eps"] == 0.5 and len(res["eps_scales"]) == 3 and res["eps_scales"] != [1.0] * 3
    assert abs(res["cost"]["bops"] / float(budget) - 1) <= 0.03
    bad = [
        (["prune", ckpt, "--model", "vgg_small_cifar"], "is not a reshaped vgg_small_cifar"),
        (["prune", ckpt, "--model", "resnet20_cifar", "--samples", "4"], "at least 8"),
        # full resnet20 budget: bisection cannot reach it (a fixed eps would scale widths up)
        (["prune", ckpt, "--model", "resnet20_cifar", "--eps", "auto"], "too narrow"),
        (["prune", ckpt, "--model", "resnet20_cifar", "--eps", "3"], "must be in (0, 2]"),
        (argv[:4] + ["--eps-scale", "stage", "--eps", "5000"], "must be in (0, 1000]"),
        (argv[:4] + ["--eps-scale", "pixel"], "invalid choice: 'pixel'"),
        (argv[:4] + ["--samples", "99999"], "cannot sample 99999"),
    ]
    for args, needle in bad:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--factor", "0"], "factor must be a positive number"),
        (["--factor", "1e9"], "is absurd"),
        (["--samples", "3"], "at least 8 sample images"),
        (["--overparam", "0.2"], "no eps can reach it"),
        (["--eps", "3"], "must be in (0, 2] (a cosine distance)"),
    ],
)
def test_cli_run_bad_input(tmp_path, capsys, extra, needle):
    assert main(["run", "--out", str(tmp_path / "r"), *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not (tmp_path / "r" / "report.json").exists()


def test_failed_resume_removes_the_stale_report(finished_run, small_digits, monkeypatch):
    out = finished_run[0]
    (out / "naive" / "done.json").unlink()  # a training stage must run again ...
    train_mod = importlib.import_module("dwr.train")

    def crash(*a, **k):
        raise DwrError("simulated crash in training")

    monkeypatch.setattr(train_mod, "train", crash)  # ... and crashes
    with pytest.raises(DwrError, match="simulated crash"):
        run_pipeline(
            TINY,
            out_dir=out,
            data=small_digits,
            epochs=1,
            pretrain_epochs=1,
            samples=32,
            resume=True,
            quiet=True,
        )
    assert not any((out / n).exists() for n in ("report.json", "report.md", "report.png"))


def test_search_dwr_spec_alone(tmp_path, small_digits):
    """Steps 2-3 without the rest of ``dwr run`` (what benchmarks/paper_table.py calls)."""
    from dwr.reshape.pipeline import pretrain_spec, search_dwr_spec

    original = TINY.replace(num_classes=small_digits.num_classes)
    assert pretrain_spec(original, 2, 1.5).widths == (9, 17, 35)
    found = search_dwr_spec(original, small_digits, tmp_path, samples=32, overrides={"epochs": 1})
    assert found.spec.depths == (1, 1, 1)
    budget = metric_value(original, "bops", tuple(small_digits.input_size))
    assert found.budget == budget and abs(found.cost["bops"] / budget - 1) <= 0.03
    assert (tmp_path / "pretrain").is_dir()
