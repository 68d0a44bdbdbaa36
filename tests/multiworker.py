"""Launching real multi-worker training: N `aigc-keras` processes on loopback ports chosen at run time."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(args, cwd, n=2, timeout=300, ports=None):
    """Popen of `aigc-keras ARGS` per worker, each with its own TF_CONFIG, bounded by `timeout -k`
    (a worker whose peer never comes hangs and ignores SIGTERM)."""
    ports = ports or free_ports(n)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(n):
        scratch = Path(cwd) / f"tmp{index}"  # each worker's own temporary folder
        scratch.mkdir(exist_ok=True)
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(scratch)}
        procs.append(subprocess.Popen(
            ["timeout", "-k", "10", str(timeout), sys.executable, str(ROOT / "cli.py"), *args],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    return procs, ports


def run_workers(args, cwd, n=2, timeout=300):
    """[(exit code, output)] of N workers run to the end."""
    procs, _ = start_workers(args, cwd, n, timeout)
    return [(p.wait(), p.stdout.read()) for p in procs]


def kill(proc):
    """SIGKILL the worker under `timeout` (and `timeout` itself)."""
    import signal

    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    proc.kill()
    proc.wait()
