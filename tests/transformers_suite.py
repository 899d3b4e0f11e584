"""transformers' own common model tests (`ModelTesterMixin`, `ConfigTester`), at the installed transformers version.

transformers does not install its tests; its source distribution on PyPI ships `tests/test_modeling_common.py` and
`tests/test_configuration_common.py`. `common_tests()` downloads that sdist once per version (pip, so a configured
index or mirror is used), keeps the two files in a cache outside the checkout, and imports them as one package
with `transformers_shims/`: stand-ins for the three sibling modules the sdist leaves out (see each shim).
"""

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import transformers

PACKAGE = "transformers_common_tests"
FILES = ("test_modeling_common.py", "test_configuration_common.py")
SHIMS = Path(__file__).with_name("transformers_shims")


class Unavailable(RuntimeError):
    """The sdist could not be fetched (no package index reachable)."""


def cache_root() -> Path:
    """Per transformers version and per version of our shims."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    shims = hashlib.sha256()
    for path in sorted(SHIMS.rglob("*.py")):
        shims.update(path.relative_to(SHIMS).as_posix().encode() + path.read_bytes())
    return base / "briskbert" / f"transformers-{transformers.__version__}-tests-{shims.hexdigest()[:10]}"


def _download_tests(destination: Path) -> None:
    version = transformers.__version__
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            # pip prepares an sdist's metadata; with the setuptools at hand ([dev]) that takes 5 s, not the 35 s of
            # building an isolated environment first
            [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "--no-build-isolation",
             "--quiet", "--dest", tmp, f"transformers=={version}"],
            capture_output=True, text=True, timeout=600,
        )
        archives = list(Path(tmp).glob("transformers-*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise Unavailable(f"pip could not download the transformers {version} sdist: {result.stderr[-500:]}")
        destination.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archives[0]) as archive:
            for name in FILES:
                member = archive.getmember(f"transformers-{version}/tests/{name}")
                (destination / name).write_bytes(archive.extractfile(member).read())


def common_tests():
    """(test_modeling_common, test_configuration_common), imported; raises Unavailable when offline."""
    root = cache_root()
    package = root / PACKAGE
    if not all((package / name).is_file() for name in FILES):
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{PACKAGE}.", dir=root))  # one per process: pytest workers race here
        _download_tests(staging)
        shutil.copytree(SHIMS, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        try:
            staging.rename(package)  # a cache is complete or absent, never half-written
        except OSError:  # another process finished first; its copy is the same
            shutil.rmtree(staging, ignore_errors=True)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return (
        importlib.import_module(f"{PACKAGE}.test_modeling_common"),
        importlib.import_module(f"{PACKAGE}.test_configuration_common"),
    )
