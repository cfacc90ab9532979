"""Where the project, its estate files and the sandbox live on this machine."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ESTATE_DIR = PROJECT_ROOT / "include" / "estate"
DEFAULT_ESTATE = ESTATE_DIR / "sandbox.yaml"


def sandbox_dir() -> Path:
    """The git-ignored directory the embedded sandbox keeps its servers and repos in."""
    return Path(os.environ.get("DRDRILL_SANDBOX_DIR") or PROJECT_ROOT / ".sandbox")


def estate_path() -> Path:
    """The estate file drills act on: ``$DRDRILL_ESTATE`` or the sandbox estate."""
    return Path(os.environ.get("DRDRILL_ESTATE") or DEFAULT_ESTATE)
