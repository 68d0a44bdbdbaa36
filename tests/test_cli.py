import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_cli as run

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "2", "--latent-dim", "8",
        "--base-filters", "8", "--strategy", "default"]


@pytest.mark.parametrize(
    "command",
    [[], ["train"], ["train", "gan"], ["sample", "gan"], ["export", "gan"], ["info"],
     ["train", "diffusion"], ["sample", "diffusion"], ["export", "diffusion"],
     ["train", "lstm"], ["sample", "lstm"], ["export", "lstm"], ["train", "classifier"], ["evaluate"]],
)
def test_every_command_has_help_with_an_example(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0 and "Examples:" in out and "aigc-keras " in out.split("Examples:")[1]


@pytest.mark.slow
def test_train_sample_export_info_end_to_end(capsys, images_npz, tmp_path):
    model = str(tmp_path / "gan")
    code, out, _ = run(capsys, "train", "gan", "--data", images_npz, "--model-dir", model,
                       "--conditional", *TINY)
    assert code == 0, out
    assert f"tensorboard --logdir {model}/logs" in out and "saved" in out
    assert out.splitlines()[-1] == f"next: aigc-keras sample gan --model {model}"

    code, out, err = run(capsys, "sample", "gan", "--model", model, "--num", "6", "--label", "1",
                         "--seed", "3", "--out", str(tmp_path / "ones.npz"))
    assert code == 0 and "wrote 6 images" in out
    assert err.startswith("generating: 100% (6/6 images, ") and len(err.splitlines()) == 1, err  # piped: a line
    arrays = np.load(tmp_path / "ones.npz")
    assert arrays["images"].shape == (6, 16, 16, 1) and arrays["images"].dtype == np.uint8
    assert arrays["labels"].tolist() == [1] * 6
    run(capsys, "sample", "gan", "--model", model, "--num", "6", "--label", "1", "--seed", "3",
        "--out", str(tmp_path / "again.npz"))
    np.testing.assert_array_equal(np.load(tmp_path / "again.npz")["images"], arrays["images"])

    code, _, _ = run(capsys, "sample", "gan", "--model", model, "--num", "20", "--out", str(tmp_path / "g.png"))
    grid = tf.io.decode_png((tmp_path / "g.png").read_bytes()).numpy()
    assert code == 0 and grid.shape == (10 * 18 + 2, 2 * 18 + 2, 1)  # one column per class

    code, out, _ = run(capsys, "export", "gan", "--model", model, "--out", str(tmp_path / "exp"), "--tflite")
    assert code == 0 and "model.tflite" in out
    assert out.splitlines()[-1].startswith(f"next: aigc-keras demo --exports {tmp_path}  ")
    assert json.loads((tmp_path / "exp" / "metadata.json").read_text())["conditional"] is True

    code, out, _ = run(capsys, "info", model)
    assert code == 0 and "family:   gan" in out and "epochs:   1 of 1" in out and "d_loss" in out
    code, out, _ = run(capsys, "info", tmp_path / "exp")  # an export folder is described, not refused
    assert code == 0 and f"(an export of {model})" in out and "model.tflite (" in out and "signatures: generate" in out
    code, out, _ = run(capsys, "info", model, "--json")
    assert json.loads(out)["history"][0]["epoch"] == 1


@pytest.mark.parametrize(
    "args, message, code",
    [
        (["train", "gan", "--loss", "lsgan"], "Invalid value for '--loss'", 2),
        (["train", "gan", "--epochs", "0"], "Invalid value for '--epochs'", 2),
        (["train", "gan", "--bogus"], "No such option '--bogus'", 2),
        (["train", "gan", "--data", "cifar"], "unknown dataset spec 'cifar'", 1),
        (["train", "gan", "--data", "npz:/no/such.npz"], "npz:/no/such.npz: /no/such.npz does not exist", 1),
        (["train", "gan", "--loss", "hinge", "--label-smoothing", "0.1"], "applies to --loss ns only", 1),
        (["train", "rnn"], "No such command 'rnn'", 2),
        (["sample", "gan", "--model", "/no/such/dir"], "model folder /no/such/dir does not exist", 1),
        (["sample", "gan", "--out", "x.jpg"], "use a .png (image grid) or .npz", 1),
        (["export", "gan", "--model", "/no/such/dir"], "does not exist", 1),
        (["export", "gan", "--quantize", "dynamic"], "--quantize applies to the LiteRT file", 1),
        (["info", "/no/such/dir"], "does not exist", 1),
        (["train", "diffusion", "--schedule", "sqrt"], "Invalid value for '--schedule'", 2),
        (["train", "diffusion", "--data", "npz:/no/such.npz"], "/no/such.npz does not exist", 1),
        (["sample", "diffusion", "--sampler", "ddpm", "--eta", "0.5"], "--eta applies to --sampler ddim only", 1),
        (["sample", "diffusion", "--gif", "x.png"], "use a .gif file name", 1),
        (["export", "diffusion", "--sampler", "ddpm"], "Invalid value for '--sampler'", 2),
    ],
)
def test_bad_input_is_one_line_and_non_zero(capsys, tmp_path, args, message, code):
    got, out, err = run(capsys, *args, *(["--model-dir", str(tmp_path / "m")] if args[0] == "train" else []))
    assert got == code
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err
    assert "Traceback" not in out + err


def test_sampling_a_non_gan_model_is_refused(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"family": "diffusion", "config": {}, "data": {}}))
    code, _, err = run(capsys, "sample", "gan", "--model", str(tmp_path))
    assert code == 1 and err.strip() == f"error: {tmp_path} holds a diffusion model, not a gan model"


