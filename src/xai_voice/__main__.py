"""``python -m xai_voice`` is the ``xai-voice`` command (handy where scripts are not on PATH)."""

import sys

from .cli import main

sys.exit(main())
