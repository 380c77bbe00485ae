"""``xai-voice voices``: the voices you can use, built-in and your team's own; creating and
deleting custom voices (Enterprise plans)."""

from __future__ import annotations

import argparse
import asyncio
import os

from .service import Usage, allow_insecure, client_for

__all__ = ["voices"]


async def voices(args: argparse.Namespace) -> int:
    if args.create is not None and args.audio is None:
        raise Usage("--create NAME needs --audio FILE (up to 120 s of the voice to clone)")
    if args.audio is not None and not await asyncio.to_thread(os.path.isfile, args.audio):
        raise Usage(f"{args.audio} is not a file")
    async with client_for(insecure=allow_insecure(args.allow_insecure)) as client:
        if args.create is not None:
            voice = await client.create_custom_voice(args.create, args.audio)
            print(f"{voice.voice_id}\t{voice.name}\tcustom")
            return 0
        if args.delete is not None:
            await client.delete_custom_voice(args.delete)
            print(f"deleted {args.delete}")
            return 0
        for voice in await client.voices():
            print(f"{voice.voice_id}\t{voice.name}\t{voice.kind}")
    return 0
