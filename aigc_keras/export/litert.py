"""SavedModel + LiteRT export with a parity check, shared by every family.

A family describes its serving functions as `Endpoint`s. `export_bundle` writes them as one
SavedModel (one signature each), converts that to a `.tflite` with TFLite builtin ops only,
runs the `.tflite` through `ai_edge_litert` on the endpoints' example inputs and compares it
with TensorFlow, then writes `metadata.json`. Everything is staged in a temporary folder and
swapped in at the end, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .. import __version__, fileio
from ..console import quiet_stderr
from ..errors import AigcError
from ..folders import EXPORT, check_folder

QUANTIZATIONS = ("none", "float16", "dynamic")
TOLERANCE = 1e-4


@dataclasses.dataclass
class Endpoint:
    """A serving function: a `tf.function` with an input signature, returning a dict of tensors."""

    name: str
    function: tf.types.experimental.PolymorphicFunction
    example: dict[str, np.ndarray]  # inputs for the parity check, keyed like the signature
    description: str

    def spec(self) -> dict:
        """Names, dtypes and shapes (-1 for any size) of inputs and outputs, for metadata.json."""
        concrete = self.function.get_concrete_function()
        inputs = {s.name: _tensor_spec(s) for s in self.function.input_signature}
        outputs = {k: _tensor_spec(t) for k, t in concrete.structured_outputs.items()}
        return {"description": self.description, "inputs": inputs, "outputs": outputs}


def _tensor_spec(t) -> dict:
    return {"dtype": t.dtype.name, "shape": [-1 if d is None else int(d) for d in t.shape]}


def export_bundle(model: keras.Model, endpoints: list[Endpoint], out_dir: str | Path, tflite: bool,
                  quantize: str, metadata: dict, tolerance: float = TOLERANCE, force: bool = False) -> dict:
    """Write SavedModel (+ model.tflite) + metadata.json into `out_dir`; return the metadata.

    A float32 LiteRT file whose float outputs differ from TensorFlow by more than `tolerance`
    fails the export. `out_dir` is written as `folders` says (`force`: beside the user's files).
    """
    check_options(tflite, quantize)
    check_folder(out_dir, EXPORT, force)
    with fileio.staged_folder(out_dir, EXPORT) as stage:
        saved = stage / "saved_model"
        reference = _write_saved_model(model, endpoints, saved)
        meta = {
            **metadata,
            "signatures": {ep.name: ep.spec() for ep in endpoints},
            "files": {"saved_model": "saved_model"},
            "versions": {"aigc_keras": __version__, "tensorflow": tf.__version__, "keras": keras.__version__},
        }
        if tflite:
            blob = convert_to_litert(saved, [ep.name for ep in endpoints], quantize)
            (stage / "model.tflite").write_bytes(blob)
            diffs = _litert_parity(blob, endpoints, reference)
            worst = max((d for d, is_float in diffs.values() if is_float), default=0.0)
            if quantize == "none" and worst > tolerance:
                raise AigcError(
                    f"LiteRT output differs from TensorFlow by {worst:.3g} > {tolerance:g}; "
                    "nothing was exported"
                )
            meta["files"].update({"tflite": "model.tflite", "tflite_bytes": len(blob)})
            meta["quantize"] = quantize
            meta["parity"] = {
                "tolerance": tolerance if quantize == "none" else None,
                "max_abs_diff": {key: d for key, (d, _) in diffs.items()},
                "checked_on": {ep.name: {k: list(v.shape) for k, v in ep.example.items()} for ep in endpoints},
            }
        fileio.write_json(stage / "metadata.json", meta)
    return meta


def check_options(tflite: bool, quantize: str) -> None:
    if quantize not in QUANTIZATIONS:
        raise AigcError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}")
    if quantize != "none" and not tflite:
        raise AigcError("--quantize applies to the LiteRT file: add --tflite")


def _write_saved_model(model, endpoints, path: Path) -> dict:
    """Save the endpoints as signatures, reload them and check them against the live model.

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
        live = {k: v.numpy() for k, v in ep.function(**ep.example).items()}
        for key, value in live.items():
            if not np.all(np.isfinite(value)):
                raise AigcError(f"the model's {ep.name}/{key} is not finite (a diverged model?); nothing was exported")
        served = {k: v.numpy() for k, v in loaded.signatures[ep.name](**ep.example).items()}
        for key, value in live.items():
            if not np.array_equal(np.isfinite(value), np.isfinite(served[key])) or \
                    np.max(np.abs(value.astype(np.float64) - served[key])) > 1e-5:
                raise AigcError(f"the SavedModel's {ep.name}/{key} does not reproduce the model; nothing was exported")
        reference[ep.name] = live
    return reference


def convert_to_litert(saved_model: Path, signature_keys: list[str], quantize: str = "none") -> bytes:
    """Convert signatures of a SavedModel to a `.tflite` using TFLite builtin ops only."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=signature_keys)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        return converter.convert()
    except Exception as e:
        message = str(e)
        ops = sorted(set(re.findall(r"'?tf\.(\w+)'?", message)))
        detail = f"ops {', '.join(ops)}" if ops else message.strip().splitlines()[0][:200]
        raise AigcError(
            f"LiteRT conversion needs more than the TFLite builtin ops ({detail}); Flex/SELECT_TF_OPS "
            "is not allowed, so nothing was exported"
        ) from None


def _litert_parity(blob: bytes, endpoints, reference) -> dict:
    """{"endpoint/output": (max |LiteRT - TF|, output is float)} on the example inputs."""
    from ai_edge_litert.interpreter import Interpreter

    diffs = {}
    for ep in endpoints:
        with quiet_stderr():  # "Created TensorFlow Lite XNNPACK delegate" on every run
            interpreter = Interpreter(model_content=blob)
            got = interpreter.get_signature_runner(ep.name)(**ep.example)
        for key, want in reference[ep.name].items():
            is_float = np.issubdtype(want.dtype, np.floating)
            diff = np.abs(got[key].astype(np.float64) - want.astype(np.float64))
            worst = float(np.max(diff)) if np.all(np.isfinite(diff)) else float("inf")
            diffs[f"{ep.name}/{key}"] = (worst, is_float)
    return diffs


def uint8_images(images):
    """[-1, 1] floats -> uint8 pixels in the graph, with the rounding rule of `imaging.to_uint8`."""
    return tf.cast(tf.clip_by_value(tf.floor((images + 1.0) * 127.5 + 0.5), 0.0, 255.0), tf.uint8)
