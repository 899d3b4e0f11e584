"""One run per output folder: a second run started on a folder that a live run writes to refuses, instead of
interleaving its checkpoints with the first one's.

The lock is an OS file lock (flock, or msvcrt's on Windows) on `<output>/.briskbert.lock`, held by the run's main
process for as long as it lives: the OS drops it when the process ends in any way, kill -9 included, so a crashed run
never leaves a stale lock behind and `--resume` just works. The file records who holds it, for the refusal's message.
"""

import json
import os
import socket
import time
from pathlib import Path

LOCK_FILE = ".briskbert.lock"


class OutputLock:
    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / LOCK_FILE
        self._handle = None

    def acquire(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        if not _try_lock(handle):
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise SystemExit(
                f"Another run is writing to {self.path.parent} ({_describe(holder)}): wait for it to finish, stop it "
                f"(it saves a checkpoint on SIGTERM) and rerun with --resume, or choose another --output-dir."
            )
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the lock
            self._handle = None


def _try_lock(handle) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _describe(holder: str) -> str:
    try:
        record = json.loads(holder)
        return f"process {record['pid']} on {record['host']}, started {record['started']}"
    except (ValueError, KeyError, TypeError):
        return "its lock file says nothing more"
