"""A few-step diffusion model from a trained one: `--distill-from` (reflow on the teacher's pairs)."""

import hashlib
import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_images, npz_spec, run_cli

import aigc_keras as ak
from aigc_keras.diffusion.reflow import pair_noise
from aigc_keras.errors import AigcError
from aigc_keras.export import export_trained
from aigc_keras.export.runtime import LiteRTModel
from aigc_keras.networks import weights_fingerprint

NETWORK = dict(base_filters=8, levels=1, patch=2, attention=False, ema=False)
RUN = dict(batch_size=32, strategy="default")


def halves(n=256, seed=0):
    """8x8 pictures of two kinds, the top or the bottom half lit at a random level: a teacher's ODE maps
    noise to one kind, and one Euler step of it to their blurred mean."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = np.zeros((n, 8, 8, 1), np.uint8)
    for i, label in enumerate(labels):
        images[i, slice(0, 4) if label == 0 else slice(4, 8)] = rng.integers(120, 255)
    return images, labels


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A flow trained 300 steps on `halves`: its folder and the data's spec."""
    root = tmp_path_factory.mktemp("reflow")
    spec = npz_spec(root / "halves.npz", *halves())
    config = ak.DiffusionConfig(data=spec, epochs=1, steps_per_epoch=300, conditional=False, **NETWORK, **RUN)
    ak.train(config, root / "teacher", verbose=0, log=lambda _: None)
    return root / "teacher", spec


def student_config(teacher_dir, **options):
    return ak.DiffusionConfig(distill_from=str(teacher_dir), **{**RUN, "epochs": 1, "steps_per_epoch": 20,
                                                                "distill_pairs": 256, **options})


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_student_records_its_teacher_resumes_on_its_kept_pairs_and_leaves_the_teacher_alone(teacher, tmp_path):
    teacher_dir, spec = teacher
    before = {p.name: digest(p) for p in teacher_dir.rglob("*") if p.is_file()}
    lines = []
    ak.train(student_config(teacher_dir), tmp_path / "student", verbose=0, log=lines.append)
    assert any(line.startswith(f"distill from {teacher_dir}: its networks (objective flow") for line in lines)
    assert f"distill: drawing 256 teacher samples (heun x12, 24 network calls each) into " \
           f"{tmp_path / 'student' / 'teacher-pairs.npz'}" in lines
    assert "budget: 1 epochs of 20 optimizer steps (20 in all)" in lines
    record = json.loads((tmp_path / "student" / "config.json").read_text())
    assert record["config"]["distill_from"] == str(teacher_dir) and record["data"]["spec"] == spec  # the teacher's
    assert record["base"]["fingerprint"] == weights_fingerprint(ak.load(teacher_dir))

    pairs = tmp_path / "student" / "teacher-pairs.npz"
    kept = digest(pairs)
    with np.load(pairs) as f:  # the teacher's own samples, from the noise the training pairs them with
        images, labels = f["images"], f["labels"]
    t = ak.load(teacher_dir)
    from aigc_keras.diffusion.pipeline import compiled_generate, resolve
    from aigc_keras.imaging import to_uint8
    z = pair_noise(np.arange(8), (8, 8, 1), 0)
    drawn = to_uint8(compiled_generate(t, resolve(t))(z, None, None, tf.constant(0, tf.int64)))
    np.testing.assert_array_equal(images[:8], drawn)
    assert images.shape == (256, 8, 8, 1) and np.all(labels == 0)

    lines.clear()
    ak.train(student_config(teacher_dir, epochs=2), tmp_path / "student", verbose=0, log=lines.append)
    assert not any("drawing" in line for line in lines) and digest(pairs) == kept
    assert "resuming" in " ".join(lines)
    assert {p.name: digest(p) for p in teacher_dir.rglob("*") if p.is_file()} == before

    student = ak.load(tmp_path / "student")
    assert student.distilled and student.generate(3, seed=1).shape == (3, 8, 8, 1)


def count_calls(model):
    """A counter of network evaluations in `model`'s sampling loops (a variable: it counts inside the graph)."""
    calls = tf.Variable(0)
    original = model.model_output

    def counted(*args, **kwargs):
        calls.assign_add(1)
        return original(*args, **kwargs)

    model.model_output = counted
    return calls


@pytest.mark.parametrize("steps", [None, 1, 2, 4])
def test_a_student_at_n_calls_makes_exactly_n_network_calls(teacher, tmp_path_factory, steps):
    folder = tmp_path_factory.getbasetemp() / "counted-student"
    if not (folder / "model.keras").exists():
        ak.train(student_config(teacher[0], steps_per_epoch=2), folder, verbose=0, log=lambda _: None)
    student = ak.load(folder)
    calls = count_calls(student)
    student.generate(5, seed=0, steps=steps)
    assert int(calls.numpy()) == (steps or 4)  # default: Euler in 4 calls


