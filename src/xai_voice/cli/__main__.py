"""``python -m xai_voice.cli``: the ``xai-voice`` command."""

import sys

from . import main

sys.exit(main())
