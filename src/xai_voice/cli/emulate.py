"""``xai-voice emulate``: the local emulator, for other programs (or other languages) to use."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import sys

from ..transport import is_loopback
from .service import Usage

__all__ = ["emulate"]


async def emulate(args: argparse.Namespace) -> int:
    from ..emulator import DEFAULT_KEY, Emulator, EmulatorConfig, Fault, FaultPlan

    try:
        plan = FaultPlan([Fault.parse(spec) for spec in args.fault])
    except ValueError as exc:
        raise Usage(f"bad --fault: {exc}") from None
    config = EmulatorConfig(
        api_key=args.key or DEFAULT_KEY,
        tone=args.tone,
        realtime=args.realtime,
        chunk_ms=args.chunk_ms,
        max_sessions=args.max_sessions,
    )
    if not is_loopback(args.host):
        print(
            f"xai-voice: warning: listening on {args.host}, beyond this machine, without TLS: the key "
            "travels in clear",
            file=sys.stderr,
        )
    emu = Emulator(config, faults=plan, port=args.port, host=args.host)
    try:
        await emu.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise Usage(
                f"port {args.port} on {args.host} is already in use; pick another with --port"
            ) from None
        raise Usage(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    try:
        print(f"xai-voice emulator listening on {emu.url}", file=sys.stderr)
        print(f"export XAI_BASE_URL={emu.url} XAI_API_KEY={emu.api_key}", file=sys.stderr)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
    finally:
        await emu.stop()
    return 0
