"""Bad input across every command: one line on stderr starting `error:`, a non-zero exit, no
traceback, no Python exception name, and not one existing file changed.

The workspace (tiny trained models, an export, a user's own folder, broken files) is built once;
each case runs the CLI in this process from inside it and compares every file's checksum before
and after.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import make_images
from conftest import run_cli as cli

from aigc_keras.cli import main
from aigc_keras.data import tfds_source

pytestmark = pytest.mark.slow  # end-to-end: trains and exports models

GAN = ["--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "2", "--latent-dim", "8", "--base-filters", "8",
       "--strategy", "default"]
DIFFUSION = ["--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "2", "--objective", "eps", "--patch", "1",
             "--timesteps", "40", "--base-filters", "8", "--levels", "2", "--strategy", "default"]
TEXT = ["--epochs", "1", "--batch-size", "8", "--seq-len", "16", "--units", "16", "--layers", "1",
        "--embedding-dim", "8", "--strategy", "default"]
CORPUS = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 20
EXCEPTION_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception|Interrupt|Exit)\b|Traceback")


def checksums(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder as a user would have it after a few runs, and some of their own files."""
    root = tmp_path_factory.mktemp("workspace")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        images, labels = make_images()
        np.savez("data.npz", images=images, labels=labels)
        np.savez("unlabelled.npz", images=images)
        np.savez("odd.npz", images=np.zeros((40, 30, 30), np.uint8))
        Path("garbage.npz").write_bytes(b"this is not a zip archive")
        Path("corrupt-images-idx3-ubyte.gz").write_bytes(b"not gzip")
        Path("corpus.txt").write_text(CORPUS)
        Path("tiny.txt").write_text("hello world\n")
        Path("one.txt").write_text("x")
        Path("latin1.txt").write_bytes("caf\xe9 ol\xe9 ".encode("latin-1") * 20)
        Path("empty").mkdir()
        Path("adir.png").mkdir()
        Path("adir.gif").mkdir()
        mine = Path("mine")  # the user's own project folder
        (mine / "logs").mkdir(parents=True)
        (mine / "samples").mkdir()
        (mine / "config.json").write_text('{"learning": "my own settings"}')
        (mine / "logs" / "run.log").write_text("my log")
        (mine / "samples" / "best.png").write_bytes(b"my picture")
        for args in (["train", "gan", "--data", "npz:data.npz", "--model-dir", "models/gan", "--no-conditional", *GAN],
                     ["train", "gan", "--data", "npz:data.npz", "--model-dir", "models/cgan", "--conditional", *GAN],
                     ["train", "diffusion", "--data", "npz:data.npz", "--model-dir", "models/diff", "--no-conditional",
                      *DIFFUSION],
                     ["train", "diffusion", "--data", "npz:data.npz", "--model-dir", "models/cdiff", "--conditional",
                      *DIFFUSION],
                     ["train", "lstm", "--data", "text:corpus.txt", "--model-dir", "models/lstm", *TEXT],
                     ["export", "gan", "--model", "models/gan", "--out", "exports/gan"]):
            with pytest.raises(SystemExit) as done:
                main(args)
            assert done.value.code == 0, args
        for name in ("notes", "badtype", "badhistory", "badhistory2", "damaged", "nan"):
            shutil.copytree("models/gan", f"models/{name}")
        Path("models/notes/notes.txt").write_text("my notes about this run")
        run = json.loads(Path("models/badtype/config.json").read_text())
        run["config"]["base_filters"] = "8"
        Path("models/badtype/config.json").write_text(json.dumps(run))
        Path("models/badhistory/history.json").write_text("{}")
        Path("models/badhistory2/history.json").write_text('[{"loss": 1}]')
        whole = Path("models/damaged/model.keras").read_bytes()
        Path("models/damaged/model.keras").write_bytes(whole[: len(whole) // 2])
        import aigc_keras.models  # noqa: F401

        model = keras.models.load_model("models/nan/model.keras", compile=False)
        weights = model.get_weights()
        weights[0] = np.full_like(weights[0], np.nan)
        model.set_weights(weights)
        model.save("models/nan/model.keras")
        yield root
    finally:
        os.chdir(cwd)


TF_CONFIG_BAD = {"TF_CONFIG": "{not json"}
OFFLINE = "offline"

# (command line, what the one-line message must say, exit code, environment or "offline")
CASES = [
    # train: folders it must not write
    ("train gan --data npz:data.npz --model-dir mine", "holds files aigc-keras did not write", 1, None),
    ("train gan --data npz:data.npz --model-dir mine --overwrite", "holds files aigc-keras did not write", 1, None),
    ("train gan --data npz:data.npz --model-dir mine --force", "mine/config.json was not written by aigc-keras", 1,
     None),
    ("train gan --data npz:data.npz --model-dir models/notes --overwrite", "also holds files aigc-keras did not write",
     1, None),
    ("train gan --data npz:data.npz --model-dir data.npz", "is a file, not a folder", 1, None),
    ("train gan --data npz:data.npz --model-dir exports/gan", "is an aigc-keras export folder", 1, None),
    ("train gan --data npz:data.npz --model-dir models/gan --loss hinge", "holds a run with other options", 1, None),
    ("train diffusion --data npz:data.npz --model-dir models/gan", "holds a gan model", 1, None),
    # train: data
    ("train gan --data npz:garbage.npz --model-dir new/a", "is not a NumPy .npz archive", 1, None),
    ("train gan --data npz:data.npz --batch-size 1000 --model-dir new/b", "fewer than one step needs (1000)", 1, None),
    ("train lstm --data text:tiny.txt --model-dir new/c", "fewer than one batch", 1, None),
    ("train lstm --data text:one.txt --model-dir new/d", "holds 1 character", 1, None),
    ("train lstm --data text:corpus.txt --seq-len 100000 --model-dir new/e", "fewer than one batch", 1, None),
    ("train lstm --data text:latin1.txt --model-dir new/f", "is not UTF-8 text", 1, None),
    ("train gan --data folder:empty --model-dir new/g", "no image files", 1, None),
    ("train gan --data idx:corrupt-images-idx3-ubyte.gz --model-dir new/h", "cannot read IDX file", 1, None),
    ("train gan --data npz:unlabelled.npz --conditional --model-dir new/i", "--conditional needs labelled data", 1,
     None),
    ("train gan --data npz:odd.npz --model-dir new/j", "a DCGAN cannot be sized for 30x30 images", 1, None),
    ("train gan --data tfds:mnist_corrupted --model-dir new/k", "the network is unreachable", 1, OFFLINE),
    ("train gan --data cifar --model-dir new/l", "unknown dataset spec 'cifar'", 1, None),
    # train: options
    ("train gan --g-learning-rate nan --model-dir new/m", "is not a finite number", 2, None),
    ("train gan --d-learning-rate inf --model-dir new/n", "is not a finite number", 2, None),
    ("train diffusion --ema-momentum nan --model-dir new/o", "is not a finite number", 2, None),
    ("train lstm --arch transformer --heads 3 --model-dir new/p", "--heads 3 must divide --units 256", 1, None),
    ("train gan --data npz:data.npz --batch-size 15 --strategy mirrored --model-dir new/q",
     "must divide evenly across 2 replicas", 1, None),
    ("train gan --strategy multiworker --model-dir new/r", "needs TF_CONFIG", 1, None),
    ("train gan --model-dir new/s", "TF_CONFIG must be JSON", 1, TF_CONFIG_BAD),
    ("train gan --epochs -1 --model-dir new/t", "Invalid value for '--epochs'", 2, None),
    # sample: outputs it must not write, inputs it must refuse
    ("sample gan --model models/gan --out models/gan/samples/epoch-0001.png", "is part of the model folder", 1, None),
    ("sample lstm --model models/lstm --out models/lstm/model.keras", "is part of the model folder", 1, None),
    ("sample lstm --model models/lstm --out models/lstm/config.json", "is part of the model folder", 1, None),
    ("sample gan --model models/gan --out exports/gan/model.tflite", "use a .png", 1, None),
    ("sample gan --model models/gan --out adir.png", "adir.png is a folder", 1, None),
    ("sample gan --model models/gan --out data.npz/x.png", "cannot write data.npz/x.png", 1, None),
    ("sample lstm --model models/lstm --out /proc/aigc-keras-test.txt", "cannot write /proc/aigc-keras-test.txt", 1,
     None),
    ("sample diffusion --model models/cdiff --guidance nan", "is not a finite number", 2, None),
    ("sample diffusion --model models/diff --guidance 2", "--guidance needs a conditional model", 1, None),
    ("sample diffusion --model models/diff --gif adir.gif --out d.png", "adir.gif is a folder", 1, None),
    ("sample diffusion --model models/diff --steps 0", "Invalid value for '--steps'", 2, None),
    ("sample diffusion --model models/diff --steps 41 --out d.png", "--steps must be in 1..40", 1, None),
    ("sample gan --model models/cgan --label 9 --out x.png", "--label must be in 0..1", 1, None),
    ("sample lstm --model models/lstm --temperature nan", "is not a finite number", 2, None),
    ("sample lstm --model models/lstm --top-p 0", "Invalid value for '--top-p'", 2, None),
    ("sample gan --model models/lstm", "holds a text model, not a gan model", 1, None),
    ("sample gan --model models/damaged --out x.png", "model.keras is damaged", 1, None),
    ("sample gan --model models/nan --out x.png", "weights that are not finite", 1, None),
    ("sample gan --model models/badtype --out x.png", "config.json: option 'base_filters' must be int", 1, None),
    ("sample gan --model models/missing --out x.png", "does not exist", 1, None),
    # export
    ("export gan --model models/gan --out data.npz", "is a file, not a folder", 1, None),
    ("export gan --model models/gan --out mine", "holds files aigc-keras did not write", 1, None),
    ("export gan --model models/gan --out models/gan", "is an aigc-keras model folder", 1, None),
    ("export gan --model models/gan --out .", "holds files aigc-keras did not write", 1, None),
    ("export gan --model models/nan --out exports/nan", "weights that are not finite", 1, None),
    ("export gan --model models/gan --quantize dynamic --out exports/q", "--quantize applies to the LiteRT file", 1,
     None),
    ("export gan --model models/diff --out exports/d", "holds a diffusion model, not a gan model", 1, None),
    ("export diffusion --model models/diff --steps 0 --out exports/d", "Invalid value for '--steps'", 2, None),
    ("export lstm --model models/lstm --out /proc/aigc-keras-test", "cannot write /proc/aigc-keras-test", 1, None),
    # evaluate and info
    ("evaluate models/lstm --num 10", "--num applies to diffusion, gan or vae models; models/lstm holds a text model",
     1, None),
    ("evaluate models/gan --data text:corpus.txt", "--data applies to text models", 1, None),
    ("evaluate models/gan --guidance 2", "applies to diffusion models", 1, None),
    ("evaluate mine", "mine/config.json is corrupt", 1, None),
    ("evaluate models/missing", "does not exist", 1, None),
    ("info models/badhistory", "history.json is corrupt", 1, None),
    ("info models/badhistory2", "history.json is corrupt", 1, None),
    ("info data.npz", "is a file, not a model folder", 1, None),
    ("info models/badtype", "config.json: option 'base_filters' must be int", 1, None),
]


@pytest.mark.parametrize("command, message, code, env", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(workspace, capsys, monkeypatch, command, message,
                                                              code, env):
    monkeypatch.chdir(workspace)
    if env == OFFLINE:
        monkeypatch.setattr(tfds_source, "network_available", lambda timeout=3.0: False)
    elif env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
    before = checksums(workspace)
    got, out, err = cli(capsys, *command.split())
    assert got == code, (out, err)
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert not EXCEPTION_NAME.search(out + err), err
    after = checksums(workspace)
    assert {name: after.get(name) for name in before} == before  # nothing that existed was changed


def test_at_least_forty_cases_over_every_command():
    commands = {c[0].split()[0] for c in CASES}
    assert len(CASES) >= 40 and commands == {"train", "sample", "export", "evaluate", "info"}


@pytest.mark.parametrize("family, options", [
    ("gan", [*GAN, "--data", "npz:data.npz", "--epochs", "2", "--g-learning-rate", "1e6", "--d-learning-rate",
             "1e6"]),
    ("diffusion", [*DIFFUSION, "--data", "npz:data.npz", "--epochs", "2", "--learning-rate", "1e9"]),
    ("lstm", [*TEXT, "--data", "text:corpus.txt", "--epochs", "2", "--learning-rate", "1e6"]),
])
def test_divergence_stops_keeps_the_last_good_epoch_and_resumes_with_a_lower_rate(workspace, capsys, monkeypatch,
                                                                                  family, options):
    monkeypatch.chdir(workspace)
    folder = Path(f"diverged/{family}")
    rate_flag = [o for o in options if "learning-rate" in o]
    sane = list(options)
    for flag in rate_flag:
        sane[sane.index(flag) + 1] = "1e-3"
    one_epoch = sane + ["--epochs", "1"]  # the last --epochs wins
    assert cli(capsys, "train", family, "--model-dir", folder, *one_epoch)[0] == 0
    first_model = (folder / "model.keras").read_bytes()

    code, out, err = cli(capsys, "train", family, "--model-dir", folder, *options)  # epoch 2 at an absurd rate
    assert code == 1 and len(err.splitlines()) == 1 and not EXCEPTION_NAME.search(err), err
    assert "training diverged in epoch 2" in err and "the checkpoint of epoch 1 is kept" in err
    assert "learning rate too high" in err and rate_flag[0] in err
    history = json.loads((folder / "history.json").read_text())  # still valid JSON: no NaN in it
    assert [h["epoch"] for h in history] == [1]
    assert (folder / "model.keras").read_bytes() == first_model  # the diverged weights were not saved
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["epoch-0001.weights.h5"]

    code, out, err = cli(capsys, "train", family, "--model-dir", folder, *sane)  # a lower rate resumes
    assert code == 0 and "resuming" in out and "after epoch 1 of 2" in out, err
    assert [h["epoch"] for h in json.loads((folder / "history.json").read_text())] == [1, 2]


def test_overwrite_removes_only_what_training_wrote(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    shutil.copytree("models/gan", "mixed")
    Path("mixed/notes.txt").write_text("mine")
    Path("mixed/samples/keep.png").write_bytes(b"mine too")
    ours = [p for p in ("model.keras", "config.json", "history.json") if Path("mixed", p).exists()]
    assert cli(capsys, "train", "gan", "--data", "npz:data.npz", "--model-dir", "mixed", *GAN, "--overwrite")[0] == 1
    code, out, err = cli(capsys, "train", "gan", "--data", "npz:data.npz", "--model-dir", "mixed", *GAN,
                         "--overwrite", "--force", "--loss", "hinge")
    assert code == 0, err
    assert Path("mixed/notes.txt").read_text() == "mine" and Path("mixed/samples/keep.png").read_bytes() == b"mine too"
    assert all(Path("mixed", p).exists() for p in ours)
    assert json.loads(Path("mixed/config.json").read_text())["config"]["loss"] == "hinge"


def test_training_adopts_an_empty_folder_and_force_writes_beside_foreign_files(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    Path("blank").mkdir()
    assert cli(capsys, "train", "gan", "--data", "npz:data.npz", "--model-dir", "blank", *GAN)[0] == 0
    assert json.loads(Path("blank/.aigc-keras").read_text())["kind"] == "model"
    Path("shared").mkdir()
    Path("shared/README").write_text("team notes")
    assert cli(capsys, "train", "gan", "--data", "npz:data.npz", "--model-dir", "shared", *GAN)[0] == 1
    assert cli(capsys, "train", "gan", "--data", "npz:data.npz", "--model-dir", "shared", *GAN, "--force")[0] == 0
    assert Path("shared/README").read_text() == "team notes" and Path("shared/model.keras").exists()


def test_export_force_keeps_foreign_files_and_replaces_only_its_own(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    app = Path("app_assets")
    app.mkdir()
    (app / "icon.png").write_bytes(b"the app's icon")
    assert cli(capsys, "export", "gan", "--model", "models/gan", "--out", app)[0] == 1
    assert cli(capsys, "export", "gan", "--model", "models/gan", "--out", app, "--force", "--tflite")[0] == 0
    assert sorted(p.name for p in app.iterdir()) == [".aigc-keras", "icon.png", "metadata.json", "model.tflite",
                                                    "saved_model"]
    code, _, err = cli(capsys, "export", "gan", "--model", "models/gan", "--out", app, "--force")  # no --tflite now
    assert code == 0, err
    assert sorted(p.name for p in app.iterdir()) == [".aigc-keras", "icon.png", "metadata.json", "saved_model"]
    assert (app / "icon.png").read_bytes() == b"the app's icon"
    # An export folder of its own is replaced whole, and the current folder is handled without a swap.
    assert cli(capsys, "export", "gan", "--model", "models/gan", "--out", "exports/gan", "--tflite")[0] == 0
    assert not [p for p in Path("exports").iterdir() if p.name.startswith(".")]
    monkeypatch.chdir("exports/gan")
    code, _, err = cli(capsys, "export", "gan", "--model", "../../models/gan", "--out", ".")
    assert code == 0 and Path("metadata.json").exists() and not Path("model.tflite").exists(), err


def test_resuming_on_changed_data_names_the_change_and_keeps_the_checkpoint(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    images, labels = make_images(size=16)
    np.savez("swap.npz", images=images, labels=labels)
    args = ["train", "gan", "--data", "npz:swap.npz", "--model-dir", "swapped", *GAN]
    assert cli(capsys, *args)[0] == 0
    np.savez("swap.npz", images=make_images(size=32, channels=3)[0], labels=labels)
    before = checksums(Path("swapped"))
    code, _, err = cli(capsys, *args, "--epochs", "2")  # train on: resume
    assert code == 1 and "no longer matches the run" in err and "image_shape: 16x16x1 then, 32x32x3 now" in err
    assert "delete" not in err and checksums(Path("swapped")) == before


def test_tfds_offline_fails_fast_in_one_line(capsys, monkeypatch, tmp_path):
    import time

    monkeypatch.setattr(tfds_source, "network_available", lambda timeout=3.0: False)
    start = time.time()
    code, _, err = cli(capsys, "train", "gan", "--data", "tfds:mnist_corrupted", "--model-dir", tmp_path / "m")
    assert code == 1 and len(err.splitlines()) == 1 and "not in the local TFDS data dir" in err
    assert time.time() - start < 60


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_and_the_rerun_resumes(tmp_path):
    images, labels = make_images(n=512)
    np.savez(tmp_path / "data.npz", images=images, labels=labels)
    args = [sys.executable, "-m", "aigc_keras.cli", "train", "gan", "--data", f"npz:{tmp_path / 'data.npz'}",
            "--model-dir", str(tmp_path / "m"), "--epochs", "40", "--batch-size", "16", "--latent-dim", "8",
            "--base-filters", "8", "--strategy", "default"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    history = tmp_path / "m" / "history.json"
    try:
        import time

        deadline = time.time() + 300
        while not (history.exists() and json.loads(history.read_text())) and time.time() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, out[-2000:] + err
    last = err.strip().splitlines()[-1]
    assert last == "error: interrupted: rerun the same command to resume after the last finished epoch"
    assert "Traceback" not in err
    from aigc_keras.training.callbacks import EpochCheckpoint

    done = EpochCheckpoint.saved(tmp_path / "m" / "checkpoints")[-1][1]
    args[args.index("40")] = str(done + 1)
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and f"after epoch {done} of {done + 1}" in result.stdout
