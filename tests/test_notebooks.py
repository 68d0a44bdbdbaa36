"""The notebooks run top to bottom in a real Jupyter kernel, each in an empty folder, and show what they
promise: pictures inline, text, exports that run. (With CI=true a missing Jupyter kernel fails.)"""

import base64
import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# notebook -> (inline pictures at least, texts that its outputs must contain)
PROMISES = {
    "gan": (2, ["GAN", "parameters", "pixels that differ from the Keras model by more than one level: 0"]),
    "diffusion": (3, ["flow objective", "24 network calls for 12 Heun steps", "largest difference"]),
    "text": (0, ["ROMEO:", "bits per character on held-out text"]),
    "vae": (2, ["reloaded from vae.keras", "generate, decode, encode"]),
    "tutorial": (3, ["bits per character", "a minute of diffusion training"]),
}

pytestmark = pytest.mark.slow


def executed(name: str, folder: Path):
    if os.environ.get("CI") == "true":
        import nbclient
        import nbformat
    else:
        nbclient = pytest.importorskip("nbclient")
        nbformat = pytest.importorskip("nbformat")
        pytest.importorskip("ipykernel")
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbclient.NotebookClient(book, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}}).execute()
    return book


def test_every_notebook_is_tested():
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(PROMISES)


@pytest.mark.parametrize("name", sorted(PROMISES))
def test_the_notebook_runs_top_to_bottom_and_shows_what_it_promises(name, tmp_path):
    book = executed(name, tmp_path)
    outputs = [out for cell in book.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.output_type == "error"]
    pictures = [base64.b64decode(out.data["image/png"]) for out in outputs if "image/png" in out.get("data", {})]
    assert len(pictures) >= PROMISES[name][0] and all(p.startswith(b"\x89PNG") for p in pictures)
    text = "".join(out.get("text", "") + out.get("data", {}).get("text/plain", "") for out in outputs)
    for promise in PROMISES[name][1]:
        assert promise in text, (promise, text[-2000:])
