"""The sans-IO STT core: messages and the state machine, without sockets."""

from __future__ import annotations

import json

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from xai_voice.protocol import LocalProtocolError, RemoteProtocolError
from xai_voice.protocol.stt import (
    BufferFull,
    ErrorMessage,
    Final,
    Finished,
    Interim,
    Ready,
    RecognizerConnection,
    ServerError,
    Skipped,
    SpeechEnded,
    SpeechStarted,
    State,
    TranscriptCreated,
    TranscriptDone,
    TranscriptPartial,
    UnknownMessage,
    Word,
    decode_client,
    decode_server,
    encode_server,
)


def created() -> str:
    return encode_server(TranscriptCreated("s-1"))


def partial(text: str, *, final: bool = False, speech_final: bool = False, start: float = 0.0,
            duration: float = 1.0, channel: int = 0) -> str:  # fmt: skip
    words = tuple(Word(w, start + i * 0.2, start + i * 0.2 + 0.15) for i, w in enumerate(text.split()))
    msg = TranscriptPartial(text, words, final, speech_final, start, duration, channel)
    return encode_server(msg, multichannel=channel > 0)


def done(text: str = "", duration: float = 2.0, channel: int = 0) -> str:
    return encode_server(TranscriptDone(text, (), duration, channel), multichannel=channel > 0)


def feed(conn: RecognizerConnection, *frames: str) -> list[object]:
    out: list[object] = []
    for f in frames:
        out += conn.receive_text(f)
    return out


# -- messages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type":"transcript.created"}', TranscriptCreated(None)),
        ('{"type":"transcript.created","id":"abc"}', TranscriptCreated("abc")),
        ('{"type":"transcript.partial","text":"hi","words":[{"text":"hi","start":0,"end":0.2,"speaker":1,"confidence":0.9}],'
         '"is_final":true,"speech_final":false,"start":0,"duration":0.2,"channel_index":1,"extra":1}',
         TranscriptPartial("hi", (Word("hi", 0, 0.2, 1, 0.9),), True, False, 0.0, 0.2, 1)),
        ('{"type":"transcript.partial","text":"x","words":[{"nope":1}, "junk"]}', TranscriptPartial("x")),
        ('{"type":"transcript.done","text":"","duration":1.2}', TranscriptDone("", (), 1.2)),
        ('{"type":"error","message":"bad (trace_id=0123456789ab)"}', ErrorMessage("bad (trace_id=0123456789ab)", "0123456789ab")),
        ('{"type":"transcript.surprise"}', UnknownMessage("transcript.surprise")),
    ],
)  # fmt: skip
def test_decoding_is_liberal(frame: str, expected: object) -> None:
    assert decode_server(frame) == expected


