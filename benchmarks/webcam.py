"""Webcam path: one client streams 640x480 JPEG frames of one face over WebSocket /v1/stream, as the page does
(the next frame is sent when the previous answer arrives), for D seconds. Reports answered frames per second.

    .venv/bin/python benchmarks/webcam.py            # 30 s; identify/attributes on when this build has them

The frames are scikit-image's astronaut photo on a 640x480 canvas, moving a few pixels per frame. When the build
has galleries, she is enrolled first so each frame is also searched in the gallery. Writes
benchmarks/results/webcam.json.
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from skimage import data
from websockets.sync.client import connect

from _server import local_server, machine

RESULTS = Path(__file__).resolve().parent / "results"


def frames(n: int = 30) -> list[bytes]:
    face = data.astronaut()
    out = []
    for t in range(n):
        canvas = np.full((480, 640, 3), 40, np.uint8)
        dx, dy = int(20 * np.sin(t / 5)), int(10 * np.cos(t / 7))
        canvas[:, 64 + dx:576 + dx] = face[16 + dy:496 + dy]
        buf = io.BytesIO()
        Image.fromarray(canvas).save(buf, "JPEG", quality=80)  # what the page's canvas.toBlob sends
        out.append(buf.getvalue())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--no-attributes", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "webcam.json"))
    args = ap.parse_args()
    clip = frames()
    with local_server() as (url, key):
        features = httpx.get(url + "/v1/health").json()["features"]
        if features["galleries"]:
            r = httpx.post(url + "/v1/galleries/default/people/Eileen Collins/photos", timeout=120,
                           files={"image": ("a.jpg", clip[0], "image/jpeg")},
                           headers={"Authorization": f"Bearer {key}"})
            r.raise_for_status()
        config = {"gallery": "default", "identify": features["identify"],
                  "attributes": features["analyze"] and not args.no_attributes}
        with connect(url.replace("http", "ws") + "/v1/stream", max_size=2**24) as ws:
            ws.send(json.dumps(config))
            ws.send(clip[0])
            json.loads(ws.recv())  # warm-up: models load on first use
            rtts, server_ms, faces, errors, named, described = [], [], [], 0, 0, 0
            started = time.perf_counter()
            i = 0
            while time.perf_counter() - started < args.seconds:
                t0 = time.perf_counter()
                ws.send(clip[i % len(clip)])
                msg = json.loads(ws.recv())
                rtts.append((time.perf_counter() - t0) * 1000)
                i += 1
                if msg["type"] != "result":
                    errors += 1
                    continue
                server_ms.append(msg["ms"])
                faces.append(len(msg["faces"]))
                named += any(((f.get("identity") or {}).get("best") or {}).get("person") for f in msg["faces"])
                described += any(f.get("attributes") for f in msg["faces"])
            elapsed = time.perf_counter() - started
    rtts.sort()
    result = {
        "frames": len(rtts), "seconds": round(elapsed, 1), "fps": round(len(rtts) / elapsed, 2), "errors": errors,
        "frame": "640x480 JPEG q80, one face", "config": config,
        "round_trip_ms": {"p50": round(rtts[len(rtts) // 2], 1), "p95": round(rtts[int(0.95 * (len(rtts) - 1))], 1)},
        "server_ms_median": round(float(np.median(server_ms)), 1) if server_ms else None,
        "frames_with_one_face": sum(1 for f in faces if f == 1), "frames_with_a_name": named,
        "frames_with_attributes": described, "machine": machine(),
        "command": f"benchmarks/webcam.py --seconds {args.seconds:g}"
                   + (" --no-attributes" if args.no_attributes else ""),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
