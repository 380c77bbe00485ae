"""The ``xai-voice`` command: ``say``, ``listen``, ``voices``, ``emulate``.

Expected failures (a bad option, a refused key, a timeout, a file that cannot be written)
print one line and exit non-zero (2 for bad usage, 1 otherwise); only a bug shows a
traceback.  ``-v`` (anywhere on the line) shows what someone debugging a connection needs:
the URL (never the key), the options, whether a connection was reused, trace ids, timings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ..errors import OptionError, XaiVoiceError
from ..options import CODECS, LANGUAGES, SAMPLE_RATES
from ..protocol.speedups import ACCELERATED
from ..version import __version__
from .output import OutputError
from .service import Usage

__all__ = ["main"]

_EPILOG = """\
Without XAI_API_KEY the commands use a local emulator (an offline voice); with it, xAI
(https://api.x.ai/v1, or XAI_BASE_URL). Text that starts with a dash goes after --, as in:
xai-voice say -o n.wav -- "-5 degrees today".
"""


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535; 0 picks a free one)")
    return port


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} must be at least 1")
    return n


def _non_negative(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return x


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # accepted before or after the command; SUPPRESS keeps a subcommand from resetting it
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log what happens: URL, options, connection reuse, trace ids, timings",
    )
    common.add_argument(
        "--allow-insecure",
        action="store_true",
        default=argparse.SUPPRESS,
        help="allow plain http:// to a host that is not this machine (also: XAI_ALLOW_INSECURE=1)",
    )

    p = argparse.ArgumentParser(
        prog="xai-voice",
        description="xAI (Grok) voice from the command line: text to speech and speech to text.",
        epilog=_EPILOG,
        parents=[common],
        formatter_class=_Formatter,
    )
    speed = ", ".join(ACCELERATED) or "none: pip install 'xai-voice[fast]'"
    p.add_argument("--version", action="version", version=f"xai-voice {__version__} (accelerators: {speed})")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    say = sub.add_parser(
        "say",
        parents=[common],
        formatter_class=_Formatter,
        epilog=_EPILOG,
        help="speak TEXT (or stdin with -) into a file",
        description="Speak text into an audio file.",
    )
    say.add_argument("text", help="the text, or - to read UTF-8 text from stdin")
    say.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file (.wav .mp3 .pcm .ulaw .alaw), or - for stdout (WAV unless --codec)",
    )
    say.add_argument("--codec", choices=[*CODECS, "ulaw"], help="default: from the file extension")
    say.add_argument("--voice", default="eve", help="voice id (see `xai-voice voices`)")
    say.add_argument("--language", default="auto", help=f"one of: {' '.join(LANGUAGES)} (others may work)")
    say.add_argument(
        "--rate", type=int, default=24000, help=f"sample rate: {' '.join(map(str, SAMPLE_RATES))}"
    )
    say.add_argument("--speed", type=float, help="0.7 to 1.5")
    say.add_argument("--rest", action="store_true", help="use one REST request instead of the WebSocket")
    say.add_argument(
        "--progress",
        choices=["auto", "always", "never"],
        default="auto",
        help="progress bar on stderr (auto: when stderr is a terminal)",
    )

    listen = sub.add_parser(
        "listen",
        parents=[common],
        formatter_class=_Formatter,
        help="print what is said in FILE (or stdin with -)",
        description="Transcribe an audio file: a WAV file, or raw audio with --encoding and --rate.",
    )
    listen.add_argument("file", help="the audio: a WAV file, raw audio, or - for stdin")
    listen.add_argument("--stream", action="store_true", help="use the WebSocket instead of one REST request")
    listen.add_argument(
        "--realtime", action="store_true", help="with --stream: send the audio at its own pace"
    )
    listen.add_argument("--json", action="store_true", help="print words, timings and speakers as JSON")
    listen.add_argument("--language", default="en", help="language code (formatting of numbers and such)")
    listen.add_argument("--diarize", action="store_true", help="tell speakers apart (words get a speaker)")
    listen.add_argument("--keyterm", action="append", default=[], metavar="TERM", help="a word to favour")
    listen.add_argument("--endpointing", type=int, default=300, help="ms of silence that ends an utterance")
    listen.add_argument("--encoding", choices=["pcm", "mulaw", "alaw"], default="pcm", help="raw audio only")
    listen.add_argument("--rate", type=int, help="sample rate of raw audio")
    listen.add_argument("--channels", type=_positive_int, default=1, help="channels of raw audio")

    voices = sub.add_parser(
        "voices",
        parents=[common],
        formatter_class=_Formatter,
        help="list the voices (built-in and custom)",
        description="List, create or delete voices.",
    )
    voices.add_argument("--create", metavar="NAME", help="clone a voice from --audio (Enterprise plans)")
    voices.add_argument("--audio", metavar="FILE", help="up to 120 s of the voice to clone")
    voices.add_argument("--delete", metavar="VOICE_ID", help="delete one of your custom voices (Enterprise)")

    emu = sub.add_parser(
        "emulate",
        parents=[common],
        formatter_class=_Formatter,
        help="run the local emulator until interrupted",
        description="Run the local emulator of xAI's voice service.",
    )
    emu.add_argument("--port", type=_port, default=8765, help="port to listen on (0: a free one)")
    emu.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emu.add_argument("--key", default=None, help="the API key it accepts (default: a fixed emulator key)")
    emu.add_argument("--tone", action="store_true", help="a tone instead of speech (for load tests)")
    emu.add_argument(
        "--realtime",
        type=_non_negative,
        default=2.0,
        help="pace audio at this multiple of real time (0: no pacing)",
    )
    emu.add_argument("--chunk-ms", type=_positive_int, default=100, help="audio per audio.delta, in ms")
    emu.add_argument("--max-sessions", type=_positive_int, default=50, help="concurrent sessions before 429")
    emu.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a fault: kind[@point][*N|*][:status], e.g. stall@mid_audio, refuse:401, drop@idle*2",
    )
    return p


def _logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("xai-voice: %(message)s"))
    ours = logging.getLogger("xai_voice")
    ours.handlers[:] = [handler]
    ours.propagate = False
    ours.setLevel(logging.DEBUG if verbose else logging.WARNING)


def _commands() -> dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]]:
    from .emulate import emulate
    from .listen import listen
    from .say import say
    from .voices import voices

    return {"say": say, "listen": listen, "voices": voices, "emulate": emulate}


class _Terminated(SystemExit):
    """SIGTERM, turned into an exception so the same clean-up as Ctrl-C runs.  A
    ``SystemExit``: asyncio logs and swallows any other exception raised in a callback,
    which is where a signal lands when the loop is busy (accepting a connection, say)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    args.verbose = getattr(args, "verbose", False)
    args.allow_insecure = getattr(args, "allow_insecure", False)
    _logging(args.verbose)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return asyncio.run(_commands()[args.command](args))
    except (Usage, OptionError) as exc:
        print(f"xai-voice: {exc}", file=sys.stderr)
        return 2
    except (XaiVoiceError, OutputError) as exc:
        print(f"xai-voice: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"xai-voice: error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xai-voice: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("xai-voice: terminated", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
