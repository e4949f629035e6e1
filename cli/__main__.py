"""``python -m rebuilder``: the same as the ``rebuilder`` command."""

from __future__ import annotations

import sys

from rebuilder.cli import main

sys.exit(main())
