import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from aigc_keras.errors import AigcError
from aigc_keras.model_dir import ModelDir
from aigc_keras.training.callbacks import EpochCheckpoint
from aigc_keras.training.runner import train


class StopAfterEpoch(keras.callbacks.Callback):
    """Simulates a crash: raises when epoch `epoch` (0-based) begins."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated crash")


class RecordEpochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs, self.iterations_at_start = [], None

    def on_train_begin(self, logs=None):
        self.iterations_at_start = (int(self.model.g_optimizer.iterations.numpy()),
                                    int(self.model.d_optimizer.iterations.numpy()))

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def quiet(*_):
    pass


def test_train_writes_model_config_history_logs_and_samples(gan_config, tmp_path):
    config = gan_config()
    model = train(config, tmp_path / "gan", verbose=0, log=quiet)
    md = ModelDir(tmp_path / "gan")
    assert md.model.exists() and not list(md.path.glob(".*tmp*"))
    run = md.record()
    assert run["family"] == "gan" and run["config"] == config.to_dict()
    assert run["data"]["image_shape"] == [16, 16, 1] and run["data"]["class_names"] == ["0", "1"]
    assert [h["epoch"] for h in md.history()] == [1, 2]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "seconds"} <= set(md.history()[-1])
    assert sorted(p.name for p in md.samples.iterdir()) == ["epoch-0001.png", "epoch-0002.png"]
    png = tf.io.decode_png(md.samples.joinpath("epoch-0002.png").read_bytes()).numpy()
    assert png.shape == (8 * 18 + 2, 8 * 18 + 2, 1) and png.std() > 0  # 64 images of 16x16
    events = EventAccumulator(str(md.logs), size_guidance={"tensors": 0}).Reload()
    tags = events.Tags()["tensors"]
    assert {"epoch/d_loss", "epoch/g_loss", "epoch/d_real", "epoch/d_fake", "samples"} <= set(tags)
    assert [e.step for e in events.Tensors("epoch/d_loss")] == [1, 2]
    assert "_hparams_/session_start_info" in tags
    reloaded = md.load_model("gan")
    z = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    np.testing.assert_allclose(reloaded.draw(z), model.draw(z), atol=1e-6)


def test_interrupted_run_resumes_at_the_next_epoch_with_both_optimizers(gan_config, tmp_path):
    config = gan_config(epochs=3, steps_per_epoch=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(config, tmp_path / "gan", verbose=0, log=quiet, callbacks=[StopAfterEpoch(1)])
    md = ModelDir(tmp_path / "gan")
    assert not md.model.exists()
    assert [epochs for _, epochs in EpochCheckpoint.saved(md.checkpoints)] == [1]
    record = RecordEpochs()
    messages = []
    model = train(config, tmp_path / "gan", verbose=0, log=messages.append, callbacks=[record])
    assert record.epochs == [1, 2]
    assert record.iterations_at_start == (2, 2)  # the finished epoch's optimizer steps came back
    assert int(model.g_optimizer.iterations.numpy()) == 6 == int(model.d_optimizer.iterations.numpy())
    assert any("resuming" in m and "after epoch 1 of 3" in m for m in messages)
    assert [h["epoch"] for h in md.history()] == [1, 2, 3]
    assert [epochs for _, epochs in EpochCheckpoint.saved(md.checkpoints)] == [3]


def test_resumed_run_matches_an_uninterrupted_run(gan_config, tmp_path):
    config = gan_config(epochs=2, steps_per_epoch=2)
    straight = train(config, tmp_path / "a", verbose=0, log=quiet)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(config, tmp_path / "b", verbose=0, log=quiet, callbacks=[StopAfterEpoch(1)])
    resumed = train(config, tmp_path / "b", verbose=0, log=quiet)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_more_epochs_trains_on_and_same_epochs_does_nothing(gan_config, tmp_path):
    train(gan_config(epochs=1), tmp_path / "gan", verbose=0, log=quiet)
    messages = []
    train(gan_config(epochs=1), tmp_path / "gan", verbose=0, log=messages.append)
    assert "already trained for 1 epochs" in messages[0]
    record = RecordEpochs()
    train(gan_config(epochs=2), tmp_path / "gan", verbose=0, log=quiet, callbacks=[record])
    assert record.epochs == [1]


def test_refuses_to_mix_runs_and_overwrite_starts_again(gan_config, tmp_path):
    train(gan_config(epochs=1), tmp_path / "gan", verbose=0, log=quiet)
    with pytest.raises(AigcError, match=r"other options \(loss 'ns' -> 'hinge'\).*overwrite"):
        train(gan_config(epochs=1, loss="hinge"), tmp_path / "gan", verbose=0, log=quiet)
    record = RecordEpochs()
    train(gan_config(epochs=1, loss="hinge"), tmp_path / "gan", overwrite=True, verbose=0, log=quiet,
          callbacks=[record])
    assert record.epochs == [0] and ModelDir(tmp_path / "gan").config("gan").loss == "hinge"


def test_corrupt_checkpoint_is_a_clear_error(gan_config, tmp_path):
    train(gan_config(epochs=1), tmp_path / "gan", verbose=0, log=quiet)
    md = ModelDir(tmp_path / "gan")
    path, _ = EpochCheckpoint.saved(md.checkpoints)[-1]
    path.write_bytes(b"garbage")
    with pytest.raises(AigcError, match=r"epoch-0001\.weights\.h5 cannot be restored"):
        train(gan_config(epochs=2), tmp_path / "gan", verbose=0, log=quiet)
    assert md.model.exists()  # the finished model is untouched


def test_conditional_needs_labels(gan_config, tmp_path):
    np.savez(tmp_path / "unlabelled.npz", images=np.zeros((32, 16, 16), np.uint8))
    with pytest.raises(AigcError, match="^conditional needs labelled data"):
        train(gan_config(data=f"npz:{tmp_path / 'unlabelled.npz'}", conditional=True), tmp_path / "m",
              verbose=0, log=quiet)


def test_unset_conditional_follows_the_labels_and_is_recorded(gan_config, tmp_path):
    np.savez(tmp_path / "unlabelled.npz", images=np.zeros((32, 16, 16), np.uint8))
    for data, expected in ((gan_config().data, True), (f"npz:{tmp_path / 'unlabelled.npz'}", False)):
        folder = tmp_path / str(expected)
        model = train(gan_config(data=data, conditional=None, epochs=1, steps_per_epoch=1), folder, verbose=0,
                      log=quiet)
        assert model.conditional is expected and ModelDir(folder).record()["config"]["conditional"] is expected
        train(gan_config(data=data, conditional=None, epochs=2, steps_per_epoch=1), folder, verbose=0, log=quiet)
        assert [h["epoch"] for h in ModelDir(folder).history()] == [1, 2]  # the unset flag resumes its run


def test_batch_must_split_evenly_across_replicas(gan_config, tmp_path):
    with pytest.raises(AigcError, match="must divide evenly across 2 replicas"):
        train(gan_config(batch_size=15, strategy="mirrored"), tmp_path / "m", verbose=0, log=quiet)


def test_train_under_mirrored_strategy(gan_config, tmp_path):
    model = train(gan_config(strategy="mirrored", ema=True), tmp_path / "m", verbose=0, log=quiet)
    assert model.distribute_strategy.num_replicas_in_sync == 2
    assert json.loads((tmp_path / "m" / "config.json").read_text())["config"]["strategy"] == "mirrored"
    assert np.isfinite(ModelDir(tmp_path / "m").history()[-1]["g_loss"])


def test_a_terminal_gets_a_bar_per_epoch_whose_last_line_has_the_metrics(gan_config, tmp_path, capsys):
    train(gan_config(epochs=2, steps_per_epoch=3), tmp_path / "gan", verbose=1, log=quiet)
    lines = capsys.readouterr().out.splitlines()  # not a terminal here: one line per step
    epoch_1 = [line for line in lines if line.startswith("epoch 1/2: ")]
    assert [line.split(" (")[0] for line in epoch_1] == ["epoch 1/2: 33%", "epoch 1/2: 67%", "epoch 1/2: 100%"]
    assert "measuring" in epoch_1[0]  # no time left from the first step alone (its tracing)
    assert "left)" in epoch_1[1]
    assert "ms/step - " in epoch_1[-1] and "d_loss: " in epoch_1[-1] and "g_loss: " in epoch_1[-1]
    assert any(line.startswith("epoch 2/2: 100%") for line in lines)
