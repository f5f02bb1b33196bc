"""pyproject.toml's requires-python against the installed stack's own metadata, and the CI script."""

from __future__ import annotations

import pathlib
import re
import tomllib
from importlib import metadata

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _minimum(spec: str) -> tuple[int, ...]:
    """The lower bound of a Requires-Python specifier, e.g. '>=3.11' -> (3, 11); () when it has none."""
    found = re.search(r">=\s*(\d+(?:\.\d+)*)", spec or "")
    return tuple(int(p) for p in found.group(1).split(".")) if found else ()


def test_requires_python_covers_every_installed_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ours = _minimum(project["requires-python"])
    needs = {}
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0)
        needs[name] = _minimum(metadata.metadata(name).get("Requires-Python", ""))
    assert needs["jax"] >= (3, 11), needs  # the resolved jax; the check below would be vacuous otherwise
    too_low = {name: need for name, need in needs.items() if need > ours}
    assert not too_low, f"requires-python {project['requires-python']} is below what {too_low} declare"


def test_ci_prints_its_python_before_the_tests():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    version = lines.index("python --version")
    tests = next(i for i, line in enumerate(lines) if line.startswith("python -m pytest"))
    assert version < tests
