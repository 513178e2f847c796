"""Write an embedder's LFW View 2 figures into models/thresholds.json (benchmarks/lfw_verify.py).

View 2's 6,000 pairs give the published protocol figure (10-fold accuracy) and, under "view2", its best-accuracy
threshold and a coarse FAR table (3,000 impostor pairs cannot measure a FAR below ~1e-3). The operating points
facelab decides with ("default", "far_table") come from every LFW pair (benchmarks/far_table.py) and are kept
as they are; a model that has none yet gets View 2's as a stop-gap.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..verification import THRESHOLDS_FILE


def write_thresholds(report: dict, path: Path = THRESHOLDS_FILE,
                     source: str = "LFW View 2, all 6,000 pairs (deep-funneled)") -> dict:
    table = json.loads(path.read_text()) if path.exists() else {}
    view2: dict[str, Any] = {
        "source": source,
        "best_accuracy": {"threshold": round(report["best_threshold"], 5),
                          "far": round(report["best_threshold_far"], 5),
                          "note": "threshold of best accuracy over all pairs"},
        "far_table": [{"far": r["far"], "threshold": r["threshold"], "tar": r["tar"]} for r in report["far_table"]],
    }
    entry = table.get(report["model"], {})
    entry["lfw_accuracy"] = round(report["mean_accuracy"], 5)
    entry["view2"] = view2
    if "default" not in entry or entry.get("source", "").startswith("LFW View 2"):
        # no all-pairs table yet: View 2's strictest measurable point, not its best-accuracy point
        strictest = min(view2["far_table"], key=lambda r: r["far"])
        entry.update(source=source, far_table=view2["far_table"],
                     default={**strictest, "note": "View 2's strictest FAR row (run benchmarks/far_table.py)"})
    table[report["model"]] = entry
    path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    return table
