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
import socket
import stat
import subprocess
import sys
import tempfile
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
                     ["train", "diffusion", "--data", "npz:data.npz", "--model-dir", "models/flow", *DIFFUSION,
                      "--objective", "flow"],
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
        make_hostile_files()
        import aigc_keras  # noqa: F401  (registers its Keras classes)

        model = keras.models.load_model("models/nan/model.keras", compile=False)
        weights = model.get_weights()
        weights[0] = np.full_like(weights[0], np.nan)
        model.set_weights(weights)
        model.save("models/nan/model.keras")
        yield root
    finally:
        os.chdir(cwd)


def make_hostile_files():
    """What a careless or hostile user leaves in the way: links where the tool writes, a folder named
    like its marker, special files as outputs, odd image folders and names (see the cases below)."""
    Path("tb").mkdir()
    Path("tb/events.out.tfevents.1700000000.other").write_text("my own TensorBoard run")
    Path("myckpt").mkdir()
    Path("myckpt/epoch-0001.weights.h5").write_text("my checkpoint")
    Path("mysamples").mkdir()
    Path("mysamples/epoch-0001.png").write_bytes(b"my picture")
    for name, target in (("logs", "tb"), ("checkpoints", "myckpt"), ("samples", "mysamples")):
        shutil.copytree("models/gan", f"models/linked-{name}")
        shutil.rmtree(f"models/linked-{name}/{name}")
        Path(f"models/linked-{name}/{name}").symlink_to(Path("../..", target))
    Path("userdir/.aigc-keras").mkdir(parents=True)
    Path("userdir/.aigc-keras/settings.ini").write_text("my settings")
    os.mkfifo("fifo.txt")
    os.mkfifo("fifo.png")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("sock.png")
    Path("devlink.png").symlink_to(os.devnull)
    try:  # a character device of our own (mknod c 1 3 is /dev/null's); a socket where that is not allowed
        os.mknod("mynull", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        with socket.socket(socket.AF_UNIX) as server:
            server.bind("mynull")
    from aigc_keras.imaging import encode_png

    picture = encode_png(make_images(n=1)[0][0])
    Path("mixedimgs/cats").mkdir(parents=True)
    for i in range(40):
        Path(f"mixedimgs/top{i}.png").write_bytes(picture)
    for i in range(20):
        Path(f"mixedimgs/cats/cat{i}.png").write_bytes(picture)
    Path("badpng").mkdir()
    Path("badpng/empty.png").write_bytes(b"")
    Path("fakepng").mkdir()
    Path("fakepng/fake.png").write_text("not a picture")
    Path("a,b.txt").write_text("hello world\n")
    shutil.copytree("models/gan", "models/nospec")
    run = json.loads(Path("models/nospec/config.json").read_text())
    del run["data"]["spec"]
    Path("models/nospec/config.json").write_text(json.dumps(run))
    shutil.copytree("exports/gan", "exports/badmeta")
    Path("exports/badmeta/metadata.json").write_text("[]")


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
    # 1. links where the tool writes: never cleared through, never written through, --force or not
    *[(f"train gan --data npz:data.npz --model-dir models/linked-{name} {extra}",
       f"models/linked-{name}/{name} (a symbolic link) is not a file aigc-keras wrote", 1, None)
      for name in ("logs", "checkpoints", "samples") for extra in ("--overwrite", "--epochs 2", "--overwrite --force")],
    # 2. a folder named like the marker is the user's
    ("export gan --model models/gan --out userdir", "holds files aigc-keras did not write (.aigc-keras/)", 1, None),
    ("export gan --model models/gan --out userdir --force", "userdir/.aigc-keras/ is not a file aigc-keras wrote", 1,
     None),
    ("train gan --data npz:data.npz --model-dir userdir --force", "userdir/.aigc-keras/ is not a file aigc-keras "
     "wrote", 1, None),
    # 3. outputs that are not regular files
    ("sample lstm --model models/lstm --length 5 --out fifo.txt",
     "--out fifo.txt is a FIFO (named pipe); aigc-keras replaces only regular files", 1, None),
    ("sample gan --model models/gan --out fifo.png", "--out fifo.png is a FIFO (named pipe)", 1, None),
    ("sample gan --model models/gan --out sock.png", "--out sock.png is a socket", 1, None),
    ("sample gan --model models/gan --out devlink.png", "--out devlink.png is a symbolic link", 1, None),
    ("sample lstm --model models/lstm --length 5 --out mynull", "aigc-keras replaces only regular files", 1, None),
    # 7. image folders that would be read in part
    ("train gan --data folder:mixedimgs --model-dir new/x", "has 40 images at its top and class sub-folders (cats/)",
     1, None),
    # 8. --stop escapes
    ("sample lstm --model models/lstm --stop \\x", "Invalid value for '--stop'", 2, None),
    # 10. sizes past what the machine holds, and seeds past what the generators take
    ("export gan --model models/gan --batch 1000000000 --out exports/big", "--batch 1000000000 needs about", 1, None),
    ("sample gan --model models/gan --num 10000000000 --out x.png", "--num 10000000000 needs about", 1, None),
    ("sample lstm --model models/lstm --length 100000000000", "--length 100000000000 needs about", 1, None),
    ("sample diffusion --model models/flow --steps 100000000000 --out d.png", "--steps 100000000000 needs about", 1,
     None),
    ("export lstm --model models/lstm --length 100000000000 --out exports/l", "--length 100000000000 needs about", 1,
     None),
    ("evaluate models/gan --num 100000000000", "--num 100000000000 needs about", 1, None),
    ("evaluate models/gan --subsets 1000000000", "Invalid value for '--subsets'", 2, None),
    ("sample gan --model models/gan --seed 1180591620717411303424", "Invalid value for '--seed'", 2, None),
    ("train gan --seed 99999999999 --model-dir new/u", "Invalid value for '--seed'", 2, None),
    ("sample diffusion --model models/cdiff --guidance 1e30", "Invalid value for '--guidance'", 2, None),
    ("sample gan --model models/cgan --label 100000000000000000000 --out x.png", "Invalid value for '--label'", 2,
     None),
    # 12. messages that named internals, or the wrong cause
    ("evaluate models/nospec", "config.json is corrupt: it names no training data", 1, None),
    ("evaluate exports/badmeta", "metadata.json is missing or corrupt", 1, None),
    ("train gan --data folder:badpng --model-dir new/v", "cannot decode badpng/empty.png: it is empty", 1, None),
    ("train gan --data folder:fakepng --model-dir new/w", "fakepng/fake.png: it is not a .png image", 1, None),
    ("train lstm --data text:/dev/null --model-dir new/y", "/dev/null is a character device, not a text file", 1, None),
    ("train lstm --data text:a,b.txt --model-dir new/z", "fewer than one batch", 1, None),
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


def started_with(sigint):
    """A `preexec_fn` giving the child the SIGINT disposition `sigint` (what a parent passes on: a shell's
    background job, or a test runner, hands down SIG_IGN, and Python then leaves SIGINT ignored)."""
    return lambda: signal.signal(signal.SIGINT, sigint)


def wait_for(condition, seconds=300):
    import time

    deadline = time.time() + seconds
    while not condition() and time.time() < deadline:
        time.sleep(0.05)
    assert condition(), "timed out"


def stderr_ends_in_one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines and [line for line in lines if line.startswith("error: ")] == [lines[-1]], err
    assert "Traceback" not in err and "INFO:" not in err, err
    return lines[-1]


QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.slow
@pytest.mark.parametrize("stop, parent", [(signal.SIGINT, signal.SIG_DFL), (signal.SIGINT, signal.SIG_IGN),
                                          (signal.SIGTERM, signal.SIG_IGN)], ids=["ctrl-c", "ctrl-c-ignored-by-parent",
                                                                                 "sigterm"])
def test_ctrl_c_says_how_to_resume_and_the_rerun_resumes(tmp_path, stop, parent):
    images, labels = make_images(n=512)
    np.savez(tmp_path / "data.npz", images=images, labels=labels)
    args = [sys.executable, "-m", "aigc_keras.cli", "train", "gan", "--data", f"npz:{tmp_path / 'data.npz'}",
            "--model-dir", str(tmp_path / "m"), "--epochs", "40", "--batch-size", "16", "--latent-dim", "8",
            "--base-filters", "8", "--strategy", "default"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=QUIET,
                               preexec_fn=started_with(parent))
    history = tmp_path / "m" / "history.json"
    try:
        wait_for(lambda: history.exists() and json.loads(history.read_text()))
        process.send_signal(stop)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, (signal.getsignal(signal.SIGINT), out[-2000:], err)
    last = stderr_ends_in_one_error_line(err)
    assert last == "error: interrupted: rerun the same command to resume after the last finished epoch"
    from aigc_keras.training.callbacks import EpochCheckpoint

    done = EpochCheckpoint.saved(tmp_path / "m" / "checkpoints")[-1][1]
    args[args.index("40")] = str(done + 1)
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and f"after epoch {done} of {done + 1}" in result.stdout


def stage_of(out: Path) -> list[Path]:
    """The staging folders of an export to `out` (beside it)."""
    return sorted(out.parent.glob(f".{out.name}.*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("parent", [signal.SIG_DFL, signal.SIG_IGN], ids=["default", "ignored-by-parent"])
def test_ctrl_c_during_the_litert_conversion_stops_the_export_and_keeps_the_old_one(workspace, parent, tmp_path):
    out = tmp_path / "exported"
    shutil.copytree(workspace / "exports" / "gan", out)
    before = checksums(out)
    process = subprocess.Popen([sys.executable, "-m", "aigc_keras.cli", "export", "diffusion", "--model",
                                str(workspace / "models" / "cdiff"), "--out", str(out), "--tflite", "--force"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=QUIET,
                               preexec_fn=started_with(parent))
    try:  # the SavedModel is written: the conversion to LiteRT and its parity checks run now
        wait_for(lambda: any((stage / "saved_model" / "saved_model.pb").exists() for stage in stage_of(out))
                 or process.poll() is not None)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert stderr_ends_in_one_error_line(err) == f"error: interrupted: nothing was exported ({out} is as it was)"
    assert checksums(out) == before and not stage_of(out) and not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_a_killed_export_leaves_a_stage_that_the_next_export_removes(workspace, tmp_path):
    out = tmp_path / "exported"
    args = [sys.executable, "-m", "aigc_keras.cli", "export", "diffusion", "--model",
            str(workspace / "models" / "diff"), "--out", str(out), "--tflite"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=QUIET)
    try:
        wait_for(lambda: any((stage / "saved_model").exists() for stage in stage_of(out)) or process.poll() is not None)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert len(stage_of(out)) == 1 and not out.exists()  # what SIGKILL leaves
    live = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=tmp_path))  # a live export's stage
    from aigc_keras import folders

    folders.claim(live, folders.EXPORT)
    with open(live / folders.MARKER) as held:
        import fcntl

        fcntl.flock(held, fcntl.LOCK_EX)
        result = subprocess.run(args, capture_output=True, text=True, env=QUIET, timeout=600)
        assert result.returncode == 0, result.stderr
        assert stage_of(out) == [live]  # the killed run's stage is gone, the live one is kept
    assert (out / "model.tflite").is_file()


def test_training_removes_the_temporary_files_a_killed_run_left(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    shutil.copytree("models/gan", "killed")
    leftovers = [Path("killed/.model.keras.k2j3x9.tmp.keras"), Path("killed/.history.json.a8s7d6.tmp"),
                 Path("killed/checkpoints/.epoch-0002.weights.h5.q1w2e3.tmp.weights.h5"),
                 Path("killed/samples/.epoch-0002.png.z9x8c7.tmp")]
    for path in leftovers:
        path.write_bytes(b"half a file")
    evaluating = Path("killed/.metrics.json.m4n5b6.tmp")  # `evaluate` may be writing this one right now
    evaluating.write_bytes(b"{")
    code, _, err = cli(capsys, "train", "gan", "--data", "npz:data.npz", "--model-dir", "killed", *GAN, "--epochs", "2",
                       "--no-conditional")
    assert code == 0, err
    assert not [p for p in leftovers if p.exists()] and evaluating.exists()


def test_a_model_folder_in_use_is_refused_in_one_line(workspace, capsys, monkeypatch):
    from aigc_keras import folders

    monkeypatch.chdir(workspace)
    shutil.copytree("models/gan", "busy")
    before = checksums(Path("busy"))
    with folders.locked(Path("busy"), folders.MODEL):
        code, _, err = cli(capsys, "train", "gan", "--data", "npz:data.npz", "--model-dir", "busy", *GAN, "--overwrite")
    assert code == 1 and len(err.splitlines()) == 1
    assert err.strip() == ("error: busy is in use by another aigc-keras command right now; wait for it to finish, "
                           "or choose another --model-dir")
    assert checksums(Path("busy")) == before


@pytest.mark.slow
def test_two_runs_started_at_once_into_one_folder_one_trains_the_other_is_refused(workspace, tmp_path):
    folder = tmp_path / "c"
    common = [sys.executable, "-m", "aigc_keras.cli", "train", "gan", "--data", f"npz:{workspace / 'data.npz'}",
              "--model-dir", str(folder), *GAN, "--epochs", "1000", "--steps-per-epoch", "20"]
    first = subprocess.Popen(common, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=QUIET)
    try:  # the first is training (it outlasts the second's start); the second starts into the same folder
        wait_for(lambda: (folder / "history.json").exists() or first.poll() is not None)
        second = subprocess.run([*common, "--base-filters", "16"], capture_output=True, text=True, env=QUIET,
                                timeout=300)
        still_training = first.poll() is None
        first.send_signal(signal.SIGINT)
        _, first_err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert still_training and first.returncode == 130, first_err
    assert second.returncode == 1 and "is in use by another aigc-keras command" in \
        stderr_ends_in_one_error_line(second.stderr)
    assert json.loads((folder / "config.json").read_text())["config"]["base_filters"] == 8  # the first run's
    from aigc_keras.training.callbacks import EpochCheckpoint

    done = EpochCheckpoint.saved(folder / "checkpoints")[-1][1]
    resumed = subprocess.run([*common, "--epochs", str(done + 1)], capture_output=True, text=True, env=QUIET,
                             timeout=300)  # its checkpoint and config.json still agree: it trains on
    assert resumed.returncode == 0 and f"after epoch {done} of {done + 1}" in resumed.stdout, resumed.stderr


def test_a_corpus_changed_in_place_to_the_same_length_is_not_resumed(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    Path("mine.txt").write_text(CORPUS)
    args = ["train", "lstm", "--data", "text:mine.txt", "--model-dir", "reversed", *TEXT]
    assert cli(capsys, *args)[0] == 0
    Path("mine.txt").write_text(CORPUS[::-1])  # the same characters, the same length, another text
    before = checksums(Path("reversed"))
    code, _, err = cli(capsys, *args, "--epochs", "2")
    assert code == 1 and len(err.splitlines()) == 1 and "the same size and shape, but other contents" in err, err
    assert checksums(Path("reversed")) == before


def test_a_relative_data_path_from_another_folder_is_refused_by_train_and_evaluate(workspace, capsys, monkeypatch,
                                                                                    tmp_path):
    monkeypatch.chdir(workspace)
    model = (workspace / "models" / "gan").resolve()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    images, labels = make_images(seed=7)  # other images of the same shape, under the same name
    np.savez(elsewhere / "data.npz", images=images, labels=labels)
    monkeypatch.chdir(elsewhere)
    before = checksums(model)
    for args in (["train", "gan", "--data", "npz:data.npz", "--model-dir", model, *GAN, "--epochs", "2",
                  "--no-conditional"],
                 ["evaluate", model, "--num", "8"]):
        code, _, err = cli(capsys, *args)
        assert code == 1 and len(err.splitlines()) == 1, err
        assert "no longer matches the run" in err or "now holds other data than the model was trained on" in err, err
    assert checksums(model) == before


@pytest.mark.slow
def test_litert_log_lines_never_follow_the_error_line(workspace, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(workspace / "exports" / "gan", moved)
    result = subprocess.run([sys.executable, "-m", "aigc_keras.cli", "export", "gan", "--model",
                             str(workspace / "models" / "gan"), "--out", str(moved), "--tflite"],
                            capture_output=True, text=True, env=QUIET, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    images, labels = make_images(n=64, size=32)  # a feature classifier for 32x32 images: the export draws 16x16
    np.savez(tmp_path / "big.npz", images=images, labels=labels)
    trained = subprocess.run([sys.executable, "-m", "aigc_keras.cli", "train", "classifier", "--data",
                              f"npz:{tmp_path / 'big.npz'}", "--model-dir", str(tmp_path / "clf"), "--epochs", "1",
                              "--batch-size", "16", "--filters", "4", "--strategy", "default"],
                             capture_output=True, text=True, env=QUIET, timeout=300)
    assert trained.returncode == 0, trained.stderr
    result = subprocess.run([sys.executable, "-m", "aigc_keras.cli", "evaluate", str(moved), "--num", "8",
                             "--classifier", str(tmp_path / "clf")], capture_output=True, text=True,
                            env=QUIET, cwd=workspace, timeout=300)  # LiteRT draws, then the features refuse them
    assert result.returncode == 1
    assert result.stderr.splitlines() == [stderr_ends_in_one_error_line(result.stderr)]


@pytest.mark.slow
def test_a_full_disk_during_export_names_the_export_folder_and_leaves_nothing(workspace, tmp_path):
    import resource

    out = tmp_path / "full"
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # noqa: E731  (a 100 kB file)
    result = subprocess.run([sys.executable, "-m", "aigc_keras.cli", "export", "diffusion", "--model",
                             str(workspace / "models" / "cdiff"), "--out", str(out), "--tflite"],
                            capture_output=True, text=True, env=QUIET, preexec_fn=limit, timeout=300)
    assert result.returncode == 1
    assert stderr_ends_in_one_error_line(result.stderr) == f"error: cannot write {out}: File too large; nothing was " \
        "exported"
    assert not out.exists() and not stage_of(out)


@pytest.mark.slow
def test_a_size_past_a_ulimit_is_refused_before_it_is_allocated(workspace, tmp_path):
    import resource

    limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (8 * 10**9, 8 * 10**9))  # noqa: E731  (ulimit -v 8000000)
    result = subprocess.run([sys.executable, "-m", "aigc_keras.cli", "export", "gan", "--model",
                             str(workspace / "models" / "gan"), "--out", str(tmp_path / "big"), "--batch", "20000"],
                            capture_output=True, text=True, env=QUIET, preexec_fn=limit, timeout=300)
    assert result.returncode == 1, result.stderr
    line = stderr_ends_in_one_error_line(result.stderr)
    assert line.startswith("error: --batch 20000 needs about") and "(8.0 GB in all)" in line, line
    assert not (tmp_path / "big").exists() and not stage_of(tmp_path / "big")


def test_stop_strings_keep_every_character_and_read_escapes():
    from aigc_keras.text.cli import Escaped

    convert = Escaped().convert
    assert [convert(v, None, None) for v in ("é", "《静夜思》", "\\n\\n", "a\\tb\\\\", "\\x41\\u00e9")] == \
        ["é", "《静夜思》", "\n\n", "a\tb\\", "Aé"]
