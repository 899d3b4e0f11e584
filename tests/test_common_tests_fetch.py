"""The transformers common-tests module skips on a user's offline machine, but fails under CI, where a skip would
hide every common test behind "0 failed"."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def collect_offline(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    """Collect the module with an empty cache and no package index (nor any pip configuration that names one)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PIP_CONFIG_FILE": os.devnull,
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": "", "PIP_NO_CACHE_DIR": "1"}
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
                           str(TESTS / "test_transformers_common.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_ci_fails_when_the_common_tests_cannot_be_fetched(tmp_path):
    result = collect_offline(tmp_path, "true")
    assert result.returncode == 2, result.stdout[-2000:]  # pytest's "collection failed"
    assert "common tests must run in CI" in result.stdout + result.stderr


def test_a_users_offline_machine_skips_them_with_the_reason(tmp_path):
    result = collect_offline(tmp_path, None)
    assert result.returncode == 5, result.stdout[-2000:] + result.stderr[-2000:]  # pytest's "no tests ran"
    assert "transformers' common tests are not at hand" in result.stdout and "1 skipped" in result.stdout
