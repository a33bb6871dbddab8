"""``python -m concurrency_kit compare --quick`` for real: every row that has a probe is
measured, in a fresh interpreter, and the JSON it writes validates against the schema."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import jsonschema

from concurrency_kit.compare import ASPECTS
from concurrency_kit.compare.probes import probe_for

SCHEMA = json.loads(files("concurrency_kit.compare").joinpath("compare.schema.json").read_text())


def test_compare_quick_measures_every_row(tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    result = subprocess.run(
        [sys.executable, "-m", "concurrency_kit", "compare", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    document = json.loads(out.read_text())
    jsonschema.validate(document, SCHEMA)
    assert [row["key"] for row in document["rows"]] == [aspect.key for aspect in ASPECTS]
    probed = {aspect.key for aspect in ASPECTS if probe_for(aspect.key) is not None}
    for row in document["rows"]:
        if row["key"] in probed:
            assert row["error"] is None, (row["key"], row["error"], result.stderr)
            assert row["measured"]["verdict"]
        else:
            assert row["error"] == "no probe yet"
    assert result.returncode == (0 if len(probed) == len(ASPECTS) else 1), result.stderr
    for aspect in ASPECTS:
        assert aspect.title in result.stdout
    assert "Traceback" not in result.stderr
