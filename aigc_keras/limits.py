"""How large a size that a user gives may be: the one place where counts, lengths, steps and seeds
are bounded by what this machine can hold (TensorFlow-free).

A size that does not fit is refused in one line, naming the flag and the largest value that would,
before anything is allocated: past the machine's memory, NumPy raises a MemoryError and the C++ of
TensorFlow or LiteRT aborts the whole process (std::bad_alloc) with no message at all.
"""

from __future__ import annotations

import os

from .errors import AigcError

MAX_SEED = 2**32 - 1  # what NumPy's, Keras's and TensorFlow's seeded generators all take
MAX_LABEL = 2**31 - 1  # labels cross into the graphs as int32
MEMORY_SHARE = 0.5  # of the machine's memory that one size may take (the rest: TensorFlow, the model)


def machine_bytes() -> int:
    """The memory this process may use: the physical memory, or less under `ulimit -v` / `ulimit -d`."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import resource

        for kind in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
            soft, _ = resource.getrlimit(kind)
            if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
                limits.append(soft)
    except (ImportError, ValueError, OSError):
        pass
    return min(limits) if limits else 8 * 2**30


def check_fits(flag: str, value: int, bytes_each: float, what: str = "") -> None:
    """Refuse `flag value` when `value` items of `bytes_each` bytes would take more than this machine's
    share (`MEMORY_SHARE` of `machine_bytes`)."""
    budget = machine_bytes() * MEMORY_SHARE
    need = value * max(bytes_each, 1.0)
    if need > budget:
        most = max(int(budget // max(bytes_each, 1.0)), 1)
        what = f" {what}" if what else ""
        raise AigcError(f"{flag} {value} needs about {_size(need)}{what}, more than this machine can hold "
                        f"({_size(machine_bytes())} in all): use at most {most:,}")


def _size(nbytes: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes / 1e3:.0f} kB"
