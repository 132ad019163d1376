"""`python -m bench` is the `zhisuan` command."""

import sys

from zhisuan.bench.cli import main

sys.exit(main())
