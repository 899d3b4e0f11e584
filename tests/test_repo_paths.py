"""Paths a reader follows exist: docs, docstrings and recipes name files as the clone has them (`trainers/...`), not
as the installed package lays them out (the `briskbert` folder of a wheel, which in a checkout holds only the
package's `__init__.py`)."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# the one file that names paths inside a built wheel, on purpose
WHEEL_PATHS = {"tests/test_wheel.py"}
PACKAGE_PATH = re.compile(r"(?<![\w./-])briskbert/[\w-]+/[\w./-]*")


def tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"not a git checkout ({error}): the tracked files can't be listed")
    files = []
    for name in listed.splitlines():
        path = REPO / name
        if name in WHEEL_PATHS or not path.is_file() or path.suffix in {".png", ".gz", ".safetensors", ".bin"}:
            continue
        files.append(path)
    return files


def test_every_briskbert_folder_path_in_tracked_text_exists_in_the_checkout():
    missing = []
    for path in tracked_text_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for line_number, line in enumerate(text.splitlines(), 1):
            for match in PACKAGE_PATH.finditer(line):
                named = match.group(0).rstrip(".")
                if not (REPO / named).exists():
                    missing.append(f"{path.relative_to(REPO)}:{line_number}: {named}")
    assert not missing, ("paths that exist in no checkout (name them as the clone has them, e.g. "
                         "trainers/pretraining/loop.py):\n" + "\n".join(missing))


def test_readme_is_what_and_how_and_no_user_command_needs_the_development_data():
    """The README stays a page of what, why and how (≤ 12 KB; figures live in docs/), and no command or doc a user
    reads points at the project's development data (`../shared`), which no user has; measurement records (JSON)
    keep the command that made them."""
    readme = REPO / "README.md"
    assert readme.stat().st_size <= 12_288, f"README.md is {readme.stat().st_size} bytes: move detail to docs/"
    readers = [readme, REPO / "Makefile", *sorted((REPO / "docs").glob("*.md")),
               *sorted((REPO / "hub_configs").rglob("*.yaml")), *sorted((REPO / "scripts").glob("*"))]
    pointing = [f"{path.relative_to(REPO)}:{number}" for path in readers if path.is_file()
                for number, line in enumerate(path.read_text().splitlines(), 1) if "shared/" in line]
    assert not pointing, f"these point users at ../shared, which they don't have: {pointing}"
