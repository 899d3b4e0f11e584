"""Deal independent runs out to the processes of `accelerate launch` / torchrun: each process runs its share,
one after the other, as ordinary single-process child commands on its own device.

    finetune = [sys.executable, "-m", "briskbert.scripts.finetune"]
    runs = [Run("sst2/seed42", "sst2 seed 42", [*finetune, ...], Path("runs/sst2/seed42")),
            Run("rte/seed42", "rte seed 42", [...], Path("runs/rte/seed42"), after=("mnli/seed42",)), ...]
    done = spread_runs(runs, status_dir)   # every process calls it; process 0 gets {key: {"results", "process", ...}}

No process group is kept: the processes share a launch id once at the start (a gloo broadcast, seconds), then
talk only through marker files under <status_dir>/<launch id>/ (a fresh folder per launch, so a marker left by
an earlier launch is never mistaken for this one's). A run's child gets the launcher's distributed variables
removed (it is not part of a process group) and, where there are GPUs, CUDA_VISIBLE_DEVICES set to the GPU of
its process's LOCAL_RANK; its output goes to <folder>/finetune.log, and a run succeeds when the child exits 0
with <folder>/results.json written. Runs are dealt round-robin in order, the runs that wait on others
(`after`) last; a process starts such a run once the runs it waits on are done. A failed run writes a failure
marker; every process stops starting runs when it sees one (process 0 also stops its running child), and
process 0 fails the command naming the run and its log. The other processes exit normally after their share,
so that the launcher does not stop process 0 before it reports. The markers are removed after a success and
kept after a failure. Several machines need <status_dir> on a shared filesystem.
"""

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

# set by torchrun / accelerate launch (and MPI launchers) for a process of a group; a child run must not inherit them
DISTRIBUTED_ENV = {
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_RANK",
    "ROLE_WORLD_SIZE", "ROLE_NAME", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_FSDP",
    "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_MEGATRON_LM", "ACCELERATE_USE_PARALLELISM_CONFIG",
    "ACCELERATE_CONFIG_DS_FIELDS", "PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_LOCAL_RANK",
    "MPI_LOCALRANKID",
}
DISTRIBUTED_PREFIXES = ("TORCHELASTIC_", "FSDP_", "ACCELERATE_DEEPSPEED_", "MEGATRON_LM_", "PARALLELISM_CONFIG_")
POLL_SECONDS = 1.0
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class Run:
    key: str  # unique; also names the run's marker file
    label: str  # for messages: "sst2 seed 42"
    command: list[str]
    folder: Path  # the child writes results.json here; its output goes to finetune.log
    after: tuple[str, ...] = field(default=())  # keys of runs that must be done before this one starts

    @property
    def log(self) -> Path:
        return self.folder / "finetune.log"


class RunFailed(Exception):
    pass


class WaitTimedOut(RunFailed):
    pass


def process_rank() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the launcher's variables; (0, 1, 0) under plain python."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not 0 <= rank < world:
        raise SystemExit(f"RANK={rank} is outside WORLD_SIZE={world}.")
    return rank, world, local


def deal(runs: Sequence[Run], world: int) -> dict[str, int]:
    """run key -> process: round-robin over the runs in order, those that wait on other runs after the rest
    (deeper waits later still), so no process sits waiting while it holds runs it could start."""
    keys = {run.key for run in runs}
    depth: dict[str, int] = {}
    for run in runs:  # a run's `after` names earlier runs
        unknown = [key for key in run.after if key not in depth]
        if unknown:
            raise ValueError(f"{run.key} waits on {unknown}, which are not earlier runs of {sorted(keys)}")
        depth[run.key] = 1 + max((depth[key] for key in run.after), default=-1)
    ordered = sorted(runs, key=lambda run: depth[run.key])  # stable: the given order within a depth
    return {run.key: i % world for i, run in enumerate(ordered)}


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES entries; [] without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return (listed or [str(i) for i in range(count)])[:count]


def child_env(env: dict[str, str], local_rank: int, gpus: Sequence[str]) -> dict[str, str]:
    """`env` without the launcher's distributed variables; with GPUs, only this process's GPU visible."""
    child = {k: v for k, v in env.items() if k not in DISTRIBUTED_ENV and not k.startswith(DISTRIBUTED_PREFIXES)}
    if gpus:
        if local_rank >= len(gpus):
            raise SystemExit(f"LOCAL_RANK {local_rank} has no GPU of its own: {len(gpus)} visible "
                             f"({','.join(gpus)}); launch at most {len(gpus)} processes per machine.")
        child["CUDA_VISIBLE_DEVICES"] = gpus[local_rank]
    return child


