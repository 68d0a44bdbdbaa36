"""Multi-worker training with real processes: two workers on loopback ports, for every family."""

import json
import re
import time

import numpy as np
import pytest
from conftest import make_images

from aigc_keras.families import config_class
from aigc_keras.training.local_cluster import cluster, run_workers
from aigc_keras.training.runner import train

CORPUS = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 20
FAMILIES = {
    "gan": {"data": "npz:tiny.npz", "epochs": 2, "batch_size": 16, "steps_per_epoch": 3, "latent_dim": 8,
            "base_filters": 8},
    "diffusion": {"data": "npz:tiny.npz", "epochs": 2, "batch_size": 16, "steps_per_epoch": 2, "timesteps": 20,
                  "base_filters": 8, "levels": 2},
    "text": {"data": "text:corpus.txt", "epochs": 2, "batch_size": 8, "steps_per_epoch": 3, "seq_len": 16,
             "units": 16, "layers": 1, "dropout": 0.0},
    "vae": {"data": "npz:tiny.npz", "epochs": 2, "batch_size": 16, "steps_per_epoch": 3, "latent_dim": 4,
            "base_filters": 8},
    "classifier": {"data": "npz:tiny.npz", "epochs": 2, "batch_size": 16, "steps_per_epoch": 3, "filters": 4,
                   "feature_dim": 8, "dropout": 0.0},
}


def argv(options):
    args = []
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def fingerprints(outputs):
    return [re.findall(r"weights fingerprint (\w+)", out) for out in outputs]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    images, labels = make_images()
    np.savez(tmp_path / "tiny.npz", images=images, labels=labels)
    (tmp_path / "corpus.txt").write_text(CORPUS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


pytestmark = [pytest.mark.slow, pytest.mark.multiworker]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_two_workers_train_in_sync_and_only_the_chief_writes(workdir, family):
    options = FAMILIES[family]
    results = run_workers(["train", family, *argv(options), "--strategy", "multiworker", "--model-dir", "model"],
                          workdir, timeout=240)
    outputs = [out for _, out in results]
    assert [code for code, _ in results] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    (chief,), (other,) = fingerprints(outputs)
    assert chief == other  # identical final weights on both workers
    written = {p.name for p in (workdir / "model").iterdir()}
    assert {"model.keras", "config.json", "history.json", "checkpoints", "logs"} <= written
    assert not any((workdir / "tmp1").iterdir()) and not any((workdir / "tmp0").iterdir())  # scratch removed
    assert {p.name for p in workdir.iterdir()} == {"corpus.txt", "model", "tmp0", "tmp1", "tiny.npz"}
    assert "saved model/model.keras" in outputs[0] and "saved" not in outputs[1]

    # The same global batches in one process give the same losses.
    single = train(config_class(family)(**options, strategy="default"), workdir / "single", verbose=0,
                   log=lambda _: None)
    assert single is not None
    want = json.loads((workdir / "single" / "history.json").read_text())
    got = json.loads((workdir / "model" / "history.json").read_text())
    assert len(got) == len(want) == options["epochs"]
    for a, b in zip(got, want):
        for key in b:
            if key not in ("epoch", "seconds"):
                assert a[key] == pytest.approx(b[key], rel=2e-3, abs=1e-4), (family, key, a, b)


def test_killed_worker_resumes_from_the_last_finished_epoch(workdir):
    args = ["train", "gan", *argv({**FAMILIES["gan"], "epochs": 3, "steps_per_epoch": 15}), "--strategy",
            "multiworker", "--model-dir", "model"]
    checkpoints = workdir / "model" / "checkpoints"
    with cluster(args, workdir, timeout=600) as workers:
        # Wait for the first epoch, however slow this machine is (the workers' own timeout bounds it).
        while not (checkpoints / "epoch-0001.weights.h5").exists():
            assert workers[0].process.poll() is None, "the chief ended before finishing epoch 1"
            time.sleep(0.05)
        workers[1].kill()  # during epoch 2; the chief, its peer gone, would wait for ever: killed on leaving
    (chief_code, _), = [workers[0].wait()]
    assert chief_code != 0
    done = sorted(p.name for p in checkpoints.iterdir() if p.name.startswith("epoch-"))
    assert done in (["epoch-0001.weights.h5"], ["epoch-0002.weights.h5"])

    results = run_workers(args, workdir, timeout=240)
    outputs = [out for _, out in results]
    assert [code for code, _ in results] == [0, 0], outputs[0][-2000:]
    finished = int(done[0][6:10])
    assert f"resuming model after epoch {finished} of 3" in outputs[0]
    assert [h["epoch"] for h in json.loads((workdir / "model" / "history.json").read_text())] == [1, 2, 3]
    (chief,), (other,) = fingerprints(outputs)
    assert chief == other
