"""What a user's `pip install facelab` costs: wheel size, installed size of the core and of [all], `import facelab`
and first-verify latency from the wheel install, and the time from a clean virtualenv to a first verify answer.

    .venv/bin/python benchmarks/install_size.py                 # -> benchmarks/results/install.json
    .venv/bin/python benchmarks/install_size.py --cold          # also a core install with pip's cache off

The wheel is built from this tree and installed into fresh virtualenvs under a temporary folder with versions
from requirements.lock as constraints (`-c`: pins, adds nothing). Installs use pip's cache unless --cold, so the
"clean virtualenv to first answer" figure is for a machine that has downloaded the packages once; --cold adds
the same with every package downloaded again.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
LFW = ROOT.parent / "shared" / "data" / "lfw" / "images"


def sh(cmd, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{out.stdout}\n{out.stderr}")
    return out


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python*/site-packages"))


def top_packages(venv: Path, n: int = 8) -> dict[str, float]:
    """The largest installed folders, MB (where the size goes)."""
    sizes = {p.name: du(p) for p in site_packages(venv).iterdir() if p.is_dir() and not p.name.endswith("-info")}
    return {k: round(v / 1e6, 1) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:n]}


def make_venv(path: Path, wheel: Path, extra: str = "", cold: bool = False) -> dict:
    t0 = time.perf_counter()
    sh([sys.executable, "-m", "venv", path])
    t1 = time.perf_counter()
    cmd = [path / "bin" / "pip", "install", "-q", f"{wheel}{extra}", "-c", LOCK]
    sh(cmd + (["--no-cache-dir"] if cold else []))
    t2 = time.perf_counter()
    return {"venv_s": round(t1 - t0, 2), "pip_install_s": round(t2 - t1, 2)}


def env_for(venv: Path, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["FACELAB_HOME"] = str(home)
    return env


def timed_python(venv: Path, code: str, cwd: Path, env: dict) -> tuple[float, str]:
    """Wall time of a fresh interpreter running `code` (start-up included) and what it printed."""
    t0 = time.perf_counter()
    out = sh([venv / "bin" / "python", "-c", code], cwd=cwd, env=env)
    return time.perf_counter() - t0, out.stdout.strip()


def photos(work: Path) -> tuple[Path, Path]:
    a, b = LFW / "Colin_Powell" / "Colin_Powell_0001.jpg", LFW / "Colin_Powell" / "Colin_Powell_0002.jpg"
    if a.exists() and b.exists():
        return a, b
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut())
    img.save(work / "a.jpg")
    img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(work / "b.jpg")
    return work / "a.jpg", work / "b.jpg"


def latencies(venv: Path, work: Path, env: dict, a: Path, b: Path, runs: int) -> dict:
    imp, imp_wall, first, first_wall, cli = [], [], [], [], []
    code_import = "import time; t = time.perf_counter(); import facelab; print(time.perf_counter() - t)"
    code_verify = ("import time; t = time.perf_counter(); import facelab; "
                   f"r = facelab.verify({str(a)!r}, {str(b)!r}); print(time.perf_counter() - t, r.same)")
    for _ in range(runs):
        wall, out = timed_python(venv, code_import, work, env)
        imp.append(float(out)), imp_wall.append(wall)
        wall, out = timed_python(venv, code_verify, work, env)
        first.append(float(out.split()[0])), first_wall.append(wall)
        assert out.split()[1] == "True", out
        t0 = time.perf_counter()
        sh([venv / "bin" / "facelab", "verify", a, b], cwd=work, env=env)
        cli.append(time.perf_counter() - t0)
    ms = lambda xs: round(1000 * statistics.median(xs), 1)  # noqa: E731
    return {"runs": runs, "import_facelab_ms": ms(imp), "import_process_wall_ms": ms(imp_wall),
            "first_verify_in_process_ms": ms(first), "first_verify_process_wall_ms": ms(first_wall),
            "cli_verify_wall_ms": ms(cli)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per latency figure (median)")
    ap.add_argument("--cold", action="store_true", help="also install the core with pip's cache off")
    ap.add_argument("--no-all", action="store_true", help="skip the [all] install (torch: ~1 GB)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "install.json"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="facelab-install-") as tmp:
        tmp = Path(tmp)
        work = tmp / "work"
        work.mkdir()
        sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist", ROOT])
        (wheel,) = (tmp / "dist").glob("facelab-*.whl")
        a, b = photos(work)
        result: dict = {"wheel": wheel.name, "wheel_bytes": wheel.stat().st_size,
                        "python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count(), "load_avg_1min_start": round(os.getloadavg()[0], 2),
                        "photos": [os.path.relpath(a, ROOT), os.path.relpath(b, ROOT)]}

        # A clean virtualenv to a first verify answer: venv + pip install (pip's cache warm) + first verify.
        core = tmp / "core"
        t0 = time.perf_counter()
        steps = make_venv(core, wheel)
        env = env_for(core, tmp / "home")
        wall, _ = timed_python(core, f"import facelab; print(facelab.verify({str(a)!r}, {str(b)!r}).same)", work, env)
        steps["first_verify_s"] = round(wall, 2)
        steps["total_s"] = round(time.perf_counter() - t0, 2)
        result["clean_venv_to_first_verify_warm_cache"] = steps
        result["core"] = {"venv_mb": round(du(core) / 1e6, 1),
                          "site_packages_mb": round(du(site_packages(core)) / 1e6, 1),
                          "largest_mb": top_packages(core), **latencies(core, work, env, a, b, args.runs)}
        print(json.dumps(result, indent=2), flush=True)

        if args.cold:
            cold = tmp / "cold"
            t0 = time.perf_counter()
            steps = make_venv(cold, wheel, cold=True)
            wall, _ = timed_python(cold, f"import facelab; print(facelab.verify({str(a)!r}, {str(b)!r}).same)",
                                   work, env_for(cold, tmp / "home"))
            steps["first_verify_s"] = round(wall, 2)
            steps["total_s"] = round(time.perf_counter() - t0, 2)
            result["clean_venv_to_first_verify_no_cache"] = steps

        if not args.no_all:
            full = tmp / "all"
            steps = make_venv(full, wheel, "[all]")
            result["all"] = {"venv_mb": round(du(full) / 1e6, 1),
                             "site_packages_mb": round(du(site_packages(full)) / 1e6, 1),
                             "largest_mb": top_packages(full), "pip_install_s_warm_cache": steps["pip_install_s"]}

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in result if k not in ("photos",)}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
