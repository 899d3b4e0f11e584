"""Files that are either what was written or refused by name: each file's size and SHA-256 recorded when a folder is
written (a prepared corpus, a training checkpoint) and checked before it is read, so a truncated copy or a flipped
byte is named at load instead of surfacing as an Arrow or unpickling error, or as wrong numbers, hours later."""

import hashlib
from pathlib import Path


def file_records(folder: Path) -> dict[str, dict]:
    """{relative path: {"bytes", "sha256"}} for every file under `folder`."""
    return {path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": sha256(path)}
            for path in sorted(folder.rglob("*")) if path.is_file()}


def check_files(folder: Path, expected: dict[str, dict], what: str, fix: str, content: bool = True) -> None:
    """Every recorded file present, of its size and (with `content`) its SHA-256; else SystemExit naming the file,
    `what` the folder is and the `fix`."""
    for name, want in expected.items():
        path = folder / name
        if not path.is_file():
            raise SystemExit(f"{path} is missing from the {what}: {fix}")
        if path.stat().st_size != want["bytes"] or (content and sha256(path) != want["sha256"]):
            raise SystemExit(f"{path} is not the file that was written to the {what} ({path.stat().st_size:,} bytes, "
                             f"expected {want['bytes']:,} and SHA-256 {want['sha256'][:12]}...): it is truncated or "
                             f"corrupted. {fix}")


def sha256(path: Path) -> str:
    return feed(hashlib.sha256(), path).hexdigest()


def feed(digest, path: Path):
    """`digest` updated with the file's bytes, read in chunks (a checkpoint is GBs); returns `digest`."""
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return digest


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