@pytest.mark.slow
def test_a_reflowed_student_at_one_call_is_closer_to_its_teachers_samples_than_the_teacher_at_one_call(
        teacher, tmp_path):
    teacher_dir, _ = teacher
    student = ak.train(student_config(teacher_dir, steps_per_epoch=1500, distill_pairs=4096),
                       tmp_path / "student", verbose=0, log=lambda _: None)
    t = ak.load(teacher_dir)
    reference = t.generate(200, seed=7).astype(float)  # 12 Heun steps, from noise no pair was drawn from

    def distance(images):
        return np.sqrt(np.mean((images.astype(float) - reference) ** 2))

    teacher_one = distance(t.generate(200, seed=7, sampler="euler", steps=1))
    student_one = distance(student.generate(200, seed=7, steps=1))
    assert student_one < 0.8 * teacher_one, (student_one, teacher_one)


@pytest.mark.slow
def test_a_students_export_is_its_four_call_sampler_in_both_litert_apis(teacher, tmp_path):
    ak.train(student_config(teacher[0]), tmp_path / "student", verbose=0, log=lambda _: None)
    meta = export_trained("diffusion", tmp_path / "student", tmp_path / "export", batch=2)
    assert (meta["sampler"], meta["steps"], meta["timesteps"]) == ("euler", 4, [1.0, 0.75, 0.5, 0.25])
    assert meta["runtimes"]["checked"] == ["interpreter", "compiled"]
    noise = np.random.default_rng(3).standard_normal((2, 8, 8, 1)).astype(np.float32)
    want = ak.load(tmp_path / "student").generate(2, seed=3)  # the same noise: NumPy's generator of seed 3
    for api in ("interpreter", "compiled"):
        got = LiteRTModel(tmp_path / "export" / "model.tflite", api).run("generate", noise=noise)["images"]
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_a_teacher_that_cannot_be_distilled_is_refused_in_one_line(teacher, tmp_path, capsys, diffusion_config):
    teacher_dir, spec = teacher
    ddpm = tmp_path / "ddpm"
    ak.train(diffusion_config(data=spec, patch=2, levels=1), ddpm, verbose=0, log=lambda _: None)
    with pytest.raises(AigcError, match=f"distill_from {ddpm} was trained with objective eps; reflow distils "
                                        r"a flow \(objective flow\)"):  # the library names options as Python does
        ak.train(student_config(ddpm), tmp_path / "s1", verbose=0, log=lambda _: None)

    other = npz_spec(tmp_path / "other.npz", *make_images(n=64, size=8))
    code, out, err = run_cli(capsys, "train", "diffusion", "--distill-from", teacher_dir, "--data", other,
                             "--model-dir", tmp_path / "s2", "--strategy", "default")
    assert code == 1 and err == (f"error: --distill-from {teacher_dir} learnt {spec} and {other} "
                                 "holds other images: a student learns its teacher's data (leave out --data)\n")
    np.savez(tmp_path / "big.npz", images=np.zeros((64, 16, 16, 1), np.uint8))
    code, _, err = run_cli(capsys, "train", "diffusion", "--distill-from", teacher_dir, "--data",
                           f"npz:{tmp_path / 'big.npz'}", "--model-dir", tmp_path / "s3", "--strategy", "default")
    assert code == 1 and "draws 8x8x1 images" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "train", "diffusion", "--distill-from", teacher_dir, "--conditional",
                           "--model-dir", tmp_path / "s4", "--strategy", "default")
    assert code == 1 and err == ("error: --conditional True: the model of --distill-from has False, and a run from a "
                                 "trained model keeps its networks (leave it out)\n")

    with pytest.raises(AigcError, match="distill_pairs applies to distill_from TEACHER"):
        ak.DiffusionConfig(distill_pairs=100)
    with pytest.raises(AigcError, match="distill_from starts from its teacher: leave out init_from"):
        ak.DiffusionConfig(distill_from="a", init_from="b")
    assert not any((tmp_path / name).exists() and any((tmp_path / name).iterdir()) for name in ("s2", "s3", "s4"))


def test_few_step_time_sampling_trains_only_at_the_times_euler_in_1_2_and_4_steps_evaluates(teacher):
    model = ak.load(teacher[0])
    model.time_sampling = "few-step"
    rng = np.random.default_rng(0)
    x0, eps = (tf.constant(rng.standard_normal((6, 2, 2, 1)), tf.float32) for _ in range(2))
    u = tf.constant([0.0, 0.1, 0.25, 0.3, 0.74, 0.99])
    x_t, t_network, target, weight = model._flow_example(x0, eps, u, tf.constant(0, tf.int64))
    t = np.array([0.25, 0.25, 0.25, 0.5, 0.75, 1.0], np.float32)  # by hand: 1, 3/4, 1/2, 1/4 only, never 0
    np.testing.assert_allclose(t_network.numpy(), 1000 * t)
    t4 = t.reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(x_t.numpy(), (1 - t4) * x0.numpy() + t4 * eps.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(target.numpy(), eps.numpy() - x0.numpy(), rtol=1e-6)
    assert ak.DiffusionConfig(distill_from="a").time_sampling == "few-step"  # a student's default
    assert ak.DiffusionConfig().time_sampling == "logit-normal"
