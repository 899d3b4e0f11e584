"""The JSON record every benchmark comparison writes: {"meta": {"command": ..., ...}, "results": [...], ...}."""

import json
import sys
from pathlib import Path


def write_record(output: str | None, default: str, meta: dict, results: list, **sections) -> dict:
    """Write the record to `output` (or `default`), with the command line that produced it first in its meta;
    returns the record."""
    path = Path(output or default)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"meta": {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), **meta}, "results": results,
              **sections}
    path.write_text(json.dumps(record, indent=2))
    print(f"JSON written to {path}")
    return record
