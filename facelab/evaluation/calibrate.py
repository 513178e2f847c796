"""Write an embedder's operating points (models/thresholds.json) from an LFW report."""
from __future__ import annotations

import json
from pathlib import Path

from ..verification import THRESHOLDS_FILE


def write_thresholds(report: dict, path: Path = THRESHOLDS_FILE,
                     source: str = "LFW View 2, all 6,000 pairs (deep-funneled)") -> dict:
    table = json.loads(path.read_text()) if path.exists() else {}
    table[report["model"]] = {
        "source": source,
        "lfw_accuracy": round(report["mean_accuracy"], 5),
        "default": {"threshold": round(report["best_threshold"], 5),
                    "far": round(report["best_threshold_far"], 5),
                    "note": "threshold of best accuracy over all pairs"},
        "far_table": [{"far": r["far"], "threshold": r["threshold"], "tar": r["tar"]} for r in report["far_table"]],
    }
    path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    return table
