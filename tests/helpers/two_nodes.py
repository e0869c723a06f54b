"""Two "nodes" on one machine (tests only): two torchrun launchers, or two srun-like processes.

Like real machines, they do not start in step: node 1 starts ``delay`` seconds after node 0.
Static rendezvous on 127.0.0.1 at a free port, CPU and gloo. Every wait is bounded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.tiny_runs import ROOT

# the settings every two-node run shares: one process per node, two nodes, DDP on CPU
TWO_NODES = ("--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.strategy", "ddp")


@dataclass
class Node:
    returncode: int
    output: str


def free_port() -> int:
    """A port nobody listens on now (the OS's choice; a clash is retried by the caller)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    for inherited in ("LIGHTNING_DL_RUN_DIR", "LIGHTNING_DL_CKPT_PATH", "WANDB_SERVICE", "RANK"):
        env.pop(inherited, None)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env | (extra or {})


def _wait(procs: list[subprocess.Popen], logs: list[Path], timeout: float) -> list[Node]:
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:  # a hang shows up as TimeoutExpired, with nothing left running
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [Node(p.returncode, log.read_text()) for p, log in zip(procs, logs, strict=True)]


def _start(
    cmds: list[list[str]], envs: list[dict], out: Path, delay: float, after: Path | None = None
) -> list:
    """Start node 0, then node 1 ``delay`` s later, or once ``after`` exists (at most 60 s)."""
    out.mkdir(parents=True, exist_ok=True)
    procs, logs = [], []
    for node, (cmd, env) in enumerate(zip(cmds, envs, strict=True)):
        if node:
            time.sleep(delay)
            waited = time.monotonic() + 60
            while after is not None and not after.exists() and time.monotonic() < waited:
                time.sleep(0.1)
        logs.append(out / f"node{node}.log")
        with open(logs[-1], "w") as log:
            procs.append(
                subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
    return [procs, logs]


def _port_clash(nodes: list[Node]) -> bool:
    return any("EADDRINUSE" in n.output or "address already in use" in n.output for n in nodes)


def torchrun_two_nodes(
    args: list[str], out: Path, delay: float = 1.0, timeout: float = 180,
    module: str = "lightning_dl.fit",
) -> list[Node]:  # fmt: skip
    """``torchrun --nnodes 2 --node_rank 0|1 -m MODULE ARGS``, node 1 ``delay`` s late."""
    for _ in range(3):
        port = free_port()
        cmds = [
            [
                sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                "--nproc_per_node", "1", "--node_rank", str(node), "--master_addr", "127.0.0.1",
                "--master_port", str(port), "-m", module, *args,
            ]
            for node in (0, 1)
        ]  # fmt: skip
        nodes = _wait(*_start(cmds, [_env(), _env()], out, delay), timeout=timeout)
        if not _port_clash(nodes):
            return nodes
    return nodes


def srun_two_tasks(
    args: list[str], out: Path, job_id: str, bin_dir: Path, delay: float = 1.0,
    timeout: float = 180, after: Path | None = None,
) -> list[Node]:  # fmt: skip
    """Two ``python -m lightning_dl.fit`` with the environment srun gives two one-task nodes.

    With ``after``, task 1 starts only once that file exists (e.g. rank 0's summary.json).
    """
    for _ in range(3):
        port = str(free_port())
        envs = [
            _env({
                "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "2",
                "SLURM_PROCID": str(rank), "SLURM_LOCALID": "0", "SLURM_NODEID": str(rank),
                "SLURM_JOB_ID": job_id, "SLURM_JOB_NAME": "lightning-dl",
                "SLURM_NODELIST": "127.0.0.1", "MASTER_PORT": port,
                "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            })
            for rank in (0, 1)
        ]  # fmt: skip
        cmds = [[sys.executable, "-m", "lightning_dl.fit", *args]] * 2
        nodes = _wait(*_start(cmds, envs, out, delay, after), timeout=timeout)
        if not _port_clash(nodes):
            return nodes
    return nodes
