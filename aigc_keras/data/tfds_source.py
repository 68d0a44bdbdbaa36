"""Loading one split of a TFDS dataset for a `tfds:NAME[:SPLIT]` spec, with one-line errors."""

from __future__ import annotations

import socket

from ..errors import AigcError, reason

DOWNLOAD_HOST = ("storage.googleapis.com", 443)  # where TFDS downloads prepared data and metadata


def network_available(timeout: float = 3.0) -> bool:
    """Whether TFDS's download host answers (offline, TFDS retries for minutes before failing)."""
    try:
        socket.create_connection(DOWNLOAD_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def load_tfds(spec: str, arg: str, feature_type, kind: str):
    """(dataset, info, key of the `feature_type` feature to use) of `tfds:NAME[:SPLIT]`.

    The local TFDS data dir is tried first; a download is attempted only when the network answers.
    """
    import tensorflow_datasets as tfds

    name, _, split = arg.partition(":")
    split = split or "train"
    try:
        try:
            ds, info = tfds.load(name, split=split, with_info=True, download=False)
        except AssertionError:  # "could not find data in <data dir>": not downloaded yet
            if not network_available():
                raise AigcError(
                    f"{spec}: {name!r} is not in the local TFDS data dir and the network is unreachable; "
                    "run once where online (or copy its prepared folder into ~/tensorflow_datasets)"
                ) from None
            ds, info = tfds.load(name, split=split, with_info=True)
    except tfds.core.registered.DatasetNotFoundError:
        raise AigcError(f"{spec}: TFDS has no dataset named {name!r}") from None
    except AigcError:
        raise
    except Exception as e:
        raise AigcError(f"{spec}: TFDS could not load {name!r} split {split!r}: {reason(e)}") from None
    keys = [k for k, f in info.features.items() if isinstance(f, feature_type)]
    if not keys:
        raise AigcError(f"{spec}: {name!r} has no {kind} feature")
    return ds, info, (kind if kind in keys else keys[0]), split
