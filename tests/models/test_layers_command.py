"""`paretonas layers`: exact rows and a clean refusal of a bad --size."""

from __future__ import annotations

from typer.testing import CliRunner

from service.cli import app
from service.commands.layers import layer_costs


def test_rows_hold_the_exact_costs_of_a_digits_sized_hidden_layer() -> None:
    rows = {(r.family, r.kind): r for r in layer_costs(channels=16, hw=(8, 8))}
    d = 16 * 8 * 8
    full = rows["projection", "full"]
    assert (full.params, full.macs) == (d * d + d, d * d)
    bilinear = rows["projection", "bilinear"]
    assert bilinear.params == 16 * 16 * (8 * 8 + 8 * 8) + 16 * 64
    assert bilinear.macs == 16 * 16 * 8 * 8 * (8 + 8)
    assert bilinear.full_params == d * d + d
    spatial = rows["conv3x3", "lowrank spatial r=8"]
    assert spatial.params == 8 * (16 * 3 + 16 * 3) + 8 + 16


def test_command_prints_the_table_and_refuses_bad_sizes() -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["layers", "--size", "8x8"])
    assert ok.exit_code == 0, ok.output
    assert "16x8x8       projection  bilinear                        33,792" in ok.output
    bad = runner.invoke(app, ["layers", "--size", "8by8"])
    assert bad.exit_code == 2
    assert "expected HxW such as 8x8" in bad.output
