"""Running an exported `.tflite` through LiteRT's two Python APIs, by signature and tensor name.

`interpreter` is the classic `ai_edge_litert.interpreter.Interpreter`; `compiled` is the LiteRT 2.x
`CompiledModel` API, the runtime of Android's `CompiledModel` and of LiteRT.js in a browser. The
second needs every tensor's size known before it runs, so the exports have static shapes, and the
export checks that both APIs give the same outputs. No TensorFlow here: this is what an app does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..console import quiet_stderr
from ..errors import AigcError

APIS = ("interpreter", "compiled")
BOUNDARY_DTYPES = ("float32", "int32", "uint8")  # all LiteRT.js accepts at a signature's inputs and outputs


class LiteRTModel:
    """One `.tflite` file (path or bytes) under one API; `run(signature, **inputs)` -> {name: array}."""

    def __init__(self, model: str | Path | bytes, api: str = "interpreter"):
        if api not in APIS:
            raise ValueError(f"unknown LiteRT API {api!r}: use one of {', '.join(APIS)}")
        self.api = api
        blob = model if isinstance(model, bytes) else Path(model).read_bytes()
        with quiet_stderr():  # LiteRT logs its accelerator registry and XNNPACK on stderr
            if api == "interpreter":
                from ai_edge_litert.interpreter import Interpreter

                self._interpreter = Interpreter(model_content=blob)
                names = self._interpreter.get_signature_list()
            else:
                from ai_edge_litert.compiled_model import CompiledModel

                self._compiled = CompiledModel.from_buffer(blob)
                names = self._compiled.get_signature_list()
        self.signatures = {name: self._details(name) for name in names}
        self._runners = {}

    def __del__(self):
        """Release the runtime quietly (LiteRT logs every accelerator it destroys on stderr)."""
        try:
            with quiet_stderr():
                self._runners.clear()
                self.__dict__.pop("_compiled", None)
                self.__dict__.pop("_interpreter", None)
        except Exception:  # interpreter shutdown: nothing left to keep quiet
            pass

    def _details(self, signature: str) -> dict:
        """{"inputs"|"outputs": {name: (shape tuple, dtype name)}}."""
        if self.api == "interpreter":
            runner = self._interpreter.get_signature_runner(signature)
            return {side: {name: (tuple(int(d) for d in d_["shape_signature"]), np.dtype(d_["dtype"]).name)
                           for name, d_ in details.items()}
                    for side, details in (("inputs", runner.get_input_details()),
                                          ("outputs", runner.get_output_details()))}
        return {side: {name: (tuple(d_["shape"]), d_["dtype"]) for name, d_ in details.items()}
                for side, details in (("inputs", self._compiled.get_input_tensor_details(signature)),
                                      ("outputs", self._compiled.get_output_tensor_details(signature)))}

    def run(self, signature: str, **inputs) -> dict[str, np.ndarray]:
        spec = self.signatures[signature]
        arrays = {}
        for name, (shape, dtype) in spec["inputs"].items():
            if name not in inputs:
                raise AigcError(f"signature {signature!r} needs input {name!r}")
            value = np.asarray(inputs[name], dtype)
            if value.shape != shape:
                raise AigcError(f"{signature}/{name} takes shape {list(shape)}, got {list(value.shape)}")
            arrays[name] = value
        with quiet_stderr():
            if self.api == "interpreter":
                if signature not in self._runners:
                    self._runners[signature] = self._interpreter.get_signature_runner(signature)
                return {k: np.array(v) for k, v in self._runners[signature](**arrays).items()}
            if signature not in self._runners:
                cm = self._compiled
                self._runners[signature] = (
                    {n: cm.create_input_buffer_by_name(signature, n) for n in spec["inputs"]},
                    {n: cm.create_output_buffer_by_name(signature, n) for n in spec["outputs"]},
                )
            ins, outs = self._runners[signature]
            for name, value in arrays.items():
                ins[name].write(np.ascontiguousarray(value).reshape(-1))
            self._compiled.run_by_name(signature, ins, outs)
            return {name: outs[name].read(int(np.prod(shape)), np.dtype(dtype)).reshape(shape)
                    for name, (shape, dtype) in spec["outputs"].items()}


def boundary_problems(model: LiteRTModel) -> list[str]:
    """Inputs and outputs that an app runtime cannot take: a dtype other than float32/int32/uint8, or
    a dimension unknown before the call (-1)."""
    problems = []
    for signature, spec in model.signatures.items():
        for side in ("inputs", "outputs"):
            for name, (shape, dtype) in spec[side].items():
                if dtype not in BOUNDARY_DTYPES:
                    problems.append(f"{signature}/{name} is {dtype}")
                if any(d < 0 for d in shape):
                    problems.append(f"{signature}/{name} has shape {list(shape)}")
    return problems
