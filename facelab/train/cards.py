"""Model cards (Mitchell et al. 2019, trimmed): what the model is, what it was trained and measured on, and
what it must not be used for. Written from the run folder's own files, so every figure is a measured one."""
from __future__ import annotations

import json
from pathlib import Path

from .runs import Run


def write_card(run: Run) -> Path:
    config = run.config()
    summary = run.read_json("summary.json")
    arch, train = config["arch"], config["train"]
    lines = [f"# Model card: {run.path.name}", "",
             f"- task: {config['task']}" + (f" ({config.get('method')})" if config.get("method") else ""),
             f"- architecture: `{json.dumps({k: v for k, v in arch.items() if k != 'classes'})}`",
             f"- parameters: {config.get('parameters')}",
             f"- input: {_input_text(config)}",
             f"- output: {_output_text(config)}",
             f"- training data: `{config['dataset']}`; photos per split: "
             + ", ".join(f"{s} {sum(c.values())}" for s, c in config.get("counts", {}).items()),
             f"- training: {train['epochs']} epochs max (ran {summary['epochs_run']}, best epoch "
             f"{summary['best_epoch']}), batch {train['batch_size']}, {train['optimizer']} lr {train['lr']}, "
             f"augment `{train.get('augment') or 'none'}`, seed {train['seed']}, device {summary['device']}",
             f"- export: ONNX opset {summary['export']['opset']}, max |ONNX - PyTorch| = "
             f"{summary['export']['max_abs_diff']:.1e} on {summary['export']['checked_on']} inputs", "",
             "## Measured", ""]
    best = summary["best"]
    for key in ("val_acc", "val_loss", "lfw_acc", "lfw_auc", "lfw_threshold"):
        if key in best:
            lines.append(f"- {key} (best epoch): {best[key]}")
    if summary.get("test"):
        t = summary["test"]
        lines.append(f"- test split: accuracy {100 * t['accuracy']:.2f} %, top-5 {100 * t['top5']:.2f} %, "
                     f"balanced accuracy {100 * t['balanced_accuracy']:.2f} % on {t['n']} photos (the ONNX export)")
    for w in summary.get("warnings", []) + config.get("warnings", []):
        lines.append(f"- WARNING: {w}")
    lines += ["", "## Limits", "",
              "- Measured only on the splits above, which come from the same source as the training photos; "
              "expect lower accuracy on other cameras, ages, ethnicities and lighting.",
              "- Faces must be detected and aligned by facelab (5-point ArcFace template) exactly as in training.",
              "- Not for decisions about people (hiring, policing, access) without an independent audit of errors "
              "per group.", ""]
    path = run.path / "model_card.md"
    path.write_text("\n".join(lines))
    return path


def _input_text(config) -> str:
    arch = config["arch"]
    if config.get("input_kind") == "sface_embedding":
        return "128-d SFace unit vector of the 112x112 ArcFace-aligned crop (input `embedding`, float32 N x 128)"
    if config.get("input_kind") == "features":
        f = config["features"]
        return (f"{f['feature_dim']}-d `{f['feature_layer']}` of the pretrained `{f['feature_model']}` network, "
                f"frozen (input `features`, float32 N x {f['feature_dim']}; standardised inside the graph). "
                f"That network was trained for **{f['feature_pretrained_for']}**"
                + (": this head is transfer learning from a gender model, not gender learned from the training "
                   "photos alone" if f["feature_pretrained_for"] == "gender" else "")
                + f"; its {f['feature_chip']}x{f['feature_chip']} dlib chip is cut from the aligned crop")
    return (f"{arch['crop_size']}x{arch['crop_size']} ArcFace-aligned crop, RGB 0-255 float32 NCHW (input `crop`); "
            f"resized to {arch['input_size']} and normalised inside the graph")


def _output_text(config) -> str:
    arch = config["arch"]
    if config["task"] == "embedder":
        return f"{arch['embedding_dim']}-d unit vector (`embedding`), compare by dot product"
    return f"probabilities over {arch['num_classes']} classes (`probabilities`): {', '.join(arch['classes'][:12])}" + (
        " ..." if arch["num_classes"] > 12 else "")
