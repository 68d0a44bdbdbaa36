import re

import pytest

from aigc_keras.errors import AigcError, naming_flags
from aigc_keras.gan.config import GANConfig


def test_defaults_validate_and_resolve_n_critic():
    assert GANConfig().n_critic == 1
    assert GANConfig(loss="wgan-gp").n_critic == 5
    assert GANConfig(loss="wgan-gp", n_critic=2).n_critic == 2


@pytest.mark.parametrize(
    "options, message",
    [
        ({"loss": "lsgan"}, "loss must be one of ns, hinge, wgan-gp"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"batch_size": 2.5}, "batch_size must be int"),
        ({"label_smoothing": 0.7}, "label_smoothing must be <= 0.5"),
        ({"label_smoothing": 0.1, "loss": "hinge"}, "label_smoothing applies to loss ns only"),
        ({"strategy": "tpu"}, "strategy must be one of"),
        ({"conditional": 1}, "conditional must be bool"),
    ],
)
def test_bad_options_name_the_argument_in_python_and_the_flag_in_a_command(options, message):
    with pytest.raises(ValueError, match=f"^{message}"):  # an ordinary exception, speaking of arguments
        GANConfig(**options)
    flags = re.sub(r"\b(loss|epochs|batch_size|label_smoothing|strategy|conditional)\b",
                   lambda m: "--" + m.group(1).replace("_", "-"), message)
    with naming_flags(), pytest.raises(AigcError, match=f"^{flags}"):
        GANConfig(**options)


def test_round_trip_and_unknown_keys():
    config = GANConfig(loss="hinge", ema=True, epochs=3)
    assert GANConfig.from_dict(config.to_dict()) == config
    with pytest.raises(AigcError, match="unknown gan option"):
        GANConfig.from_dict({**config.to_dict(), "dropout": 0.1})


def test_int_is_accepted_for_float_fields():
    assert GANConfig(gp_weight=5).gp_weight == 5.0
    assert isinstance(GANConfig(gp_weight=5).gp_weight, float)


def test_resume_conflicts_ignore_resumable_fields():
    before = GANConfig(epochs=5)
    assert GANConfig(epochs=10, strategy="mirrored").resume_conflicts(before) == []
    conflicts = GANConfig(epochs=10, loss="hinge").resume_conflicts(before)
    assert conflicts == ["loss 'ns' -> 'hinge'"]


def test_hparams_are_tensorboard_scalars():
    hparams = GANConfig().hparams()
    assert hparams["steps_per_epoch"] == "none"
    assert all(isinstance(v, (bool, int, float, str)) for v in hparams.values())
