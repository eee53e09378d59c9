"""A small run of the adopt benchmark, so `python -m tests.bench_adopt` keeps working."""

from __future__ import annotations

import pytest

from tests import bench_adopt


def test_adopt_benchmark_runs_and_checks_itself(capsys: pytest.CaptureFixture[str]) -> None:
    # The benchmark asserts on its own results: no file rewritten without drift, every drifted
    # customer's file rewritten, and an empty plan after adopt. Timings are not judged here.
    assert (
        bench_adopt.main(
            ["--customers", "6", "--extensions", "10", "--repeat", "1", "--change-share", "0.2"]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "| adopt, no drift |" in table and "| adopt, 20% of accounts drifted |" in table
