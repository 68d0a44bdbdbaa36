"""Loading one split of a TFDS dataset for a `tfds:NAME[:SPLIT]` spec, with one-line errors."""

from __future__ import annotations

from ..errors import AigcError, reason


def load_tfds(spec: str, arg: str, feature_type, kind: str):
    """(dataset, info, key of the `feature_type` feature to use) of `tfds:NAME[:SPLIT]`."""
    import tensorflow_datasets as tfds

    name, _, split = arg.partition(":")
    split = split or "train"
    try:
        ds, info = tfds.load(name, split=split, with_info=True)
    except tfds.core.registered.DatasetNotFoundError:
        raise AigcError(f"{spec}: TFDS has no dataset named {name!r}") from None
    except Exception as e:
        raise AigcError(f"{spec}: TFDS could not load {name!r} split {split!r}: {reason(e)}") from None
    keys = [k for k, f in info.features.items() if isinstance(f, feature_type)]
    if not keys:
        raise AigcError(f"{spec}: {name!r} has no {kind} feature")
    return ds, info, (kind if kind in keys else keys[0]), split
