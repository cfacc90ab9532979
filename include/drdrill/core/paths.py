"""Where the project, its estate files and the sandbox live on this machine.

Run from the repository (``include/drdrill``: a checkout, the docker-compose mount, an editable
install), the project root and its sandbox estate are beside the package. Installed as a wheel
into a user's own Airflow (`INSTALLED`), there is no project root: the estate file comes from
``$DRDRILL_ESTATE`` and the code version from the package metadata.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
INSTALLED = PACKAGE_DIR.parent.name != "include"
PROJECT_ROOT = PACKAGE_DIR.parents[1]
ESTATE_DIR = PROJECT_ROOT / "include" / "estate"
DEFAULT_ESTATE = ESTATE_DIR / "sandbox.yaml"


def sandbox_dir() -> Path:
    """The git-ignored directory the embedded sandbox keeps its servers and repos in."""
    return Path(os.environ.get("DRDRILL_SANDBOX_DIR") or PROJECT_ROOT / ".sandbox")


def estate_path() -> Path:
    """The estate file drills act on: ``$DRDRILL_ESTATE`` or the sandbox estate."""
    return Path(os.environ.get("DRDRILL_ESTATE") or DEFAULT_ESTATE)
