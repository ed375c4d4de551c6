"""Where the repository is, for the host side: one place that knows the layout.

The host side runs from a checkout (``PYTHONPATH=services``, or the venv's
editable install), never from the lab image, so the repository root is a fixed
distance from this file: services/socklab/host/paths.py.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
COMPOSE_DIR = REPO_ROOT / "compose"
LAB_COMPOSE = COMPOSE_DIR / "lab.yml"
