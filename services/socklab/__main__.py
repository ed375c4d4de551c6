"""Entry point for ``python3 -m socklab``."""

from socklab.cli import main

raise SystemExit(main())
