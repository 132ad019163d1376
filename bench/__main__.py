"""`python -m bench` is the `zhisuan` command."""

import sys

from bench.cli import main

sys.exit(main())
