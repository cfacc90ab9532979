"""``python -m drdrill.sandbox up|down|status``."""

from drdrill.sandbox.cli import main

raise SystemExit(main())
