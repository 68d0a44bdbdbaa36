"""Export of trained models for serving and on-device generation (SavedModel + LiteRT)."""

from __future__ import annotations

from pathlib import Path

from ..errors import AigcError, arg

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
RUNTIME_COPIES = 8  # activations held at once per exported example: TF, the reloaded SavedModel, two LiteRT APIs,
# each with its own arena, and classifier-free guidance's doubled batch


def metadata_problem(metadata, runnable: bool = True) -> str | None:
    """Why `metadata` (a parsed metadata.json) is not an export's that an app can run (`runnable`: with
    its model.tflite), or None."""
    if not isinstance(metadata, dict):
        return "its metadata.json is not an export's metadata"
    from .. import families

    family = metadata.get("family")
    if not isinstance(family, str) or family not in (*families.NAMES, *families.ALIASES):
        return "its metadata.json names no model family"
    if not isinstance(metadata.get("files"), dict) or (runnable and "tflite" not in metadata["files"]):
        return f"it has no model.tflite: export it with {arg('tflite')}"
    signatures = metadata.get("signatures")
    tensors_ok = isinstance(signatures, dict) and signatures and all(
        isinstance(spec, dict) and all(isinstance(spec.get(side), dict) and all(
            isinstance(t, dict) and isinstance(t.get("dtype"), str) and isinstance(t.get("shape"), list)
            and all(isinstance(d, int) for d in t["shape"]) for t in spec[side].values())
            for side in ("inputs", "outputs"))
        for spec in signatures.values())
    return None if tensors_ok else "its metadata.json does not describe its signatures"


def read_metadata(folder: Path) -> dict:
    """The metadata.json of export folder `folder`, checked (it need not hold a model.tflite); an
    `AigcError` naming it when it is missing or is not what `export` writes."""
    from .. import fileio
    from ..folders import METADATA_FILE

    try:
        metadata = fileio.read_json(folder / METADATA_FILE)
        if metadata_problem(metadata, runnable=False) or not isinstance(metadata["config"].get("data"), str):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise AigcError(f"{folder}/metadata.json is missing or corrupt: export the model again") from None
    return metadata


def check_options(tflite: bool, quantize: str) -> None:
    if quantize not in QUANTIZATIONS:
        raise AigcError(f"{arg('quantize')} must be one of {', '.join(QUANTIZATIONS)}")
    if quantize != "none" and not tflite:
        raise AigcError(f"{arg('quantize')} applies to the LiteRT file: add {arg('tflite')}")


def _fine_tune(md, record: dict) -> dict:
    """What metadata.json says of a fine-tuned model: its base, and its LoRA adapter (merged into the export)."""
    if "base" not in record:
        return {}
    config = record["config"]
    adapter = {"file": md.adapter.name, "bytes": md.adapter.stat().st_size, "rank": config["lora_rank"],
               "alpha": config["lora_alpha"], "merged": True} \
        if config.get("lora_rank") and md.adapter.is_file() else None
    return {"base": record["base"], "adapter": adapter}


def export_trained(family_name: str, model_dir: str | Path, out_dir: str | Path, tflite: bool = True,
                   quantize: str = "none", force: bool = False, **options) -> dict:
    """Export the model in `model_dir` to `out_dir`; return the written metadata.

    `options` are the family's own export options (the diffusion sampler and its steps).
    """
    from ..families import canonical, get_family
    from ..folders import EXPORT, check_folder
    from ..limits import check_fits
    from ..model_dir import ModelDir
    from ..networks import activation_bytes
    from .litert import export_bundle

    check_options(tflite, quantize)
    check_folder(out_dir, EXPORT, force)
    family_name = canonical(family_name)
    family = get_family(family_name)
    if quantize == "int8" and family.int8_refusal:
        raise AigcError(f"{arg('quantize')} int8 is not available for {family_name} models: {family.int8_refusal}")
    md = ModelDir(model_dir)
    model = md.load_model(family_name)
    if "batch" in options:
        check_fits(arg("batch"), options["batch"], RUNTIME_COPIES * activation_bytes(model), "of activations")
    record = md.record()
    tracked, endpoints, metadata = family.export_spec(model, record, **options)
    metadata = {"family": family_name, "source": str(md.path), "data_fingerprint": record["data"].get("fingerprint"),
                **metadata, **_fine_tune(md, record)}
    calibration = None
    if quantize == "int8":
        pairs = family.calibration(model, md.config(family_name), endpoints)
        calibration = lambda: iter(pairs)  # noqa: E731  (the converter calls it for a fresh iterator)
    return export_bundle(tracked, endpoints, out_dir, tflite, quantize, metadata, family.export_tolerance, force,
                         calibration, lambda litert, meta: family.export_quality(model, record, litert, meta))
