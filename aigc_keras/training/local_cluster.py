"""A multi-worker cluster on one machine: N `aigc-keras` processes on loopback ports chosen at run
time, each with its own TF_CONFIG. The tests and `benchmarks/scaling.py` use it; it is also the
quickest way to try `--strategy multiworker` before using several machines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def free_ports(n: int) -> list[int]:
    """n loopback ports that are free now."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


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
        """SIGKILL the worker and `timeout` around it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def start_workers(args, cwd, n: int = 2, timeout: int = 300) -> list[Worker]:
    """N workers running `aigc-keras ARGS` in `cwd`, each with its own TF_CONFIG."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(n)]}
    return [Worker(args, cwd, cluster, index, timeout) for index in range(n)]


def run_workers(args, cwd, n: int = 2, timeout: int = 300) -> list[tuple[int, str]]:
    """[(exit code, output)] of N workers run to the end."""
    return [worker.wait() for worker in start_workers(args, cwd, n, timeout)]
