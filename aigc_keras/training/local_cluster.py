"""A multi-worker cluster on one machine: N `aigc-keras` processes on loopback ports chosen at run
time, each with its own TF_CONFIG. The tests and `benchmarks/scaling.py` use it; it is also the
quickest way to try `--strategy multiworker` before using several machines."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def reserved_ports(n: int) -> list[int]:
    """n loopback ports for a cluster, chosen so that nothing else is handed them meanwhile.

    Ports a process asks the kernel for (bind to port 0, outgoing connections) come from the
    ephemeral range; these come from below it, where the kernel hands out nothing, are checked free
    by binding them, and are never handed out twice by this process.
    """
    low, _ = _ephemeral_range()
    candidates = list(range(max(1024, low - 20000), low))
    random.Random(os.getpid()).shuffle(candidates)
    ports = []
    for port in candidates:
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
        _handed_out.add(port)
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError(f"no {n} free ports below the ephemeral range ({low})")


class Worker:
    """One `aigc-keras` process of the cluster; its output goes to a temporary file."""

    def __init__(self, args, cwd, cluster: dict, index: int, timeout: int):
        scratch = Path(cwd) / f"tmp{index}"  # the worker's own temporary folder
        scratch.mkdir(exist_ok=True)
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(scratch)}
        self.log = tempfile.TemporaryFile("w+")
        # `timeout -k`: a worker whose peer never comes (or died) waits for ever and ignores SIGTERM.
        self.process = subprocess.Popen(
            ["timeout", "-k", "10", str(timeout), sys.executable, "-m", "aigc_keras.cli", *args],
            cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )

    def wait(self) -> tuple[int, str]:
        """(exit code, output) once the worker has ended."""
        code = self.process.wait()
        self.log.seek(0)
        return code, self.log.read()

    def kill(self) -> None:
        """SIGKILL the worker and `timeout` around it (nothing if it has ended)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@contextlib.contextmanager
def cluster(args, cwd, n: int = 2, timeout: int = 300):
    """N workers running `aigc-keras ARGS` in `cwd`, each with its own TF_CONFIG (`reserved_ports`);
    whatever happens in the block, every worker is killed when it ends."""
    spec = {"worker": [f"127.0.0.1:{port}" for port in reserved_ports(n)]}
    workers = []
    try:
        for index in range(n):
            workers.append(Worker(args, cwd, spec, index, timeout))
        yield workers
    finally:
        for worker in workers:
            worker.kill()


def run_workers(args, cwd, n: int = 2, timeout: int = 300) -> list[tuple[int, str]]:
    """[(exit code, output)] of N workers run to the end."""
    with cluster(args, cwd, n, timeout) as workers:
        return [worker.wait() for worker in workers]
