"""bench/shapes.py: a preset's matmuls timed against the n x n ceiling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import shapes
from bench.flops import Dims, step_flops


def test_the_step_matmuls_count_the_flops_useful_mfu_counts():
    """The shapes' FLOPs are bench/flops.py's useful FLOPs of the same batch, so the fraction of
    the ceiling they reach divides useful MFU like for like."""
    result = shapes.measure("tiny", precision="fp32", rows=3, length=10, vocab=500, mlm_probability=0.2,
                            rounds=1, ceiling_n=64, warmup=0)
    dims = Dims(**result["dims"])
    _, useful = step_flops(dims, np.full(3, 10), masked=6, width=10, head_positions=6)
    assert result["step_matmul_flops"] == pytest.approx(useful)
    assert sum(r["share_of_flops"] for r in result["shapes"]) == pytest.approx(1.0)
    assert all(r["seconds"] > 0 and r["of_ceiling"] > 0 for r in result["shapes"])
    assert result["shape_ceiling_of_ceiling"] == pytest.approx(
        result["step_matmul_flops"] / result["step_matmul_seconds"] / result["ceiling_flops"])


def test_the_cli_prints_each_shape_and_writes_its_report(tmp_path, capsys):
    out = tmp_path / "shapes.json"
    shapes.main(["--preset", "tiny", "--precision", "bf16", "--rows", "2", "--length", "8",
                 "--vocab", "300", "--rounds", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "feed-forward in" in printed and "the step's matmuls together" in printed
    saved = json.loads(out.read_text())
    assert saved["precision"] == "bf16" and saved["machine"]["cores"] >= 1
    assert [s["name"] for s in saved["shapes"]][-1] == "MLM vocabulary (masked)"
