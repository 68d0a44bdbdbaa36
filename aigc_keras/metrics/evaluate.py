"""`aigc-keras evaluate` for image models: samples against the model's real data, with a real-vs-real floor."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import AigcError, arg, reason
from ..folders import TFLITE_FILE
from . import image

SAMPLE_CHUNK = 500


@dataclasses.dataclass
class Source:
    """What `evaluate` measures: a trained model folder, or an export folder whose .tflite runs in
    LiteRT's CompiledModel API. `load()` gives the Keras model, or the `export.runtime.LiteRTModel`."""

    family: str
    data: str  # the training data spec
    config: dict
    folder: Path  # where metrics.json goes
    describe: dict  # how the report names what it measured
    load: Callable[[], Any]
    metadata: dict | None = None  # an export's metadata.json
    fingerprint: str | None = None  # of the training data, as recorded (`data.check_fingerprint`)
    image_shape: list | None = None  # of an image model's images

    @property
    def export(self) -> bool:
        return self.metadata is not None


def open_source(path) -> Source:
    """The model folder or the export folder at `path` (an export carries the export marker)."""
    from ..folders import marked_kind

    path = Path(path)
    return _export_source(path) if marked_kind(path) == "export" else _model_source(path)


def _model_source(path: Path) -> Source:
    from ..model_dir import ModelDir

    md = ModelDir(path)
    record = md.record()
    if not isinstance(record["data"].get("spec"), str):
        raise AigcError(f"{md.config_file} is corrupt: it names no training data")
    return Source(record["family"], record["data"]["spec"], record["config"], md.path, {"model_dir": str(md.path)},
                  lambda: md.load_model(record["family"]), fingerprint=record["data"].get("fingerprint"),
                  image_shape=record["data"].get("image_shape"))


def _export_source(folder: Path) -> Source:
    from ..export import read_metadata

    metadata = read_metadata(folder)
    family, config = metadata["family"], metadata["config"]
    tflite = folder / metadata.get("files", {}).get("tflite", TFLITE_FILE)
    if not tflite.is_file():
        raise AigcError(f"{folder} has no model.tflite: export with {arg('tflite')} to evaluate it")

    def load():
        from ..export.runtime import LiteRTModel

        try:
            return LiteRTModel(tflite, "compiled")
        except Exception as e:
            raise AigcError(f"LiteRT cannot load {tflite}: {reason(e)}") from None

    describe = {"export_dir": str(folder), "tflite": str(tflite), "quantize": metadata.get("quantize"),
                "runtime": "LiteRT CompiledModel"}
    return Source(family, config["data"], config, folder, describe, load, metadata, metadata.get("data_fingerprint"),
                  metadata.get("image_shape"))


def generate(sample, num: int, seed: int) -> np.ndarray:
    """`num` uint8 images from `sample(num, seed)` (a family's `sample` or `litert_sample`), in chunks
    with seeds seed, seed+1, ... ."""
    from ..progress import task

    chunks = []
    with task(f"sampling {num}", num, " images") as bar:
        for i, start in enumerate(range(0, num, SAMPLE_CHUNK)):
            chunks.append(sample(min(SAMPLE_CHUNK, num - start), seed + i))
            bar.reach(min(start + SAMPLE_CHUNK, num))
    return np.concatenate(chunks)


def real_sets(data, num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random sets of real images: the reference, and the floor's second set."""
    images, _ = data.arrays()
    if len(images) < 4:
        raise AigcError(f"{data.spec}: {len(images)} real images are too few to compare with")
    order = np.random.default_rng(seed).permutation(len(images))
    size = min(num, len(images) // 2)
    return images[order[:size]], images[order[size:2 * size]]


def image_metrics(features_fake, features_real, subsets: int = 10, subset_size: int = 1000,
                  seed: int = 0) -> dict:
    """FID and KID (mean, std) of one feature set against the reference."""
    kid_mean, kid_std = image.kid(features_fake, features_real, subsets, subset_size, seed)
    return {"fid": image.fid(features_fake, features_real), "kid": kid_mean, "kid_std": kid_std}


def evaluate_images(fake: np.ndarray, real: np.ndarray, real_floor: np.ndarray, net, subsets: int = 10,
                    subset_size: int = 1000, precision_recall: bool = False, seed: int = 0) -> dict:
    """Every image metric of `fake` against `real`, and the same for `real_floor` (the floor)."""
    from ..progress import task

    with task("features", len(fake) + len(real) + len(real_floor), " images"):
        f_fake, p_fake = net(fake)
        f_real, p_real = net(real)
        f_floor, _ = net(real_floor)
    result = {
        "features": net.name,
        "num_samples": len(fake),
        "num_real": len(real),
        "samples": image_metrics(f_fake, f_real, subsets, subset_size, seed),
        "real_vs_real": image_metrics(f_floor, f_real, subsets, subset_size, seed),
    }
    if precision_recall:
        for key, features in (("samples", f_fake), ("real_vs_real", f_floor)):
            result[key]["precision"], result[key]["recall"] = image.precision_recall(f_real, features)
    if p_fake is not None:
        result["mode_coverage"] = {"samples": image.mode_coverage(p_fake), "real": image.mode_coverage(p_real)}
    return result


def format_report(report: dict) -> str:
    """The image metrics as a small table."""
    options = ", ".join(f"{k} {v}" for k, v in report["options"].items() if v is not None)
    has_pr = "precision" in report["samples"]
    lines = [
        f"{report['family']} {report.get('model_dir') or report['tflite'] + ' in LiteRT'} ({options}); "
        f"data {report['data']}",
        f"features: {report['features']}; {report['num_samples']} samples against {report['num_real']} real images",
        "",
        f"{'':14}{'FID':>10}{'KID':>22}" + (f"{'precision':>11}{'recall':>8}" if has_pr else ""),
    ]
    for key, name in (("samples", "samples"), ("real_vs_real", "real vs real")):
        row = report[key]
        kid = f"{row['kid']:.4g} ± {row['kid_std']:.2g}"
        line = f"{name:14}{row['fid']:>10.3f}{kid:>22}"
        if has_pr:
            line += f"{row['precision']:>11.3f}{row['recall']:>8.3f}"
        lines.append(line)
    copying = report.get("memorisation")
    if copying:
        lines += ["", f"memorisation: nearest training image at {copying['samples_median']:.4f} for the samples, "
                      f"{copying['real_median']:.4f} for real training images (each left out): ratio "
                      f"{copying['ratio']:.3f} (toward 0: copies); {copying['copies']:.1%} of the samples are "
                      "training images"]
    coverage = report.get("mode_coverage")
    if coverage:
        lines.append("")
        for key in ("samples", "real"):
            c = coverage[key]
            lines.append(f"mode coverage ({key}): entropy {c['entropy']:.3f}, smallest class "
                         f"{c['min_class_share']:.1%}, mean confidence {c['mean_confidence']:.3f}")
        shares = coverage["samples"]["class_share"]
        lines.append("class shares (samples): " + " ".join(f"{i}:{s:.1%}" for i, s in enumerate(shares)))
    lines.append(f"({report['seconds']:.0f} s)")
    return "\n".join(lines)
