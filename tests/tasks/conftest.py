import os
import subprocess
import sys

from tests.export.conftest import tiny_translator  # noqa: F401  (the fixture, shared with the export tests)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_fresh(code, *args, timeout=300):
    """Runs `code` in a fresh Python with this checkout's zoo; returns its last stdout line."""
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]
