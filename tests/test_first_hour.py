"""A new user's first hour: `train NAME --quick` runs each family in about a minute into a folder of
its own, says plainly that it was a short run and what the full run is, and its `next:` command draws
from it; what it draws is already the family's (digits a classifier reads, text with a lower bits
per character than chance)."""

import json
import shlex
import subprocess
import sys

import numpy as np
import pytest

from aigc_keras.families import config_class


def aigc_keras(*args, cwd):
    result = subprocess.run([sys.executable, "-m", "aigc_keras.cli", *args], capture_output=True, text=True,
                            cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gan", "diffusion", "text", "vae"])
def test_the_one_minute_try_trains_says_it_was_short_and_its_next_command_draws(family, tmp_path):
    out = aigc_keras("train", family, "--quick", cwd=tmp_path).splitlines()
    folder = f"saved_models/{family}-quick"
    assert out[0].startswith(f"quick: a short run into {folder}") and "`aigc-keras train " in out[0]
    quick = config_class(family).quick()
    record = json.loads((tmp_path / folder / "config.json").read_text())
    assert all(record["config"][k] == v for k, v in config_class(family).QUICK.items())
    short = next(line for line in out if line.startswith("this was a quick run of "))
    assert short.startswith(f"this was a quick run of {quick.epochs * quick.steps_per_epoch:,} optimizer steps")
    # epochs x a pass over the default data: 60,000 digits / 32 or / 64, Shakespeare's windows / 64
    full_steps = {"gan": 6 * 1875, "diffusion": 6 * 937, "text": 20 * 156, "vae": 10 * 937}[family]
    assert f"`aigc-keras train {family}` ({full_steps:,} steps" in short
    assert not (tmp_path / "saved_models" / family).exists()  # the full run's folder is left for the full run

    next_command = shlex.split(out[-1].removeprefix("next: "))
    assert out[-1].startswith("next: aigc-keras sample ") and next_command[-1] == folder
    if family == "text":
        text = aigc_keras(*next_command[1:], "--length", "200", "--seed", "1", cwd=tmp_path)
        assert len(text) >= 200
        bpc = json.loads((tmp_path / folder / "history.json").read_text())[-1]["val_bpc"]
        assert bpc < 3.5, bpc  # a uniform guess over Shakespeare's 65 characters is 6.0
        return
    aigc_keras(*next_command[1:], "--num", "100", "--out", "quick.npz", cwd=tmp_path)
    images = np.load(tmp_path / "quick.npz")["images"]
    assert images.shape == (100, 28, 28, 1)
    if family in ("gan", "diffusion"):  # conditional: every class in turn; the shipped classifier reads them
        from aigc_keras.metrics.features import shipped_classifier

        read = shipped_classifier("mnist").predict(images.astype("float32") / 127.5 - 1, verbose=0).argmax(-1)
        agreement = float(np.mean(read == np.arange(100) % 10))
        assert agreement > {"gan": 0.7, "diffusion": 0.3}[family], agreement  # chance: 0.1
