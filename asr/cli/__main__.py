"""`python -m asr.cli`: the same as the `asr` command."""

import sys

from asr.cli import main

sys.exit(main())
