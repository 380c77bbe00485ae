"""The sans-IO core: messages and the connection state machine, without sockets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from xai_voice.protocol import (
    MAX_DELTA_CHARS,
    AudioChunk,
    AudioClear,
    AudioDelta,
    AudioDone,
    Cleared,
    ClientConnection,
    ErrorMessage,
    LocalProtocolError,
    RemoteProtocolError,
    ServerError,
    SessionRejected,
    SessionUpdate,
    SessionUpdated,
    State,
    TextClear,
    TextDelta,
    TextDone,
    Timestamps,
    UtteranceDone,
    decode_client,
    decode_server,
    encode_client,
    encode_server,
    split_text,
)

# -- messages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [
        AudioDelta(b"\x00\x01\xff" * 10),
        AudioDelta(b"ab", Timestamps(("a", "b"), ((0.0, 0.1), (0.1, 0.2)), 0.2)),
        AudioDone("trace-1"),
        AudioDone(None),
        AudioClear(),
        SessionUpdated({"GPU": "gee pee you"}),
        ErrorMessage("boom"),
    ],
)
def test_server_messages_round_trip(msg: object) -> None:
    assert decode_server(encode_server(msg)) == msg  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "msg",
    [TextDelta("héllo 🌍"), TextDone(), TextClear(), SessionUpdate({"a": "b"})],
)
def test_client_messages_round_trip(msg: object) -> None:
    assert decode_client(encode_client(msg)) == msg  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not an object"),
        ('{"type": "audio.surprise"}', "unknown message type"),
        ('{"type": "audio.delta"}', "string 'delta'"),
        ('{"type": "audio.delta", "delta": "!!notbase64"}', "not base64"),
        ('{"type": "audio.delta", "delta": "YWJj\u00e9"}', "not base64"),  # non-ASCII
        ('{"type": "audio.delta", "delta": "", "audio_timestamps": {"graph_chars": ["a"]}}',
         "malformed audio_timestamps"),
        ('{"type": "audio.delta", "delta": "", "audio_timestamps": '
         '{"graph_chars": ["a"], "graph_times": []}}', "1 graph_chars but 0 graph_times"),
    ],
)  # fmt: skip
def test_bad_server_frames_are_protocol_errors(frame: str, needle: str) -> None:
    with pytest.raises(RemoteProtocolError, match=needle):
        decode_server(frame)


def test_encoder_refuses_oversized_delta() -> None:
    with pytest.raises(ValueError, match="15000"):
        encode_client(TextDelta("a" * (MAX_DELTA_CHARS + 1)))


@given(st.text(), st.integers(min_value=1, max_value=50))
def test_split_text_is_lossless_and_bounded(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert "".join(pieces) == text
    assert all(len(p) <= limit for p in pieces)
    assert all(p for p in pieces) or pieces == [""]


@given(st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=1, max_size=40))
def test_split_text_keeps_words_whole(words: list[str]) -> None:
    text = " ".join(words)
    for piece in split_text(text, 10):
        # every piece ends at a word boundary: no word is cut in two
        assert all(w in words for w in piece.split())


def test_long_text_splits_into_legal_deltas() -> None:
    conn = ClientConnection()
    text = ("word " * 10_000).strip()  # 49,999 characters
    frames = conn.send_text(text)
    deltas = [json.loads(f)["delta"] for f in frames]
    assert len(frames) == 4
    assert "".join(deltas) == text
    assert all(len(d) <= MAX_DELTA_CHARS for d in deltas)


# -- the state machine, by example -----------------------------------------------------


def _delta(data: bytes = b"\x01\x02") -> str:
    return encode_server(AudioDelta(data))


def test_audio_done_that_beats_the_send_is_handled() -> None:
    """The bug this project exists for: audio.done processed before the write of
    text.done returns.  The state changed when the frame was produced, so it counts."""
    conn = ClientConnection()
    conn.send_text("hi")
    conn.finish()  # produced; imagine the write still suspended
    assert isinstance(conn.receive_text(_delta()), AudioChunk)
    assert conn.receive_text(encode_server(AudioDone("t"))) == UtteranceDone("t")
    assert conn.state is State.IDLE and conn.reusable


@pytest.mark.parametrize(
    ("setup", "frame", "needle"),
    [
        ([], _delta(), "no utterance in flight"),
        ([], encode_server(AudioDone("x")), "no utterance in flight"),
        (["send"], encode_server(AudioDone("x")), "before text.done"),
        (["send"], encode_server(AudioClear()), "without a text.clear"),
        ([], encode_server(SessionUpdated({})), "without a session.update"),
        (["send", "finish", "done"], _delta(), "no utterance in flight"),
    ],
)
def test_illegal_server_messages(setup: list[str], frame: str, needle: str) -> None:
    conn = ClientConnection()
    for step in setup:
        if step == "send":
            conn.send_text("hi")
        elif step == "finish":
            conn.finish()
        elif step == "done":
            conn.receive_text(encode_server(AudioDone("x")))
    with pytest.raises(RemoteProtocolError, match=needle):
        conn.receive_text(frame)
    assert conn.state is State.CLOSED


def test_binary_frame_is_a_protocol_error() -> None:
    conn = ClientConnection()
    with pytest.raises(RemoteProtocolError, match="binary"):
        conn.receive_binary(b"\x00")
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.send_text("more")


def test_clear_drops_stale_audio_and_a_late_done() -> None:
    conn = ClientConnection()
    conn.send_text("hi")
    conn.finish()
    assert conn.clear() is not None
    assert conn.clear() is None  # already clearing
    assert conn.receive_text(_delta()) is None  # audio of the cleared utterance: dropped
    assert conn.receive_text(encode_server(AudioDone("late"))) is None  # raced the clear
    assert conn.receive_text(encode_server(AudioClear())) == Cleared()
    assert conn.reusable


def test_session_update_answers_and_rejections() -> None:
    conn = ClientConnection()
    conn.update_session({"a": "b"})
    conn.update_session({"bad": ""})
    assert not conn.reusable
    assert conn.receive_text(encode_server(SessionUpdated({"a": "b"}))) == SessionUpdated({"a": "b"})
    assert conn.receive_text(encode_server(ErrorMessage("nope"))) == SessionRejected("nope")
    assert conn.reusable


def test_error_frame_ends_the_connection() -> None:
    conn = ClientConnection()
    conn.send_text("hi")
    assert conn.receive_text(encode_server(ErrorMessage("boom"))) == ServerError("boom")
    assert conn.state is State.CLOSED


def test_local_misuse() -> None:
    conn = ClientConnection()
    with pytest.raises(LocalProtocolError, match="cannot finish"):
        conn.finish()
    conn.send_text("a")
    conn.clear()
    with pytest.raises(LocalProtocolError, match="cannot send text while the connection is clearing"):
        conn.send_text("b")
    assert conn.send_text.__doc__  # public API is documented


# -- the state machine, exhaustively ---------------------------------------------------


class ConnectionModel(RuleBasedStateMachine):
    """Client actions and a faithful server, interleaved in every order Hypothesis finds,
    plus illegal server messages.  Frames travel in order in each direction, like TCP.

    Invariants: each utterance (a "waiter") ends exactly once, done or cleared, once the
    server has had its say; audio bytes out equal audio bytes in, in order, for every
    utterance that was not cleared; an illegal message is always an exception."""

    def __init__(self) -> None:
        super().__init__()
        self.conn = ClientConnection()
        self.to_server: list[str] = []
        self.to_client: list[str] = []
        # server side
        self.srv_active = False  # text received for the current utterance
        self.srv_done = False  # text.done received
        self.srv_sent: list[bytes] = []  # audio of the current utterance
        self.srv_index = 0  # utterances the server has ended
        # client side: one record per utterance
        self.waiters: list[dict[str, object]] = []
        self.closed = False

    # client actions
    @precondition(lambda self: not self.closed and self.conn.state in (State.IDLE, State.SENDING))
    @rule(text=st.text(min_size=1, max_size=20))
    def client_send(self, text: str) -> None:
        if self.conn.state is State.IDLE:
            self.waiters.append({"audio": b"", "ended": None, "server_audio": None})
        self.to_server += self.conn.send_text(text)

    @precondition(lambda self: not self.closed and self.conn.state is State.SENDING)
    @rule()
    def client_finish(self) -> None:
        self.to_server.append(self.conn.finish())

    @precondition(lambda self: not self.closed and self.conn.state is not State.CLOSED)
    @rule()
    def client_clear(self) -> None:
        frame = self.conn.clear()
        if frame is not None:
            self.to_server.append(frame)

    @precondition(lambda self: not self.closed and self.conn.state is not State.CLOSED)
    @rule(word=st.sampled_from(["a", "b"]))
    def client_update(self, word: str) -> None:
        self.to_server.append(self.conn.update_session({word: word}))

    # the server
    @precondition(lambda self: not self.closed and self.to_server)
    @rule()
    def server_reads(self) -> None:
        msg = decode_client(self.to_server.pop(0))
        if isinstance(msg, TextDelta):
            self.srv_active = True
        elif isinstance(msg, TextDone):
            self.srv_active = True
            self.srv_done = True
        elif isinstance(msg, TextClear):
            if self.srv_active:  # the utterance in progress on the server is dropped
                self._server_finished()
            self.srv_sent = []
            self.to_client.append(encode_server(AudioClear()))
        elif isinstance(msg, SessionUpdate):
            self.to_client.append(encode_server(SessionUpdated(msg.replace)))

    @precondition(lambda self: not self.closed and self.srv_active)
    @rule(data=st.binary(min_size=1, max_size=8))
    def server_audio(self, data: bytes) -> None:
        self.srv_sent.append(data)
        self.to_client.append(encode_server(AudioDelta(data)))

    @precondition(lambda self: not self.closed and self.srv_done)
    @rule()
    def server_done(self) -> None:
        self.to_client.append(encode_server(AudioDone("t")))
        self._server_finished()

    def _server_finished(self) -> None:
        # utterances end on the server in order, by audio.done or by text.clear
        self.waiters[self.srv_index]["server_audio"] = b"".join(self.srv_sent)
        self.srv_index += 1
        self.srv_active = self.srv_done = False
        self.srv_sent = []

    # the client reads
    @precondition(lambda self: not self.closed and self.to_client)
    @rule()
    def client_reads(self) -> None:
        self._deliver(self.to_client.pop(0))

    def _deliver(self, frame: str) -> None:
        event = self.conn.receive_text(frame)
        open_waiters = [w for w in self.waiters if w["ended"] is None]
        if isinstance(event, AudioChunk):
            assert open_waiters, "audio with no utterance"
            w = open_waiters[0]
            w["audio"] = w["audio"] + event.data  # type: ignore[operator]
        elif isinstance(event, UtteranceDone):
            open_waiters[0]["ended"] = "done"
        elif isinstance(event, Cleared):
            for w in open_waiters:
                w["ended"] = "cleared"

    # a hostile server
    @precondition(lambda self: not self.closed)
    @rule(kind=st.sampled_from(["garbage", "unknown", "binary", "clear", "done", "delta", "updated"]))
    def server_misbehaves(self, kind: str) -> None:
        state = self.conn.state
        frames = {
            "garbage": "{nope",
            "unknown": '{"type":"what"}',
            "clear": encode_server(AudioClear()),
            "done": encode_server(AudioDone("x")),
            "delta": _delta(),
            "updated": encode_server(SessionUpdated({})),
        }
        illegal = {
            "garbage": True,
            "unknown": True,
            "binary": True,
            "clear": state is not State.CLEARING,
            "done": state in (State.IDLE, State.SENDING),
            "delta": state is State.IDLE,
            "updated": self.conn.pending_updates == 0,
        }[kind]
        if not illegal:
            return
        with pytest.raises(RemoteProtocolError):
            if kind == "binary":
                self.conn.receive_binary(b"\x00")
            else:
                self.conn.receive_text(frames[kind])
        assert self.conn.state is State.CLOSED
        self.closed = True  # the face fails every waiter on this error

    @precondition(lambda self: self.closed)
    @rule()
    def nothing_more_happens(self) -> None:
        with pytest.raises(LocalProtocolError):
            self.conn.receive_text(_delta())

    @invariant()
    def finishing_means_a_waiter_is_open(self) -> None:
        if self.conn.state in (State.SENDING, State.FINISHING):
            assert any(w["ended"] is None for w in self.waiters)

    def teardown(self) -> None:
        if self.closed:
            return
        # the caller finishes what it started; then the server has its say, to the end
        if self.conn.state is State.SENDING:
            self.to_server.append(self.conn.finish())
        for _ in range(10_000):
            if self.to_server:
                self.server_reads()
            elif self.srv_done:
                self.server_done()
            elif self.to_client:
                self._deliver(self.to_client.pop(0))
            else:
                break
        assert self.conn.state is State.IDLE, self.conn
        assert self.conn.pending_updates == 0
        for w in self.waiters:
            assert w["ended"] in ("done", "cleared"), w
            if w["ended"] == "done":
                assert w["audio"] == w["server_audio"]


ConnectionModel.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestConnectionModel = ConnectionModel.TestCase
