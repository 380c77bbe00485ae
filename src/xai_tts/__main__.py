"""``python -m xai_tts`` is the ``xai-tts`` command (handy where scripts are not on PATH)."""

import sys

from .cli import main

sys.exit(main())
