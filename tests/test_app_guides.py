"""The app guides (docs/android.md, docs/ios.md) quote only names that the exports really have."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import make_images

from aigc_keras.cli import main
from aigc_keras.export import export_trained

pytestmark = pytest.mark.slow  # end-to-end: trains and exports models

ROOT = Path(__file__).resolve().parents[1]
GUIDES = [ROOT / "docs" / "android.md", ROOT / "docs" / "ios.md"]
SECTIONS = {"GAN": "gan", "Diffusion": "diffusion", "VAE": "vae", "Text": "text", "What every family shares": "gan",
            "The classic Interpreter API": "gan"}
# Quoted strings that are values, not names: a prompt, a class name, dtype and objective values,
# asset paths, and the names of the Gradle/CocoaPods artifacts.
LITERALS = {"ROMEO:", "7", "int32", "flow", "gan/metadata.json", "gan/model.tflite", "metadata.json", "model.tflite",
            "gan", "com.google.ai.edge.litert:litert:2.3.0", "com.google.ai.edge.litert:litert-api:1.4.0",
            "TensorFlowLiteSwift"}
CORPUS = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 20


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    """Every name an app can use, per family: signatures, their inputs and outputs, metadata keys
    (at any depth), state tensors."""
    root = tmp_path_factory.mktemp("guides")
    images, labels = make_images()
    np.savez(root / "data.npz", images=images, labels=labels)
    (root / "corpus.txt").write_text(CORPUS)
    common = ["--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "2", "--strategy", "default"]
    runs = {
        "gan": ["gan", "--data", f"npz:{root / 'data.npz'}", "--conditional", "--latent-dim", "8",
                "--base-filters", "8", *common],
        "diffusion": ["diffusion", "--data", f"npz:{root / 'data.npz'}", "--conditional", "--timesteps", "40",
                      "--base-filters", "8", "--levels", "2", *common],
        "vae": ["vae", "--data", f"npz:{root / 'data.npz'}", "--latent-dim", "3", "--base-filters", "4", *common],
        "text": ["lstm", "--data", f"text:{root / 'corpus.txt'}", "--arch", "transformer", "--units", "16",
                 "--layers", "1", "--heads", "2", "--seq-len", "16", "--epochs", "1", "--batch-size", "8",
                 "--strategy", "default"],
    }
    found = {}
    for family, args in runs.items():
        with pytest.raises(SystemExit) as done:
            main(["train", *args, "--model-dir", str(root / family)])
        assert done.value.code == 0
        options = {"steps": 3} if family == "diffusion" else {"length": 8} if family == "text" else {}
        meta = export_trained(args[0], root / family, root / f"export-{family}", tflite=True, **options)
        assert json.loads((root / f"export-{family}" / "metadata.json").read_text()) == meta
        found[family] = keys(meta) | {s["name"] for s in meta.get("state", [])}
    return found


def keys(tree) -> set:
    """Every key of a JSON tree: metadata fields, signature names, their input and output names."""
    if isinstance(tree, dict):
        return set(tree) | {k for value in tree.values() for k in keys(value)}
    if isinstance(tree, list):
        return {k for value in tree for k in keys(value)}
    return set()


def quoted_names(guide: Path):
    """(section, quoted string) for every "..." in the code blocks of the guide's family sections."""
    section = None
    for part in re.split(r"^(## .*)$", guide.read_text(), flags=re.M):
        if part.startswith("## "):
            section = part[3:].split(" (")[0].strip()
            continue
        for block in re.findall(r"```(?:kotlin|swift)\n(.*?)```", part, flags=re.S):
            for name in re.findall(r'"([^"\\]+)"', block):
                yield section, name


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_quoted_name_is_one_the_exports_have(names, guide):
    seen = list(quoted_names(guide))
    assert {s for s, _ in seen} >= {"GAN", "Diffusion", "VAE", "Text"}, "a family section is missing"
    unknown = [(section, name) for section, name in seen
               if name not in LITERALS and name not in names[SECTIONS[section]]]
    assert not unknown, unknown
    for family, must in (("GAN", {"generate", "z", "images", "label"}),
                         ("Diffusion", {"generate", "denoise_step", "noise", "x_prev", "timesteps", "edit", "image",
                                        "mask", "strength"}),
                         ("VAE", {"generate", "encode", "decode", "z", "z_mean", "images_float", "latent_dim"}),
                         ("Text", {"generate", "prompt_ids", "uniform", "ids", "vocabulary"})):
        assert must <= {n for s, n in seen if s == family}, (guide.name, family)


def test_the_guides_say_they_were_not_run_on_a_device():
    for guide in GUIDES:
        assert "Not run on a device here" in guide.read_text()
