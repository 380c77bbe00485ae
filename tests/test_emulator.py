"""The emulator as a service: validation before the upgrade, auth, limits, records."""

from __future__ import annotations

import aiohttp
import pytest

from xai_voice.emulator import Emulator, Fault, FaultKind, FaultPoint

GOOD = {"language": "en", "voice": "eve", "codec": "pcm", "sample_rate": "24000"}


@pytest.mark.parametrize(("override", "status", "needle"), [
    ({"voice": "nobody"}, 404, "not found"),
    ({"language": "english!"}, 400, "unsupported language"),
    ({"language": None}, 400, "language is required"),
    ({"codec": "flac"}, 400, "unsupported codec"),
    ({"sample_rate": "12345"}, 400, "unsupported sample_rate"),
    ({"speed": "9"}, 400, "outside"),
    ({"with_timestamps": "maybe"}, 400, "true or false"),
])  # fmt: skip
async def test_validation_before_the_upgrade(
    emulator: Emulator, override: dict, status: int, needle: str
) -> None:
    params = {k: v for k, v in {**GOOD, **override}.items() if v is not None}
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await s.ws_connect(emulator.url + "/tts", params=params, headers=headers)
        assert info.value.status == status
        async with s.get(emulator.url + "/tts", params=params, headers=headers) as resp:
            assert resp.status == status
            assert needle in (await resp.json())["error"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
async def test_auth(emulator: Emulator, headers: dict) -> None:
    async with aiohttp.ClientSession() as s:
        for method, path in (("GET", "/tts/voices"), ("POST", "/tts"), ("GET", "/tts")):
            async with s.request(method, emulator.url + path, params=GOOD, headers=headers, json={}) as resp:
                assert resp.status == 401


async def test_text_clear_when_idle_and_oversized_delta(emulator: Emulator) -> None:
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(emulator.url + "/tts", params=GOOD, headers=headers) as ws,
    ):
        await ws.send_json({"type": "text.clear"})
        assert (await ws.receive_json(timeout=2))["type"] == "audio.clear"
        await ws.send_json({"type": "session.update", "replace": {"bad-key": "x"}})
        assert (await ws.receive_json(timeout=2))["type"] == "error"  # the old map stays
        await ws.send_json({"type": "session.update", "replace": {"ok": "fine"}})
        assert (await ws.receive_json(timeout=2)) == {"type": "session.updated", "replace": {"ok": "fine"}}
        await ws.send_json({"type": "text.delta", "delta": "a" * 15001})
        msg = await ws.receive_json(timeout=2)
        assert msg["type"] == "error" and "15000" in msg["message"]


def test_fault_specs() -> None:
    assert Fault.parse("stall@mid_audio").at is FaultPoint.MID_AUDIO
    f = Fault.parse("refuse:401")
    assert (f.kind, f.at, f.status) == (FaultKind.REFUSE, FaultPoint.UPGRADE, 401)
    assert Fault.parse("drop@idle*2").times == 2
    assert Fault.parse("error@mid_audio*").times is None
    with pytest.raises(ValueError, match="cannot happen at"):
        Fault(FaultKind.REFUSE, FaultPoint.MID_AUDIO)


async def test_a_long_running_emulator_keeps_its_memory_flat() -> None:
    """Records are bounded and audio is kept only when asked: RSS stays flat however many
    utterances an emulator serves (it used to keep every byte it ever sent)."""
    import gc

    import psutil

    import xai_voice

    proc = psutil.Process()
    async with Emulator(tone=True, max_records=100) as emu:
        async with xai_voice.Client(api_key=emu.api_key, base_url=emu.url) as client:
            text = "A sentence of a few seconds of tone, said over and over again. " * 4
            for _ in range(150):  # warm up: the records fill to their bound
                await client.speak(text)
            gc.collect()
            before = proc.memory_info().rss
            for _ in range(600):
                await client.speak(text)
            gc.collect()
            grown = (proc.memory_info().rss - before) / 2**20
        assert len(emu.utterances) == 100 and emu.server.utterances.total == 750
        assert all(not u.audio for u in emu.utterances)
    assert grown < 8, f"RSS grew {grown:.1f} MiB over 600 utterances"


async def test_a_client_leaving_as_it_clears_is_not_an_emulator_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over TLS, audio.clear and the client's close arrive together: answering the clear
    finds the transport closing, which is the client's business, not an error to log."""
    import logging
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    caplog.set_level(logging.ERROR)
    async with Emulator(tone=True, realtime=1.0, ssl_context=server_ctx) as emu:
        url = emu.url.replace("http", "ws", 1) + "/tts?voice=eve&language=en&codec=pcm&sample_rate=24000"
        for _ in range(10):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as session:
                ws = await session.ws_connect(url, headers={"Authorization": f"Bearer {emu.api_key}"})
                await ws.send_str('{"type":"text.delta","delta":"Hello there, a long sentence."}')
                await ws.send_str('{"type":"text.done"}')
                await ws.receive()
                await ws.send_str('{"type":"audio.clear"}')
                ws._response.connection.transport.close()  # type: ignore[union-attr]
        await emu.wait_idle()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
