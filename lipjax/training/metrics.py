"""Metrics as JSON lines (``metrics.jsonl``) and CSV (``metrics.csv``)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsWriter:
    """Appends one JSON object per line; rewrites a CSV with every column seen.

    On resume, rows logged after the restored step, and the ``final`` row of a run
    stopped early by ``num_train_steps``, are dropped so the files describe the run
    that actually continues.
    """

    def __init__(self, workdir: str | Path, resume_step: int | None = None):
        self.jsonl = Path(workdir) / "metrics.jsonl"
        self.csv = Path(workdir) / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.jsonl.exists():
            for line in self.jsonl.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    if row.get("step", 0) <= resume_step and row.get("kind") != "final":
                        self.rows.append(row)
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        self._write_csv()

    def write(self, step: int, kind: str, **values: Any) -> dict[str, Any]:
        row = {"step": int(step), "kind": kind, **{k: _plain(v) for k, v in values.items()}}
        self.rows.append(row)
        with self.jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")
        self._write_csv()
        return row

    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns.extend(k for k in row if k not in columns)
        with self.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})
