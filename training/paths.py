"""Default locations for the training scripts, relative to the repository (not to the current directory), so a
recorded command gives the same files wherever it is started. Every one is also an argument of its script."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The labelled data sets live beside the repository (read-only, never copied into it); FACELAB_SHARED_DATA moves
# them, as it does for the tests.
SHARED_DATA = Path(os.environ.get("FACELAB_SHARED_DATA", REPO.parent / "shared" / "data"))
ATTRIBUTE_CACHE = REPO / "out" / "attributes-cache"  # extract_faces.py's output, the packers' input
WEIGHTS = REPO / "facelab" / "models" / "weights"
DEVDATA = REPO / ".devdata"                          # packed inputs carried to a training machine
