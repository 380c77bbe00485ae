import logging

logger = logging.getLogger("livekit.plugins.xai_voice")
