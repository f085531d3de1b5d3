"""``dwr profile``: the engine's op timings over a (tiny) grid, saved as the latency table."""

from __future__ import annotations

import json

import pytest

from dwr.cli.main import main
from dwr.cost import latency
from dwr.engine import _kernels, profile
from dwr.errors import DwrError


@pytest.fixture(scope="module")
def quick_table():
    return profile.measure("quick", threads=1)


def test_quick_grid_times_every_op_kind(quick_table):
    t = quick_table
    assert t["format"] == profile.TABLE_FORMAT == latency.TABLE_FORMAT
    kinds = {(r["k"], r["stride"]) for r in t["binary_conv"]}
    assert kinds == {(3, 1), (3, 2), (1, 1)}
    stems = {(r["k"], r["stride"], r["cin"]) for r in t["float_conv"] if "ih" in r}
    assert stems == {(7, 2, 3), (3, 1, 3), (3, 1, 1), (3, 2, 3)}
    assert any(r["k"] == 1 for r in t["float_conv"]) and t["head"]
    for kind in ("binary_conv", "float_conv", "head"):
        assert all(r["ms"] > 0 for r in t[kind])
    for name in ("residual", "pack_next", "bits_out", "pack_input", "zero_pad", "maxpool3"):
        assert name in t["per_element_ns"] and t["fixed_ms"][name] >= 0
    assert t["call_ms"] > 0


def test_the_model_reads_what_the_profile_writes(quick_table):
    table = latency.LatencyTable({**quick_table, "key": latency.runtime_key(1)})
    for row in quick_table["binary_conv"]:  # a measured point is predicted as measured
        p = row["oh"] ** 2
        got = table.binary_ms(row["k"], row["stride"], 64 * row["words"], row["out"], p)
        assert got == pytest.approx(row["ms"], rel=1e-9)


def test_fit_cost_splits_fixed_and_per_element_costs():
    assert profile.fit_cost([(100, 0.002), (1100, 0.012)]) == pytest.approx((0.001, 10.0))
    assert profile.fit_cost([(1000, 0.004)]) == pytest.approx((0.0, 4.0))
    fixed, ns = profile.fit_cost([(100, 0.0), (200, 0.003)])  # negative fixed: through 0
    assert fixed == 0 and ns == pytest.approx(0.003 * 200 / (100**2 + 200**2) * 1e6)


def test_epilogue_costs_are_per_element_medians():
    assert profile.per_element_only([(100, 0.001), (1000, 0.004), (10, -1.0)]) == (0.0, 4.0)
    assert profile.per_element_only([(100, -0.001)]) == (0.0, 0.0)


def test_threads_are_restored():
    _kernels.set_num_threads(1)
    grid = profile.Grid(**{**profile.GRIDS["quick"].__dict__, "bin_words": (1,), "fp_outs": (16,)})
    ticks = []
    profile.measure(grid, threads=2, progress=ticks.append)
    assert _kernels.get_num_threads() == 1
    assert len(ticks) == profile.count_points(grid)


def test_bad_arguments():
    with pytest.raises(DwrError, match="unknown profile grid"):
        profile.measure("huge")
    with pytest.raises(DwrError, match="threads"):
        profile.measure("quick", threads=0)


def test_cli_saves_a_keyed_table_in_the_user_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["profile", "--quick", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    path = tmp_path / "dwr" / "latency" / (latency.table_path(1).name)
    assert info["path"] == str(path) and path.is_file()
    table = latency.load_table(1)
    assert table.key == latency.runtime_key(1)
    assert json.loads(path.read_text())["grid"] == "quick"
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_cli_bad_threads_is_one_line(capsys):
    assert main(["profile", "--threads", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads" in err[0]
