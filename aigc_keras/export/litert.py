"""SavedModel + LiteRT export with a parity check, shared by every family.

A family describes its serving functions as `Endpoint`s. `export_bundle` writes them as one
SavedModel (one signature each), converts that to a `.tflite` with TFLite builtin ops only,
runs the `.tflite` through both LiteRT APIs (`runtime.py`) on the endpoints' example inputs and
compares them with each other and with TensorFlow, then writes `metadata.json`. Everything is
staged in a temporary folder and swapped in at the end, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .. import fileio
from ..console import quiet_stderr
from ..errors import AigcError, arg, reason
from ..folders import EXPORT, METADATA_FILE, SAVED_MODEL, TFLITE_FILE, check_folder, staged_folder
from ..version import versions
from .runtime import APIS, LiteRTModel, boundary_problems

TOLERANCE = 1e-4  # max |LiteRT - TF| of a float32 file's float outputs
RUNTIME_TOLERANCE = 1e-6  # max |CompiledModel - Interpreter| on the same file
UINT8_SHARE = 1e-3  # share of uint8 pixels that may differ (by one level) between LiteRT and TF


@dataclasses.dataclass
class Endpoint:
    """A serving function: a `tf.function` with a fixed-size input signature, returning a dict of tensors."""

    name: str
    function: tf.types.experimental.PolymorphicFunction
    examples: list[dict[str, np.ndarray]]  # inputs for the parity checks, keyed like the signature
    description: str

    def spec(self) -> dict:
        """Names, dtypes and shapes of inputs and outputs, for metadata.json."""
        concrete = self.function.get_concrete_function()
        inputs = {s.name: _tensor_spec(s) for s in self.function.input_signature}
        outputs = {k: _tensor_spec(t) for k, t in concrete.structured_outputs.items()}
        return {"description": self.description, "inputs": inputs, "outputs": outputs}

    def __call__(self, example: dict) -> dict[str, np.ndarray]:
        arguments = [example[s.name] for s in self.function.input_signature]
        return {k: v.numpy() for k, v in self.function(*arguments).items()}


def _tensor_spec(t) -> dict:
    return {"dtype": t.dtype.name, "shape": [-1 if d is None else int(d) for d in t.shape]}


def export_bundle(model: keras.Model, endpoints: list[Endpoint], out_dir: str | Path, tflite: bool,
                  quantize: str, metadata: dict, tolerance: float = TOLERANCE, force: bool = False,
                  calibration=None, quality=None) -> dict:
    """Write SavedModel (+ model.tflite) + metadata.json into `out_dir`; return the metadata.

    The `.tflite` must run every signature, on its examples, in both LiteRT APIs (the classic
    Interpreter and the CompiledModel API that Android and LiteRT.js use) with the same outputs
    (`RUNTIME_TOLERANCE` for floats, integers identical), with only fixed-size float32/int32/uint8
    tensors at its boundaries, and finite outputs. A float32 file must also match TensorFlow: float
    outputs within `tolerance`, integer outputs identical, uint8 images within one level on at most
    `UINT8_SHARE` of the pixels (a difference below `tolerance` can cross a rounding boundary).
    Any failure writes nothing. `calibration()` yields (signature, inputs) for `quantize="int8"`.
    A quantized file is scored by `quality(LiteRTModel, metadata)` (a family's `export_quality`), and
    a warning is recorded when its quality collapsed. `out_dir` is written as `folders` says
    (`force`: beside the user's files).
    """
    check_folder(out_dir, EXPORT, force)
    with staged_folder(out_dir, EXPORT) as stage:
        saved = stage / SAVED_MODEL
        try:
            reference = _write_saved_model(model, endpoints, saved)
        except tf.errors.OpError as e:  # TensorFlow's own file writes (a full disk, a size limit)
            raise _write_failure(e, out_dir) from None
        meta = {
            **metadata,
            "signatures": {ep.name: ep.spec() for ep in endpoints},
            "files": {"saved_model": SAVED_MODEL},
            "versions": versions(),
        }
        if tflite:
            blob = convert_to_litert(saved, [ep.name for ep in endpoints], quantize, calibration)
            (stage / TFLITE_FILE).write_bytes(blob)
            interpreter, diffs, runtime_diffs = _litert_parity(blob, endpoints, reference, quantize, tolerance)
            meta["files"].update({"tflite": TFLITE_FILE, "tflite_bytes": len(blob)})
            if quantize != "none" and quality is not None:
                meta["quality"] = _quality(quality, interpreter, meta, quantize)
            meta["quantize"] = quantize
            meta["runtimes"] = {"checked": list(APIS), "compiled_vs_interpreter_max_abs_diff": runtime_diffs}
            meta["parity"] = {
                "tolerance": tolerance if quantize == "none" else None,
                "max_abs_diff": diffs,
                "checked_on": {ep.name: len(ep.examples) for ep in endpoints},
            }
        fileio.write_json(stage / METADATA_FILE, meta)
    return meta


def _write_saved_model(model, endpoints, path: Path) -> dict:
    """Save the endpoints as signatures, reload them and check them against the live model; return
    the live outputs {endpoint: [outputs per example]}.

    Reloading is what catches the trap where variables are not captured (outputs NaN).
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    for ep in endpoints:
        archive.add_endpoint(ep.name, ep.function)
    archive.write_out(str(path), verbose=False)
    loaded = tf.saved_model.load(str(path))
    reference = {}
    for ep in endpoints:
        reference[ep.name] = []
        for example in ep.examples:
            live = ep(example)
            for key, value in live.items():
                if not np.all(np.isfinite(value)):
                    raise AigcError(f"the model's {ep.name}/{key} is not finite (a diverged model?); "
                                    "nothing was exported")
            served = {k: v.numpy() for k, v in loaded.signatures[ep.name](**example).items()}
            for key, value in live.items():
                if np.max(np.abs(value.astype(np.float64) - served[key]), initial=0.0) > 1e-5:
                    raise AigcError(f"the SavedModel's {ep.name}/{key} does not reproduce the model; "
                                    "nothing was exported")
            reference[ep.name].append(live)
    return reference


WRITE_FAILURES = ("No space left on device", "File too large", "Disk quota exceeded", "Read-only file system",
                  "Permission denied")


def _write_failure(error, out_dir) -> AigcError:
    """One line for a TensorFlow error while writing the export: the export folder and why, never the
    staging path or the op that failed."""
    text = str(getattr(error, "message", error))
    why = next((reason for reason in WRITE_FAILURES if reason in text), None)
    if why is None:
        return AigcError(f"the SavedModel could not be written to {out_dir}; nothing was exported")
    return AigcError(f"cannot write {out_dir}: {why}; nothing was exported")


def convert_to_litert(saved_model: Path, signature_keys: list[str], quantize: str = "none",
                      calibration=None) -> bytes:
    """Convert signatures of a SavedModel to a `.tflite` using TFLite builtin ops only.

    int8: weights and activations in int8 (calibrated on `calibration()`'s (signature, inputs)),
    with float32 inputs and outputs, so apps feed it exactly what they feed the float file.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=signature_keys)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        if calibration is None:
            raise AigcError(f"{arg('quantize')} int8 needs calibration data from the model's training data")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        with quiet_stderr():
            return converter.convert()
    except Exception as e:
        message = str(e)
        ops = sorted(set(re.findall(r"'?tf\.(\w+)'?", message)))
        if ops:
            raise AigcError(
                f"LiteRT conversion needs more than the TFLite builtin ops (ops {', '.join(ops)}); Flex/SELECT_TF_OPS "
                "is not allowed, so nothing was exported"
            ) from None
        raise AigcError(f"LiteRT conversion failed ({reason(e)[:200]}); nothing was exported") from None


def _quality(quality, interpreter, meta: dict, quantize: str) -> dict:
    """What quantization cost, measured; a warning when the quality collapsed (or a note why it was
    not measured: the training data or a feature network may be missing where the export runs)."""
    try:
        result = quality(interpreter, meta)
    except AigcError as e:
        return {"measured": False, "why": str(e), "warnings": []}
    result = {**result, "keras": float(result["keras"]), "litert": float(result["litert"]),
              "collapsed": bool(result["collapsed"])}
    warnings = []
    if result["collapsed"]:
        warnings.append(f"{arg('quantize')} {quantize} lost quality: {result['metric']} {result['litert']:.4g} in "
                        f"LiteRT against {result['keras']:.4g} for the Keras model; prefer a milder {arg('quantize')}")
    return {"measured": True, **result, "warnings": warnings}


def _litert_parity(blob: bytes, endpoints, reference, quantize: str, tolerance: float):
    """Run every example in both LiteRT APIs; raise `AigcError` at the first failed gate (see
    `export_bundle`). Returns (the Interpreter's model, {"endpoint/output": max |LiteRT - TF|},
    {same: max |compiled - interpreter|})."""
    interpreter = LiteRTModel(blob, "interpreter")
    problems = boundary_problems(interpreter)
    if problems:
        raise AigcError(f"the LiteRT file has tensors an app runtime cannot take ({'; '.join(problems[:3])}); "
                        "nothing was exported")
    try:
        compiled = LiteRTModel(blob, "compiled")
    except Exception as e:
        raise AigcError(f"LiteRT's CompiledModel API cannot load the file ({reason(e)}); nothing was exported") \
            from None
    diffs, runtime_diffs = {}, {}
    for ep in endpoints:
        for example, want in zip(ep.examples, reference[ep.name]):
            got = interpreter.run(ep.name, **example)
            try:
                again = compiled.run(ep.name, **example)
            except Exception as e:
                raise AigcError(f"LiteRT's CompiledModel API cannot run {ep.name} ({reason(e)}); nothing was "
                                "exported") from None
            for key, value in got.items():
                name = f"{ep.name}/{key}"
                if not np.all(np.isfinite(value)):
                    raise AigcError(f"LiteRT's {name} is not finite; nothing was exported")
                between = _max_diff(value, again[key])
                runtime_diffs[name] = max(runtime_diffs.get(name, 0.0), between)
                if between > (RUNTIME_TOLERANCE if np.issubdtype(value.dtype, np.floating) else 0):
                    raise AigcError(f"LiteRT's CompiledModel API and its Interpreter differ on {name} by "
                                    f"{between:.3g}; nothing was exported")
                diffs[name] = max(diffs.get(name, 0.0), _max_diff(value, want[key]))
                if quantize == "none":
                    _check_against_tensorflow(name, value, want[key], tolerance)
    return interpreter, diffs, runtime_diffs


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def _check_against_tensorflow(name: str, got: np.ndarray, want: np.ndarray, tolerance: float) -> None:
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if np.issubdtype(want.dtype, np.floating):
        bad = diff.max(initial=0.0) > tolerance
    elif want.dtype == np.uint8:  # image pixels, rounded from floats
        bad = diff.max(initial=0.0) > 1 or (diff > 0).mean() > UINT8_SHARE
    else:
        bad = diff.max(initial=0.0) > 0
    if bad:
        raise AigcError(f"LiteRT's {name} differs from TensorFlow by {diff.max():.3g} (tolerance "
                        f"{tolerance:g} for floats; integers must be equal); nothing was exported")


def uint8_images(images):
    """[-1, 1] floats -> uint8 pixels in the graph, with the rounding rule of `imaging.to_uint8`."""
    return tf.cast(tf.clip_by_value(tf.floor((images + 1.0) * 127.5 + 0.5), 0.0, 255.0), tf.uint8)
