"""What both services' options share: language codes, and how a refusal lists choices."""

from __future__ import annotations

import logging
import re
from typing import Any

from ..errors import OptionError

__all__ = ["check_language", "choices"]

logger = logging.getLogger("xai_voice")


def choices(values: tuple[Any, ...]) -> str:
    return ", ".join(str(v) for v in values)


#: a language code as BCP 47 writes it: "en", "pt-BR", "zh-Hans-CN"
_WELL_FORMED_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
_warned_languages: set[str] = set()


def check_language(language: object, documented: tuple[str, ...], service: str) -> str:
    """A documented language (in its documented spelling), or any well-formed code with
    one warning: the docs say "additional languages may work", so the service, not this
    client, is the judge; a code it refuses comes back as its own 400."""
    by_lower = {lang.lower(): lang for lang in documented}
    known = by_lower.get(str(language).lower())
    if known is not None:
        return known
    if not isinstance(language, str) or not _WELL_FORMED_LANGUAGE.fullmatch(language):
        raise OptionError(
            "language",
            f"{language!r} is not a language code (like 'en' or 'pt-BR'); documented for {service}: "
            f"{choices(documented)}",
        )
    if language.lower() not in _warned_languages:
        _warned_languages.add(language.lower())
        logger.warning(
            "language %r is not in the documented list for %s (%s); sending it anyway: the service decides",
            language,
            service,
            ", ".join(documented),
        )
    return language