@pytest.mark.parametrize("frame", ["{nope", "[1]", '{"type":"transcript.partial","text":5}'])
def test_what_cannot_be_read_is_an_error(frame: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_server(frame)


def test_client_messages() -> None:
    conn = RecognizerConnection()
    conn.receive_text(created())
    conn.finish()
    assert json.loads(conn.frames()[-1]) == {"type": "audio.done"}
    assert type(decode_client('{"type":"audio.done"}')).__name__ == "AudioDone"
    with pytest.raises(RemoteProtocolError):
        decode_client('{"type":"what"}')


# -- the state machine, by example ---------------------------------------------------------


def test_audio_before_created_is_held_never_dropped() -> None:
    conn = RecognizerConnection(frame_bytes=4, max_pending=10)
    conn.send_audio(b"abcdef")
    assert conn.frames() == [] and conn.pending_bytes == 6
    with pytest.raises(BufferFull):
        conn.send_audio(b"0123456")
    conn.send_audio(b"gh")
    conn.finish()  # before created: goes out with the audio
    assert conn.frames() == []
    assert feed(conn, created()) == [Ready("s-1")]
    assert conn.frames() == [b"abcd", b"efgh", '{"type":"audio.done"}']
    assert conn.state is State.FINISHING


def test_finishing_the_moment_audio_done_is_produced() -> None:
    """The seed bug's STT sibling: transcript.done (and a close) may beat our write."""
    conn = RecognizerConnection()
    feed(conn, created())
    conn.send_audio(b"\x00" * 10)
    conn.finish()
    assert conn.state is State.FINISHING  # before anyone writes anything
    events = feed(conn, partial("the last words", final=True, speech_final=True), done())
    assert [type(e) for e in events] == [SpeechStarted, Final, SpeechEnded, Finished]
    assert conn.done
    with pytest.raises(LocalProtocolError):
        conn.send_audio(b"late")


def test_speech_final_is_preferred_to_the_chunks_it_merges() -> None:
    conn = RecognizerConnection()
    feed(conn, created())
    events = feed(
        conn,
        partial("book a", start=0.0, duration=0.5),
        partial("book a table", final=True, start=0.0, duration=1.0),
        partial("for two", start=1.0, duration=0.5),
        partial("for to", final=True, start=1.0, duration=1.0),  # a chunk that was wrong
        partial("for to", final=True, start=1.0, duration=1.0),  # re-sent
        partial("Book a table for two.", final=True, speech_final=True, start=0.0, duration=2.0),
        partial("Book a table for two.", final=True, speech_final=True, start=0.0, duration=2.0),  # again
    )
    interims = [e.text for e in events if isinstance(e, Interim)]
    assert interims == ["book a", "book a table", "book a table for two", "book a table for to"]
    finals = [e for e in events if isinstance(e, Final)]
    assert [f.text for f in finals] == ["Book a table for two."]  # once, the merged text
    assert sum(isinstance(e, Skipped) for e in events) == 2
    assert isinstance(events[0], SpeechStarted) and isinstance(events[-2], SpeechEnded)


def test_the_remainder_of_transcript_done_is_a_last_final() -> None:
    conn = RecognizerConnection()
    feed(conn, created())
    feed(conn, partial("half a sentence", final=True))
    conn.finish()
    events = feed(conn, done(""))  # empty done, as live traffic shows: the chunks are the final
    assert [e.text for e in events if isinstance(e, Final)] == ["half a sentence"]
    conn2 = RecognizerConnection()
    feed(conn2, created())
    conn2.finish()
    events = feed(conn2, done("said at the very end"))
    assert [(e.text, e.from_done) for e in events if isinstance(e, Final)] == [("said at the very end", True)]


def test_one_transcript_done_per_channel() -> None:
    conn = RecognizerConnection(channels=2)
    feed(conn, created())
    conn.finish()
    first = feed(conn, partial("left", final=True, speech_final=True, channel=0), done(channel=0))
    assert not any(isinstance(e, Finished) for e in first) and conn.state is State.FINISHING
    last = feed(
        conn, partial("right", final=True, speech_final=True, channel=1), done(channel=1, duration=3.0)
    )
    assert isinstance(last[-1], Finished) and last[-1].duration == 3.0
    assert [e.channel for e in first + last if isinstance(e, Final)] == [0, 1]


def test_the_service_may_end_the_stream_itself() -> None:
    conn = RecognizerConnection()
    feed(conn, created())
    events = feed(conn, done("bye"))
    assert isinstance(events[-1], Finished) and events[-1].ended_by_service


def test_tolerance_and_errors() -> None:
    conn = RecognizerConnection()
    assert isinstance(conn.receive_binary(b"x")[0], Skipped)
    assert isinstance(feed(conn, '{"type":"what"}')[0], Skipped)
    feed(conn, created())
    assert isinstance(feed(conn, created())[0], Skipped)
    assert isinstance(feed(conn, partial("x", channel=3))[0], Skipped)
    [err] = feed(conn, encode_server(ErrorMessage("boom")))
    assert isinstance(err, ServerError) and conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.receive_text(created())


# -- the state machine, exhaustively -------------------------------------------------------


class RecognizerModel(RuleBasedStateMachine):
    """A client and a faithful but messy server in every order Hypothesis finds: audio
    sent before the session is ready, finals re-sent, locked chunks restated by the
    speech_final, transcript.done before or after our audio.done is written.

    Invariants: all audio goes out, in order, exactly once; every utterance the server
    finished is one Final with the speech_final's text; the stream finishes exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.conn = RecognizerConnection(frame_bytes=3, max_pending=1000)
        self.sent_audio = b""
        self.wire: list[bytes | str] = []
        self.to_client: list[str] = []
        self.srv_ready = False
        self.srv_finished = False
        self.utterance = 0
        self.chunks_in_utterance = 0
        self.expected_finals: list[str] = []
        self.finals: list[str] = []
        self.finished = 0

    def _drain(self) -> None:
        self.wire += self.conn.frames()

    @precondition(lambda self: not self.srv_ready)
    @rule()
    def server_ready(self) -> None:
        self.srv_ready = True
        self.to_client.append(created())

    @precondition(
        lambda self: self.conn.state in (State.CONNECTING, State.STREAMING) and not self.conn._finish_pending
    )
    @rule(data=st.binary(min_size=1, max_size=7))
    def client_sends(self, data: bytes) -> None:
        self.conn.send_audio(data)
        self.sent_audio += data
        self._drain()

    @precondition(lambda self: self.conn.state in (State.CONNECTING, State.STREAMING))
    @rule()
    def client_finishes(self) -> None:
        self.conn.finish()
        self._drain()

    @precondition(lambda self: self.srv_ready and not self.srv_finished)
    @rule(final=st.booleans(), twice=st.booleans())
    def server_result(self, final: bool, twice: bool) -> None:
        self.chunks_in_utterance += 1
        text = f"u{self.utterance} part{self.chunks_in_utterance}"
        frame = partial(text, final=final, start=self.utterance * 10 + self.chunks_in_utterance)
        self.to_client += [frame, frame] if twice and final else [frame]

    @precondition(lambda self: self.srv_ready and not self.srv_finished and self.chunks_in_utterance)
    @rule(twice=st.booleans())
    def server_speech_final(self, twice: bool) -> None:
        text = f"Utterance {self.utterance}."
        frame = partial(text, final=True, speech_final=True, start=self.utterance * 10)
        self.to_client += [frame, frame] if twice else [frame]
        self.expected_finals.append(text)
        self.utterance += 1
        self.chunks_in_utterance = 0

    @precondition(
        lambda self: self.srv_ready and not self.srv_finished and '{"type":"audio.done"}' in self.wire
    )
    @rule()
    def server_done(self) -> None:
        self.srv_finished = True
        if self.chunks_in_utterance:  # an open utterance: its words in the done
            text = f"Rest {self.utterance}."
            self.expected_finals.append(text)
            self.to_client.append(done(text))
        else:
            self.to_client.append(done(""))

    @precondition(lambda self: self.to_client and self.conn.state is not State.CLOSED)
    @rule()
    def client_reads(self) -> None:
        for event in self.conn.receive_text(self.to_client.pop(0)):
            if isinstance(event, Final):
                self.finals.append(event.text)
            elif isinstance(event, Finished):
                self.finished += 1
        self._drain()

    @rule()
    def time_passes(self) -> None:
        """Nothing happens (the exchange may be over before the steps are)."""

    @invariant()
    def audio_goes_out_in_order(self) -> None:
        out = b"".join(f for f in self.wire if isinstance(f, bytes))
        assert self.sent_audio.startswith(out)
        if '{"type":"audio.done"}' in self.wire:
            assert out == self.sent_audio and self.wire[-1] == '{"type":"audio.done"}'

    def teardown(self) -> None:
        if not self.srv_ready:
            self.server_ready()
        if self.conn.state in (State.CONNECTING, State.STREAMING):
            self.conn.finish()
        for _ in range(1000):
            if self.to_client:
                self.client_reads()
            elif not self.srv_finished:
                self._drain()
                self.server_done()
            else:
                break
        assert self.conn.done and self.finished == 1
        assert self.finals == self.expected_finals
        assert b"".join(f for f in self.wire if isinstance(f, bytes)) == self.sent_audio


RecognizerModel.TestCase.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)
TestRecognizerModel = RecognizerModel.TestCase