def launch_id(rank: int, world: int) -> str:
    """A fresh id, the same on every process of this launch: process 0's, broadcast once over gloo."""
    if world == 1:
        return uuid.uuid4().hex
    import torch.distributed as dist

    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        box = [uuid.uuid4().hex if rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return box[0]


def _write_json(path: Path, value: dict) -> None:
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=2))
    os.replace(temporary, path)  # readers never see half a file


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Board:
    """The launch's marker folder: <key>.json per finished run, {"status": "done" | "failed", ...}."""

    def __init__(self, folder: Path, wait_hours: float, poll_seconds: float):
        self.folder, self.timeout, self.poll = folder, wait_hours * 3600, poll_seconds
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.folder / (key.replace("/", "-") + ".json")

    def read(self, key: str) -> dict | None:
        path = self.path(key)
        return json.loads(path.read_text()) if path.is_file() else None

    def post(self, key: str, marker: dict) -> None:
        _write_json(self.path(key), marker)

    def first_failure(self) -> dict | None:
        for path in sorted(self.folder.glob("*.json")):
            marker = json.loads(path.read_text())
            if marker["status"] == "failed":
                return marker
        return None

    def wait(self, run: Run, process: int) -> dict:
        """The done marker of `run`; RunFailed when any run has failed, or when no run finished for the timeout."""
        start = time.time()
        while True:
            marker = self.read(run.key)
            if marker is not None and marker["status"] == "done":
                return marker
            failure = self.first_failure()
            if failure is not None:
                raise RunFailed(failure["message"])
            newest = max((p.stat().st_mtime for p in self.folder.glob("*.json")), default=start)
            if time.time() - max(start, newest) > self.timeout:
                raise WaitTimedOut(f"timed out: no run finished for {self.timeout / 3600:g} h while waiting for "
                                f"{run.label} (process {process}; log: {run.log}). Raise --wait-hours if single "
                                "runs take longer, or look at that process.")
            time.sleep(self.poll)


def _execute(run: Run, board: _Board, env: dict[str, str], rank: int) -> dict:
    run.folder.mkdir(parents=True, exist_ok=True)
    (run.folder / "results.json").unlink(missing_ok=True)  # an earlier launch's results are not this run's
    start = time.perf_counter()
    with open(run.log, "w") as log:
        child = subprocess.Popen(run.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            while child.poll() is None:
                failure = board.first_failure()
                if failure is not None:  # another run failed: the command fails, this run's result is moot
                    raise RunFailed(failure["message"])
                time.sleep(board.poll)
        finally:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
    seconds = time.perf_counter() - start
    results_file = run.folder / "results.json"
    if child.returncode != 0 or not results_file.is_file():
        why = f"exit code {child.returncode}" if child.returncode != 0 else f"exit code 0 but no {results_file}"
        message = (f"{run.label} failed on process {rank} ({why}); log: {run.log}\n"
                   f"--- last lines of {run.log} ---\n{_tail(run.log)}")
        board.post(run.key, {"status": "failed", "process": rank, "seconds": round(seconds, 2),
                             "log": str(run.log), "message": message})
        raise RunFailed(message)
    marker = {"status": "done", "process": rank, "seconds": round(seconds, 2), "log": str(run.log)}
    board.post(run.key, marker)
    return marker


def spread_runs(runs: Sequence[Run], status_dir: Path, wait_hours: float = 24.0, poll_seconds: float = POLL_SECONDS,
                echo: Callable[[str], None] = partial(print, flush=True)) -> dict[str, dict] | None:
    """Run this process's share of `runs`. Process 0 then waits for every run and returns {key: {"results":
    results.json, "process", "seconds", "log"}}; the other processes return None. A failed run (or a timeout)
    is a SystemExit on process 0 naming the run and its log."""
    rank, world, local_rank = process_rank()
    assignment = deal(runs, world)
    gpus = visible_gpus()
    env = child_env(dict(os.environ), local_rank, gpus)
    device = f"GPU {env['CUDA_VISIBLE_DEVICES']}" if gpus else "CPU"
    launch = launch_id(rank, world)
    board = _Board(Path(status_dir) / launch, wait_hours, poll_seconds)
    by_key = {run.key: run for run in runs}
    mine = [by_key[key] for key, process in assignment.items() if process == rank]  # in dealt order
    prefix = f"[process {rank}/{world}]"
    echo(f"{prefix} {len(mine)} of {len(runs)} runs on {device}: {', '.join(r.label for r in mine) or 'none'}")
    try:
        for run in mine:
            failure = board.first_failure()
            if failure is not None:
                raise RunFailed(failure["message"])
            for key in run.after:
                try:
                    board.wait(by_key[key], assignment[key])
                except WaitTimedOut as failure:  # tell process 0, which would otherwise wait on this run
                    board.post(run.key, {"status": "failed", "process": rank, "log": str(run.log),
                                         "message": f"{run.label} never started on process {rank}: {failure}"})
                    raise
            echo(f"{prefix} {run.label}: started (log: {run.log})")
            marker = _execute(run, board, env, rank)
            echo(f"{prefix} {run.label}: done in {marker['seconds']:.0f} s")
        if rank != 0:
            return None
        done = {}
        for run in runs:
            marker = board.wait(run, assignment[run.key])
            done[run.key] = {"results": json.loads((run.folder / "results.json").read_text()), **marker}
    except RunFailed as failure:
        if rank == 0:
            raise SystemExit(f"{prefix} the evaluation failed: {failure}") from None
        echo(f"{prefix} stopped: {str(failure).splitlines()[0]} (process 0 reports it and fails the command)")
        return None
    for path in board.folder.glob("*.json"):
        path.unlink()
    board.folder.rmdir()
    try:
        board.folder.parent.rmdir()  # the status folder, when no other launch is using it
    except OSError:
        pass
    return done
