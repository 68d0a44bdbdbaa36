"""Pictures say how they were made: every PNG and GIF the tool writes carries its record, `aigc-keras
info PICTURE` reads it back, and the command it prints makes the same pixels again."""

import json
import os
import shlex

import numpy as np
import pytest
from conftest import run_cli as run
from PIL import Image

from aigc_keras import provenance

GAN_TINY = ["--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "2", "--latent-dim", "8",
            "--base-filters", "8", "--strategy", "default"]
DIFFUSION_TINY = ["--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "2", "--objective", "flow", "--patch",
                  "1", "--base-filters", "8", "--levels", "2", "--strategy", "default"]


def printed_command(capsys, picture) -> list[str]:
    code, out, _ = run(capsys, "info", picture)
    assert code == 0, out
    line = next(line for line in out.splitlines() if line.startswith("command:"))
    return shlex.split(line.removeprefix("command:").strip())


def test_a_png_says_how_it_was_made_and_its_command_makes_it_again(capsys, images_npz, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "train", "gan", "--data", images_npz, "--model-dir", "g", "--conditional", *GAN_TINY)
    assert code == 0
    code, _, err = run(capsys, "sample", "gan", "--model", "g", "--num", "12", "--seed", "5", "--label", "1",
                       "--out", "ones.png")
    assert code == 0, err
    with Image.open("ones.png") as picture:  # an independent PNG reader finds the chunks
        record = json.loads(picture.text["aigc-keras"])
        original = np.asarray(picture)
        assert provenance.SOURCE_TYPE in picture.text["XML:com.adobe.xmp"]
        assert picture.text["Software"] == record["generator"]
    assert record["generated"] is True and record["family"] == "gan" and record["model"] == "g"
    assert (record["seed"], record["num"], record["label"]) == (5, 12, 1)
    assert record["model_fingerprint"] == provenance.fingerprint(tmp_path / "g" / "model.keras")

    _, out, _ = run(capsys, "info", "ones.png")
    assert "that folder holds this model now" in out and "not a watermark" in out
    command = printed_command(capsys, "ones.png")
    assert command[:3] == ["aigc-keras", "sample", "gan"] and command[command.index("--out") + 1] == "ones.png"
    command[command.index("--out") + 1] = "again.png"
    code, _, _ = run(capsys, *command[1:])
    assert code == 0
    with Image.open("again.png") as again:
        np.testing.assert_array_equal(np.asarray(again), original)

    with Image.open(sorted((tmp_path / "g" / "samples").glob("*.png"))[-1]) as preview:  # training's previews too
        made = json.loads(preview.text["aigc-keras"])
    assert made["epoch"] == 1 and made["made"] == "training preview" and "command" not in made


def test_diffusion_pictures_and_gifs_record_the_sampler_they_settled_on(capsys, images_npz, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "train", "diffusion", "--data", images_npz, "--model-dir", "d", "--no-conditional",
               *DIFFUSION_TINY)[0] == 0
    code, _, _ = run(capsys, "sample", "diffusion", "--model", "d", "--num", "4", "--seed", "2", "--out", "d.png",
                     "--gif", "d.gif")
    assert code == 0
    for picture in ("d.png", "d.gif"):
        record = provenance.read(picture)
        assert (record["sampler"], record["steps"], record["seed"]) == ("heun", 12, 2), record  # the defaults, named
    command = printed_command(capsys, "d.gif")
    assert command[command.index("--sampler") + 1] == "heun" and command[command.index("--steps") + 1] == "12"
    command[command.index("--out") + 1], command[command.index("--gif") + 1] = "e.png", "e.gif"
    assert run(capsys, *command[1:])[0] == 0
    with Image.open("d.png") as first, Image.open("e.png") as second:
        np.testing.assert_array_equal(np.asarray(first), np.asarray(second))


@pytest.mark.parametrize("content, message", [
    (None, "carries no aigc-keras record"), (b"not a picture", "neither a PNG nor a GIF"),
    ("fifo", "is a FIFO (named pipe), not a file aigc-keras can read")])
def test_info_on_a_picture_without_a_record_is_one_line(capsys, tmp_path, content, message):
    path = tmp_path / "photo.png"
    if content is None:
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    elif content == "fifo":
        os.mkfifo(path)  # reading it would wait for a writer forever
    else:
        path.write_bytes(content)
    code, _, err = run(capsys, "info", path)
    assert code == 1 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
