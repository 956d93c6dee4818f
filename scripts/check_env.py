"""Check that the active Python environment has what MPR-CMA needs.

Usage: python scripts/check_env.py

Exits 0 when every `name==version` pin of requirements.txt and requirements-nodeps.txt is
installed at that version
and `mpr_cma` is importable from this checkout (an editable install of *this* clone);
otherwise prints what is missing or different and exits 1. `make install` runs it first
and only calls scripts/install_deps.sh when it fails, so repeated `make test` runs do
not touch pip. It reads package metadata only (no heavy imports), so it takes well
under a second.
"""

import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def read_pins(path: Path) -> dict[str, str]:
    """Return {distribution name: pinned version} for every `name==version` line."""
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def main() -> int:
    problems = []
    pins = read_pins(REPO / "requirements.txt") | read_pins(REPO / "requirements-nodeps.txt")
    for name, wanted in pins.items():
        have = installed_version(name)
        # Local version labels (torch 2.14.1+cu130) satisfy a pin on the public version.
        if have is None:
            problems.append(f"{name}: not installed (want {wanted})")
        elif have.split("+")[0] != wanted:
            problems.append(f"{name}: {have} installed, want {wanted}")
    spec = importlib.util.find_spec("mpr_cma")
    if spec is None or spec.origin is None:
        problems.append("mpr_cma: not installed (pip install -e .)")
    elif Path(spec.origin).resolve().parent.parent != REPO:
        problems.append(f"mpr_cma: imported from {spec.origin}, not from {REPO}")
    for problem in problems:
        print(f"check_env: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
