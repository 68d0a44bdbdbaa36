"""Starting from a trained model: `--init-from` and LoRA adapters (`--lora-rank`)."""

import hashlib
import json
import shutil

import keras
import numpy as np
import pytest
from conftest import make_images, run_cli

import aigc_keras as ak
from aigc_keras import lora

GAN = dict(batch_size=16, steps_per_epoch=3, latent_dim=8, base_filters=8, strategy="default", augment=False)


def checksums(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def npz(path, n=96, size=16, channels=1, classes=2, seed=0):
    images, labels = make_images(n=n, size=size, channels=channels, seed=seed)
    np.savez(path, images=images, labels=labels if classes == 2 else np.arange(n) % classes)
    return f"npz:{path}"


@pytest.fixture(scope="module")
def base_gan(tmp_path_factory):
    """A tiny conditional GAN trained on 2 classes, and the spec of other data of the same size."""
    root = tmp_path_factory.mktemp("base")
    spec = npz(root / "base.npz")
    ak.train(ak.GANConfig(data=spec, epochs=1, conditional=True, **GAN), root / "base", verbose=0, log=lambda _: None)
    return root


def weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def weights_of(network):
    return [keras.ops.convert_to_numpy(w) for w in network.trainable_weights]


def test_lora_changes_only_the_adapted_kernels_by_their_adapter_and_the_base_stays_bit_identical(base_gan, tmp_path):
    before = checksums(base_gan / "base")
    spec = npz(tmp_path / "new.npz", seed=1)
    lines = []
    config = ak.GANConfig(data=spec, epochs=2, init_from=str(base_gan / "base"), lora_rank=2, lora_alpha=4.0, **GAN)
    ak.train(config, tmp_path / "mine", verbose=0, log=lines.append)
    assert lines[0].startswith(f"init from {base_gan / 'base'}: its networks (latent_dim 8, base_filters 8") and \
        "only LoRA adapters of rank 2 (alpha 4) train" in lines[0]
    base, mine = ak.load(base_gan / "base"), ak.load(tmp_path / "mine")
    attrs, arrays = lora.read_adapter(tmp_path / "mine" / "adapter.lora.h5")
    assert attrs["rank"] == 2 and attrs["alpha"] == 4.0 and attrs["base"]["path"] == str((base_gan / "base").resolve())
    layers = lora.adaptable(base)
    assert len(layers) == len(arrays["adapters"]) and arrays["whole"] == []
    # Dense and Conv2D layers of the generator, its EMA and the discriminator; no Conv2DTranspose (Keras has no LoRA)
    assert {type(layer).__name__ for layer in layers} == {"Dense", "Conv2D", "Embedding"}
    kernel_index = {id(v): i for i, v in enumerate(base.weights)}
    expected = weights(base)
    for layer, (a, b) in zip(layers, arrays["adapters"]):
        (kernel,) = [v for v in layer.weights if v.name in ("kernel", "embeddings")]
        delta = (4.0 / 2) * np.matmul(a, b).reshape(kernel.shape)  # numpy's product, not Keras'
        assert np.abs(delta).max() > 0  # trained
        expected[kernel_index[id(kernel)]] = expected[kernel_index[id(kernel)]] + delta
    for got, want, variable in zip(weights(mine), expected, base.weights):
        adapted = any(variable is v for layer in layers for v in layer.weights if v.name in ("kernel", "embeddings"))
        if adapted:
            np.testing.assert_allclose(got, want, atol=1e-6)
        else:
            np.testing.assert_array_equal(got, want, err_msg=variable.path)  # bit for bit: frozen
    assert checksums(base_gan / "base") == before  # the source folder is never written
    trained = {id(layer) for network in (base.generator, base.discriminator) for layer in lora.layers_of(network)}
    size = sum(a.size + b.size for layer, (a, b) in zip(layers, arrays["adapters"]) if id(layer) in trained)
    assert f"weights: {size:,} of " in "\n".join(lines)  # the EMA generator's adapters follow, not train


def test_a_lora_run_resumes_with_its_adapters_as_they_were(base_gan, tmp_path):
    spec = npz(tmp_path / "new.npz", seed=1)
    config = dict(data=spec, init_from=str(base_gan / "base"), lora_rank=2, **GAN)
    ak.train(ak.GANConfig(epochs=2, **config), tmp_path / "straight", verbose=0, log=lambda _: None)
    ak.train(ak.GANConfig(epochs=1, **config), tmp_path / "resumed", verbose=0, log=lambda _: None)
    lines = []
    ak.train(ak.GANConfig(epochs=2, **config), tmp_path / "resumed", verbose=0, log=lines.append)
    assert any(line.startswith("resuming") for line in lines)
    for a, b in zip(weights(ak.load(tmp_path / "straight")), weights(ak.load(tmp_path / "resumed"))):
        np.testing.assert_allclose(a, b, atol=1e-6)  # a checkpoint that zeroed the adapters would stall them


def test_a_run_resumes_only_on_the_base_it_started_from(base_gan, tmp_path, capsys):
    base = tmp_path / "base"
    shutil.copytree(base_gan / "base", base)
    tiny = ["--batch-size", "16", "--steps-per-epoch", "1", "--latent-dim", "8", "--base-filters", "8",
            "--strategy", "default", "--no-augment"]
    args = ["train", "gan", "--data", npz(tmp_path / "new.npz", seed=1), "--init-from", base, "--lora-rank", "2",
            "--model-dir", tmp_path / "mine", *tiny]
    assert run_cli(capsys, *args, "--epochs", "1")[0] == 0
    ak.train(ak.GANConfig(data=npz(tmp_path / "other.npz", seed=2), epochs=1, conditional=True, seed=9, **GAN),
             base, overwrite=True, verbose=0, log=lambda _: None)  # another model in the base's place
    before = checksums(tmp_path / "mine")
    code, _, err = run_cli(capsys, *args, "--epochs", "2")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: --init-from {base} is not the model this run in {tmp_path / 'mine'} started from")
    assert checksums(tmp_path / "mine") == before


def test_the_folder_rebuilt_from_base_and_adapter_draws_what_the_merged_model_does(base_gan, tmp_path, capsys):
    spec = npz(tmp_path / "new.npz", seed=1)
    folder = tmp_path / "mine"
    ak.train(ak.GANConfig(data=spec, epochs=1, init_from=str(base_gan / "base"), lora_rank=2, **GAN), folder,
             verbose=0, log=lambda _: None)
    merged = ak.load(folder).generate(8, seed=3)
    shutil.copytree(folder, tmp_path / "adapter-only")
    (tmp_path / "adapter-only" / "model.keras").unlink()
    rebuilt = ak.load(tmp_path / "adapter-only").generate(8, seed=3)
    assert np.abs(merged.astype(int) - rebuilt.astype(int)).max() <= 1
    assert not np.array_equal(ak.load(base_gan / "base").generate(8, seed=3), merged)
    # another base in its place: refused in one line, by the CLI too
    other = tmp_path / "other-base"
    ak.train(ak.GANConfig(data=spec, epochs=1, conditional=True, seed=5, **GAN), other, verbose=0, log=lambda _: None)
    record = json.loads((tmp_path / "adapter-only" / "config.json").read_text())
    record["base"]["path"] = str(other)
    (tmp_path / "adapter-only" / "config.json").write_text(json.dumps(record))
    adapter = tmp_path / "adapter-only" / "adapter.lora.h5"
    code, _, err = run_cli(capsys, "sample", "gan", "--model", tmp_path / "adapter-only", "--out",
                           tmp_path / "s.png")
    assert code == 1 and err.strip().splitlines()[-1].startswith(f"error: {adapter} adapts the model of weights "
                                                                 "fingerprint") and "Traceback" not in err


def test_a_new_number_of_classes_gets_new_label_layers_trained_in_full(base_gan, tmp_path):
    spec = npz(tmp_path / "three.npz", classes=3)
    lines = []
    ak.train(ak.GANConfig(data=spec, epochs=1, init_from=str(base_gan / "base"), lora_rank=2, **GAN),
             tmp_path / "mine", verbose=0, log=lines.append)
    assert f"init from {base_gan / 'base'}: 3 classes here, 2 in the base: new label layers, trained in full" in lines
    _, arrays = lora.read_adapter(tmp_path / "mine" / "adapter.lora.h5")
    # the label embeddings of the generator, its EMA copy and the projection discriminator
    assert sorted(w[0].shape[0] for w in arrays["whole"]) == [3, 3, 3]
    assert ak.load(tmp_path / "mine").generate(6, seed=0).shape == (6, 16, 16, 1)


def test_full_fine_tuning_starts_from_the_base_weights(base_gan, tmp_path):
    spec = npz(tmp_path / "new.npz", seed=1)
    config = ak.GANConfig(data=spec, epochs=1, steps_per_epoch=1, init_from=str(base_gan / "base"),
                          **{k: v for k, v in GAN.items() if k != "steps_per_epoch"})
    model = ak.train(config, tmp_path / "mine", verbose=0, log=lambda _: None)
    assert int(model.g_optimizer.iterations.numpy()) == 1  # a fresh optimizer
    base = ak.load(base_gan / "base")
    # Adam's first step moves each weight by the learning rate times the sign of its gradient (its
    # m / sqrt(v) is +-1), so the fine-tuned weights are within 1e-3 of the base's, and some that far
    steps = [np.abs(a - b).max() for a, b in zip(weights_of(model.generator), weights_of(base.generator))]
    assert max(steps) <= 1e-3 * 1.001 and min(steps) > 0.9e-3
    assert json.loads((tmp_path / "mine" / "config.json").read_text())["base"]["path"] == \
        str((base_gan / "base").resolve())
    assert not (tmp_path / "mine" / "adapter.lora.h5").exists()


def test_every_mismatch_gets_one_line(base_gan, tmp_path, capsys):
    base = base_gan / "base"
    tiny = ["--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "1", "--strategy", "default"]
    np.savez(tmp_path / "unlabelled.npz", images=make_images()[0])
    unlabelled = f"npz:{tmp_path / 'unlabelled.npz'}"
    cases = {
        "holds 32x32x3 ones: a run from a trained model keeps its image size and channels":
            ["train", "gan", "--data", npz(tmp_path / "rgb.npz", size=32, channels=3), "--init-from", base],
        "holds a gan model, not a vae model": ["train", "vae", "--data", npz(tmp_path / "a.npz"), "--init-from", base],
        "is the folder this run trains into": ["train", "gan", "--data", npz(tmp_path / "b.npz"), "--init-from", base,
                                               "--model-dir", base],
        "--lora-rank adapts a trained model: add --init-from MODEL_DIR": ["train", "gan", "--lora-rank", "4"],
        "--base-filters 16: the model of --init-from has 8": ["train", "gan", "--data", npz(tmp_path / "c.npz"),
                                                              "--init-from", base, "--base-filters", "16"],
        "does not exist": ["train", "gan", "--init-from", tmp_path / "nowhere"],
        "the class-conditional model of --init-from needs labelled data": [
            "train", "gan", "--data", unlabelled, "--init-from", base],
        "--lora-alpha applies to --lora-rank R": ["train", "gan", "--lora-alpha", "8"],
    }
    before = checksums(base)
    for message, args in cases.items():
        code, _, err = run_cli(capsys, *args, *tiny, *([] if "--model-dir" in args else
                                                         ["--model-dir", tmp_path / "out"]))
        lines = err.strip().splitlines()
        assert code != 0 and lines[-1].startswith("error: ") and message in lines[-1], (message, err)
        assert "Traceback" not in err
    assert checksums(base) == before


def test_a_char_model_says_which_characters_its_base_lacks_and_never_draws_them(tmp_path):
    (tmp_path / "en.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
    (tmp_path / "zh.txt").write_text("床前明月光，疑是地上霜。the fox " * 60)
    options = dict(epochs=1, batch_size=8, steps_per_epoch=2, seq_len=16, units=16, layers=1, embedding_dim=8,
                   warmup_steps=1, strategy="default")
    ak.train(ak.TextConfig(data=f"text:{tmp_path / 'en.txt'}", **options), tmp_path / "base", verbose=0,
             log=lambda _: None)
    lines = []
    model = ak.train(ak.TextConfig(data=f"text:{tmp_path / 'zh.txt'}", init_from=str(tmp_path / "base"),
                                   lora_rank=2, **options), tmp_path / "mine", verbose=0, log=lines.append)
    (note,) = [line for line in lines if "not in the base's vocabulary" in line]
    assert note.startswith(f"init from {tmp_path / 'base'}: 12 distinct characters of text:")
    assert "e.g. 。上光前地床明是月疑:" in note
    assert model.tokenizer == ak.load(tmp_path / "base").tokenizer  # the base's ids
    assert "\ufffd" not in model.generate("the ", 200, temperature=1.5, seed=0)


@pytest.mark.slow
def test_a_lora_diffusion_model_trains_resumes_samples_evaluates_and_exports_merged(tmp_path, capsys):
    """The U-Net's convolutions, dense layers and attention projections (EinsumDense) take adapters;
    sample, evaluate and export take the folder; the export is an ordinary one, parity-gated in both
    LiteRT APIs."""
    from aigc_keras.export.runtime import LiteRTModel

    tiny = ["--batch-size", "16", "--steps-per-epoch", "2", "--strategy", "default"]
    base, mine, out = tmp_path / "base", tmp_path / "mine", tmp_path / "export"
    code, _, err = run_cli(capsys, "train", "diffusion", "--data", npz(tmp_path / "a.npz"), "--model-dir", base,
                           "--epochs", "1", "--base-filters", "8", *tiny)
    assert code == 0, err
    new = npz(tmp_path / "b.npz", seed=3)
    for epochs in ("1", "2"):  # the second resumes
        code, out_text, err = run_cli(capsys, "train", "diffusion", "--data", new, "--init-from", base,
                                      "--lora-rank", "4", "--model-dir", mine, "--epochs", epochs, *tiny)
        assert code == 0, err
    assert "resuming" in out_text and "adapter" in out_text
    layers = {type(layer).__name__ for layer in lora.adaptable(ak.load(base))}
    assert {"Conv2D", "Dense", "EinsumDense", "Embedding"} <= layers
    adapter, model = (mine / "adapter.lora.h5").stat().st_size, (mine / "model.keras").stat().st_size
    assert adapter < 0.5 * model
    code, _, err = run_cli(capsys, "sample", "diffusion", "--model", mine, "--steps", "2", "--num", "4",
                           "--out", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").stat().st_size > 0, err
    code, _, err = run_cli(capsys, "evaluate", mine, "--num", "8", "--subset-size", "4", "--steps", "2")
    assert code == 0, err
    code, _, err = run_cli(capsys, "export", "diffusion", "--model", mine, "--out", out, "--steps", "2", "--tflite")
    assert code == 0, err
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["runtimes"]["checked"] == ["interpreter", "compiled"]
    assert metadata["base"]["path"] == str(base.resolve()) and metadata["adapter"]["rank"] == 4
    assert metadata["adapter"]["bytes"] == adapter and metadata["adapter"]["merged"]
    inputs = {name: np.zeros(spec["shape"], spec["dtype"]) for name, spec in
              metadata["signatures"]["generate"]["inputs"].items()}
    for api in ("interpreter", "compiled"):
        assert LiteRTModel(out / "model.tflite", api).run("generate", **inputs)["images"].dtype == np.uint8