@pytest.mark.slow
def test_damaged_model_file_is_named_and_rebuilt_by_rerunning_train(capsys, images_npz, tmp_path):
    model = str(tmp_path / "gan")
    train = ["train", "gan", "--data", images_npz, "--model-dir", model, *TINY]
    assert run(capsys, *train)[0] == 0
    whole = (tmp_path / "gan" / "model.keras").read_bytes()
    (tmp_path / "gan" / "model.keras").write_bytes(whole[: len(whole) // 2])  # truncated
    code, _, err = run(capsys, "sample", "gan", "--model", model, "--out", str(tmp_path / "x.png"))
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith(f"error: {model}/model.keras is damaged") and "rerun the same train command" in err
    code, out, _ = run(capsys, *train)
    assert code == 0 and "from the checkpoint of epoch 1" in out and "already trained" in out
    code, _, _ = run(capsys, "sample", "gan", "--model", model, "--out", str(tmp_path / "x.png"))
    assert code == 0


def test_label_on_an_unconditional_model(capsys, images_npz, tmp_path):
    model = str(tmp_path / "gan")
    assert run(capsys, "train", "gan", "--data", images_npz, "--model-dir", model, "--no-conditional", *TINY)[0] == 0
    code, _, err = run(capsys, "sample", "gan", "--model", model, "--label", "3")
    assert code == 1 and "--label needs a conditional model" in err


def test_lstm_and_text_are_one_folder_and_the_other_name_is_found(capsys, tmp_path, monkeypatch):
    for verb, default in (("train", "saved_models/text"), ("sample", "saved_models/text"), ("export", "export/text")):
        for name in ("lstm", "text"):
            code, out, _ = run(capsys, verb, name, "--help")
            assert code == 0 and f"[default: {default}]" in " ".join(out.split()), (verb, name)
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "saved_models" / "lstm"
    old.mkdir(parents=True)
    (old / "config.json").write_text("{}")
    code, _, err = run(capsys, "sample", "text", "--length", "5")
    assert code == 1 and err == "error: model folder saved_models/text does not exist, but saved_models/lstm " \
        "holds a model (made under the family's other name): use saved_models/lstm, or rename it to " \
        "saved_models/text\n"
    code, _, err = run(capsys, "info", "saved_models/text")
    assert code == 1 and "saved_models/lstm holds a model" in err


def test_top_level_cli_py_is_the_console_script():
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "train", "gan", "--loss", "x"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("error: Invalid value for '--loss'")
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "train" in result.stdout and "export" in result.stdout


def test_the_docs_document_every_option_and_readme_every_first_command():
    from aigc_keras.families import NAMES, config_class

    readme = (ROOT / "README.md").read_text()
    reference = (ROOT / "docs" / "commands.md").read_text()
    for config in (config_class(name) for name in NAMES):
        section = reference.split(f"## `aigc-keras train {config.family}`")[1].split("\n## ")[0]
        for field, _ in config.field_specs():
            flag = f"`--{field.name.replace('_', '-')}"
            assert flag in section, (config.family, field.name)
            if field.default is not None:  # the table's default column says the config's default
                row = next(line for line in section.splitlines() if line.startswith(f"| {flag}"))
                shown = row.split("|")[2].split()[0]
                expected = str(field.default).lower() if isinstance(field.default, bool) else str(field.default)
                assert shown == expected, (config.family, field.name, shown, expected)
    for command in ("aigc-keras train gan --quick", "aigc-keras train diffusion --quick",
                    "aigc-keras train text --quick", "aigc-keras train vae --quick", "aigc-keras train gan",
                    "aigc-keras sample gan", "aigc-keras export gan --tflite", "aigc-keras train diffusion",
                    "aigc-keras sample diffusion --num 100", "aigc-keras export diffusion --tflite",
                    "aigc-keras info", "python -m pytest", "aigc-keras train lstm",
                    "aigc-keras sample lstm --prompt", "aigc-keras export lstm --tflite",
                    "aigc-keras evaluate saved_models/gan", "aigc-keras evaluate saved_models/text",
                    "aigc-keras train vae", "aigc-keras sample vae", "aigc-keras export vae --tflite",
                    "aigc-keras demo", "aigc-keras evaluate export/", "aigc-keras info digits.png"):
        assert command in readme, command
    for command in ("aigc-keras train classifier --data mnist", "aigc-keras evaluate export/", "aigc-keras demo",
                    "aigc-keras info samples.png", "aigc-keras info export/gan"):
        assert command in reference, command


DIFFUSION_TINY = ["--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "2", "--objective", "eps", "--patch",
                  "1", "--timesteps", "40", "--base-filters", "8", "--levels", "2", "--strategy", "default"]


@pytest.mark.slow
def test_diffusion_train_sample_gif_export_end_to_end(capsys, images_npz, tmp_path):
    model = str(tmp_path / "diffusion")
    code, out, _ = run(capsys, "train", "diffusion", "--data", images_npz, "--model-dir", model, "--conditional",
                       *DIFFUSION_TINY)
    assert code == 0 and "saved" in out, out

    code, out, err = run(capsys, "sample", "diffusion", "--model", model, "--sampler", "ddim", "--steps", "5",
                         "--num", "4", "--label", "1", "--guidance", "3.0", "--out", str(tmp_path / "a.npz"))
    assert code == 0 and "wrote 4 images" in out
    # piped, the progress is one line per network call; the command runs step by step for it
    assert [line.split(" (")[0] for line in err.splitlines()] == [f"ddim x5: {p}%" for p in (20, 40, 60, 80, 100)]
    arrays = np.load(tmp_path / "a.npz")
    assert arrays["images"].shape == (4, 16, 16, 1) and arrays["labels"].tolist() == [1] * 4
    import aigc_keras as ak

    # the library, reporting nothing, runs the loop as one graph: the same images
    drawn = ak.load(model).generate(4, seed=0, labels=1, sampler="ddim", steps=5, guidance=3.0)
    np.testing.assert_array_equal(drawn, arrays["images"])

    gif = tmp_path / "denoise.gif"
    code, out, _ = run(capsys, "sample", "diffusion", "--model", model, "--sampler", "ddpm", "--num", "4",
                       "--gif", str(gif), "--out", str(tmp_path / "c.png"))
    assert code == 0 and "40 frames" in out  # ddpm runs all T = 40 steps
    from PIL import Image

    with Image.open(gif) as animation:
        assert animation.n_frames == 40 and animation.size == (2 * 18 + 2, 2 * 18 + 2)

    code, _, err = run(capsys, "sample", "diffusion", "--model", model, "--steps", "41")
    assert code == 1 and "--steps must be in 1..40" in err

    code, out, _ = run(capsys, "export", "diffusion", "--model", model, "--out", str(tmp_path / "exp"),
                       "--tflite", "--steps", "4")
    assert code == 0 and "signatures: generate, denoise_step" in out
    meta = json.loads((tmp_path / "exp" / "metadata.json").read_text())
    assert meta["steps"] == 4 and meta["sampler"] == "ddim" and meta["conditional"] is True

    code, out, _ = run(capsys, "info", model)
    assert code == 0 and "family:   diffusion" in out and "loss" in out


def test_the_command_tree_loads_without_tensorflow():
    """`--help` and argument errors stay fast: no command module imports TensorFlow at load time."""
    code = "import sys, aigc_keras.cli.app; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


@pytest.mark.slow
def test_training_on_the_command_line_shows_no_tensorflow_log_lines(images_npz, tmp_path):
    import os
    import re

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    result = subprocess.run([sys.executable, "-m", "aigc_keras.cli", "train", "gan", "--data", images_npz,
                             "--model-dir", str(tmp_path / "g"), *TINY], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not re.findall(r"^[IWEF]\d{4} .*$", result.stderr, flags=re.M), result.stderr  # no E0000 ... lines
