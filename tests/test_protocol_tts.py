"""The sans-IO TTS core: messages and the connection state machine, without sockets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from xai_voice.protocol import LocalProtocolError, RemoteProtocolError
from xai_voice.protocol.tts import (
    MAX_DELTA_CHARS,
    AudioChunk,
    AudioClear,
    AudioDelta,
    AudioDone,
    Cleared,
    ClientConnection,
    ErrorMessage,
    ServerError,
    SessionRejected,
    SessionUpdate,
    SessionUpdated,
    Skipped,
    StaleUtterance,
    State,
    TextClear,
    TextDelta,
    TextDone,
    Timestamps,
    UnknownMessage,
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
        ErrorMessage("boom", "5f0c1d2e-aaaa"),
        UnknownMessage("audio.surprise"),
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
        ('{"type": "audio.delta", "delta": 12}', "not a string"),
        ('{"type": "audio.delta", "delta": "!!notbase64"}', "not base64"),
        ('{"type": "audio.delta", "delta": "YWJj\u00e9"}', "not base64"),  # non-ASCII
    ],
)  # fmt: skip
def test_frames_that_could_make_the_outcome_wrong_are_protocol_errors(frame: str, needle: str) -> None:
    with pytest.raises(RemoteProtocolError, match=needle):
        decode_server(frame)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type": "audio.surprise", "x": 1}', UnknownMessage("audio.surprise")),
        ('{"type": 7}', UnknownMessage("7")),
        ('{"type": "audio.delta"}', AudioDelta(b"")),  # timing-only frames exist
        ('{"type": "audio.delta", "delta": ""}', AudioDelta(b"")),
        ('{"type": "audio.delta", "delta": "", "audio_timestamps": {"graph_chars": ["a"]}}',
         AudioDelta(b"", None, bad_timestamps=True)),
        ('{"type": "audio.delta", "delta": "YWI=", "audio_timestamps": '
         '{"graph_chars": ["a"], "graph_times": []}}', AudioDelta(b"ab", None, bad_timestamps=True)),
        ('{"type": "audio.done", "trace_id": "t-1", "extra": true}', AudioDone("t-1")),
        ('{"type": "error", "message": "TTS pipeline timed out after 2101s (trace_id=abcd1234-99)"}',
         ErrorMessage("TTS pipeline timed out after 2101s (trace_id=abcd1234-99)", "abcd1234-99")),
        ('{"type": "error", "error": "no message field"}', ErrorMessage("'no message field'")),
    ],
)  # fmt: skip
def test_harmless_surprises_decode_instead_of_failing(frame: str, expected: object) -> None:
    assert decode_server(frame) == expected


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
    epoch = conn.begin()
    text = ("word " * 10_000).strip()  # 49,999 characters
    frames = [conn.send_text(epoch, piece) for piece in split_text(text)]
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
    epoch = conn.begin()
    conn.send_text(epoch, "hi")
    conn.finish(epoch)  # produced; imagine the write still suspended
    assert isinstance(conn.receive_text(_delta()), AudioChunk)
    assert conn.receive_text(encode_server(AudioDone("t"))) == UtteranceDone("t")
    assert conn.state is State.IDLE and conn.reusable and conn.owner is None


def test_a_former_owner_cannot_write_into_the_next_utterance() -> None:
    """The leftover-text bug: a send loop of a cancelled utterance resumes after another
    utterance took the connection.  Its frames name its epoch and are refused."""
    conn = ClientConnection()
    old = conn.begin()
    conn.send_text(old, "Alpha.")
    assert conn.clear(old) is not None  # cancelled mid-send
    assert conn.receive_text(encode_server(AudioClear())) == Cleared()
    assert not conn.reusable  # tainted: stale audio may still come
    fresh = ClientConnection()
    first = fresh.begin()
    fresh.send_text(first, "Bravo.")
    fresh.finish(first)
    fresh.receive_text(encode_server(AudioDone("x")))
    second = fresh.begin()
    with pytest.raises(StaleUtterance, match="no longer owns"):
        fresh.send_text(first, "LEFTOVER")
    with pytest.raises(StaleUtterance):
        fresh.finish(first)
    with pytest.raises(StaleUtterance):
        fresh.clear(first)
    assert fresh.send_text(second, "Charlie.")


def test_begin_is_a_checked_step() -> None:
    conn = ClientConnection()
    epoch = conn.begin()
    with pytest.raises(LocalProtocolError, match="not reusable"):
        conn.begin()  # owned
    conn.release(epoch)
    again = conn.begin()
    assert again == epoch + 1
    conn.send_text(again, "x")
    with pytest.raises(LocalProtocolError, match="cannot release"):
        conn.release(again)  # text in flight: not a clean release


def test_a_cleared_connection_is_never_reusable() -> None:
    conn = ClientConnection()
    epoch = conn.begin()
    conn.send_text(epoch, "hi")
    conn.finish(epoch)
    assert conn.clear(epoch) is not None
    assert conn.receive_text(_delta()) is None  # audio of the cleared utterance: dropped
    assert conn.receive_text(encode_server(AudioDone("late"))) is None  # raced the clear
    assert conn.receive_text(encode_server(AudioClear())) == Cleared()
    assert conn.state is State.IDLE and conn.tainted and not conn.reusable
    # audio that comes after audio.clear has no owner: it cannot go anywhere
    with pytest.raises(RemoteProtocolError, match="no utterance in flight"):
        conn.receive_text(_delta())


def test_clear_with_nothing_sent_releases_cleanly() -> None:
    conn = ClientConnection()
    epoch = conn.begin()
    assert conn.clear(epoch) is None
    assert conn.reusable


@pytest.mark.parametrize(
    ("setup", "frame", "needle"),
    [
        ([], encode_server(AudioDone("x")), "no utterance in flight"),
        (["send"], encode_server(AudioDone("x")), "before text.done"),
        (["send"], encode_server(AudioClear()), "without a text.clear"),
        ([], encode_server(SessionUpdated({})), "without a session.update"),
        (["send"], '{"type":"what"}', "unknown message type"),
        (["send", "finish", "done"], '{"type":"audio.delta"}', "without audio"),
        (["send"], '{"type":"audio.delta","audio_timestamps":{"graph_chars":1}}', "malformed"),
    ],
)
def test_frames_that_can_be_skipped_are_skipped(setup: list[str], frame: str, needle: str) -> None:
    conn = ClientConnection()
    epoch = conn.begin()
    for step in setup:
        if step == "send":
            conn.send_text(epoch, "hi")
        elif step == "finish":
            conn.finish(epoch)
        elif step == "done":
            conn.receive_text(encode_server(AudioDone("x")))
    state = conn.state
    event = conn.receive_text(frame)
    assert isinstance(event, Skipped) and needle in event.reason
    assert conn.state is state  # nothing changed


def test_binary_frames_are_skipped() -> None:
    conn = ClientConnection()
    assert isinstance(conn.receive_binary(b"\x00"), Skipped)
    assert conn.reusable


@pytest.mark.parametrize(
    ("setup", "frame", "needle"),
    [
        ([], _delta(), "no utterance in flight"),
        (["send", "finish", "done"], _delta(), "no utterance in flight"),
        (["send"], "{nope", "not JSON"),
    ],
)
def test_frames_that_would_make_the_outcome_wrong_close_the_connection(
    setup: list[str], frame: str, needle: str
) -> None:
    conn = ClientConnection()
    epoch = conn.begin()
    for step in setup:
        if step == "send":
            conn.send_text(epoch, "hi")
        elif step == "finish":
            conn.finish(epoch)
        elif step == "done":
            conn.receive_text(encode_server(AudioDone("x")))
    with pytest.raises(RemoteProtocolError, match=needle):
        conn.receive_text(frame)
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.receive_text(_delta())


def test_session_update_answers_rejections_and_late_answers() -> None:
    conn = ClientConnection()
    conn.update_session({"a": "b"})
    conn.update_session({"bad": ""})
    assert not conn.reusable
    assert conn.receive_text(encode_server(SessionUpdated({"a": "b"}))) == SessionUpdated({"a": "b"})
    assert conn.receive_text(encode_server(ErrorMessage("nope"))) == SessionRejected("nope")
    assert conn.reusable
    # an update nobody answered in time is abandoned; its late answer is absorbed, even an
    # error frame, which would otherwise end the connection
    conn.update_session({"c": "d"})
    conn.abandon_updates()
    assert conn.reusable
    assert isinstance(conn.receive_text(encode_server(ErrorMessage("late"))), Skipped)
    assert conn.state is State.IDLE


def test_error_frame_ends_the_connection_with_its_trace_id() -> None:
    conn = ClientConnection()
    epoch = conn.begin()
    conn.send_text(epoch, "hi")
    event = conn.receive_text(encode_server(ErrorMessage("boom (trace_id=0123456789ab)", "0123456789ab")))
    assert event == ServerError("boom (trace_id=0123456789ab)", "0123456789ab")
    assert conn.state is State.CLOSED


def test_local_misuse() -> None:
    conn = ClientConnection()
    epoch = conn.begin()
    with pytest.raises(LocalProtocolError, match="cannot finish"):
        conn.finish(epoch)
    with pytest.raises(LocalProtocolError, match="empty"):
        conn.send_text(epoch, "")
    with pytest.raises(LocalProtocolError, match="at most"):
        conn.send_text(epoch, "a" * (MAX_DELTA_CHARS + 1))
    conn.send_text(epoch, "a")
    conn.clear(epoch)
    with pytest.raises(StaleUtterance):
        conn.send_text(epoch, "b")
    assert conn.send_text.__doc__  # public API is documented


# -- the state machine, exhaustively ---------------------------------------------------


class ConnectionModel(RuleBasedStateMachine):
    """Client actions, a faithful server and a hostile one, interleaved in every order
    Hypothesis finds.  Frames travel in order in each direction, like TCP.

    Invariants: each utterance ends exactly once (done, cleared or released) once the
    server has had its say; audio bytes out equal audio bytes in, in order, for every
    utterance that was not cleared; audio only ever reaches the utterance that owns the
    connection; a former owner's frames are always refused; a cleared connection never
    serves another utterance; a frame that can be skipped changes nothing."""

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
        self.srv_cleared = False  # a text.clear was answered: a messy server may still leak
        # client side: one record per utterance that sent text
        self.waiters: list[dict[str, object]] = []
        self.epochs: list[int] = []
        self.closed = False

    def _owner(self) -> int | None:
        return self.conn.owner

    def _open(self) -> bool:
        return not self.closed and self.conn.state is not State.CLOSED

    # client actions
    @precondition(lambda self: not self.closed and self.conn.reusable)
    @rule()
    def client_begin(self) -> None:
        self.epochs.append(self.conn.begin())

    @precondition(
        lambda self: (
            self._open() and self._owner() is not None and self.conn.state in (State.IDLE, State.SENDING)
        )
    )
    @rule(text=st.text(min_size=1, max_size=20))
    def client_send(self, text: str) -> None:
        epoch = self._owner()
        assert epoch is not None
        if self.conn.state is State.IDLE:
            self.waiters.append({"epoch": epoch, "audio": b"", "ended": None, "server_audio": None})
        self.to_server.append(self.conn.send_text(epoch, text))

    @precondition(
        lambda self: self._open() and self._owner() is not None and self.conn.state is State.SENDING
    )
    @rule()
    def client_finish(self) -> None:
        epoch = self._owner()
        assert epoch is not None
        self.to_server.append(self.conn.finish(epoch))

    @precondition(lambda self: self._open() and self._owner() is not None)
    @rule()
    def client_clear(self) -> None:
        epoch = self._owner()
        assert epoch is not None
        sending = self.conn.state is not State.IDLE
        frame = self.conn.clear(epoch)
        assert (frame is not None) == sending
        assert self.conn.owner is None
        if frame is not None:
            self.to_server.append(frame)
            for w in self.waiters:
                if w["epoch"] == epoch and w["ended"] is None:
                    w["ended"] = "cleared"  # the caller stops listening at once

    @precondition(lambda self: self._open() and self._owner() is not None and self.conn.state is State.IDLE)
    @rule()
    def client_release(self) -> None:
        epoch = self._owner()
        assert epoch is not None
        self.conn.release(epoch)
        assert self.conn.owner is None

    @precondition(lambda self: not self.closed and any(e != self.conn.owner for e in self.epochs))
    @rule(data=st.data(), action=st.sampled_from(["send", "finish", "clear"]))
    def former_owner_is_refused(self, data: st.DataObject, action: str) -> None:
        epoch = data.draw(st.sampled_from([e for e in self.epochs if e != self.conn.owner]))
        before = (self.conn.state, self.conn.owner)
        with pytest.raises(LocalProtocolError):
            if action == "send":
                self.conn.send_text(epoch, "LEFTOVER")
            elif action == "finish":
                self.conn.finish(epoch)
            else:
                self.conn.clear(epoch)
        assert (self.conn.state, self.conn.owner) == before

    @precondition(lambda self: self._open())
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
            self.srv_cleared = True
        elif isinstance(msg, SessionUpdate):
            self.to_client.append(encode_server(SessionUpdated(msg.replace)))

    @precondition(lambda self: not self.closed and self.srv_active)
    @rule(data=st.binary(min_size=1, max_size=8))
    def server_audio(self, data: bytes) -> None:
        self.srv_sent.append(data)
        self.to_client.append(encode_server(AudioDelta(data)))

    @precondition(lambda self: not self.closed and self.srv_active)
    @rule()
    def server_timing_only(self) -> None:
        stamps = Timestamps(("a",), ((0.0, 0.1),))
        self.to_client.append(encode_server(AudioDelta(b"", stamps)))

    @precondition(lambda self: not self.closed and self.srv_done)
    @rule()
    def server_done(self) -> None:
        self.to_client.append(encode_server(AudioDone("t")))
        self._server_finished()

    @precondition(lambda self: not self.closed and self.srv_cleared)
    @rule()
    def server_leaks_audio_after_a_clear(self) -> None:
        # the messiest service the sources allow: audio of the cleared utterance after
        # audio.clear; it must never be heard by anyone
        self.to_client.append(encode_server(AudioDelta(b"STALE")))

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
        owner_before = self.conn.owner
        try:
            event = self.conn.receive_text(frame)
        except RemoteProtocolError:
            # only stale audio (leaked after a clear) may do this to a faithful exchange
            msg = decode_server(frame)
            assert isinstance(msg, AudioDelta) and msg.audio == b"STALE"
            assert self.conn.state is State.CLOSED
            self.closed = True
            return
        open_waiters = [w for w in self.waiters if w["ended"] is None]
        if isinstance(event, AudioChunk):
            assert event.data != b"STALE", "audio of a cleared utterance reached a later one"
            assert open_waiters and open_waiters[0]["epoch"] == owner_before, "audio reached a non-owner"
            w = open_waiters[0]
            w["audio"] = w["audio"] + event.data  # type: ignore[operator]
        elif isinstance(event, UtteranceDone):
            assert open_waiters[0]["epoch"] == owner_before
            open_waiters[0]["ended"] = "done"

    # a hostile server
    @precondition(lambda self: not self.closed)
    @rule(kind=st.sampled_from(["garbage", "unknown", "binary", "clear", "done", "delta", "updated"]))
    def server_misbehaves(self, kind: str) -> None:
        conn = self.conn
        state, owner, pending = conn.state, conn.owner, conn.pending_updates
        frames = {
            "garbage": "{nope",
            "unknown": '{"type":"what"}',
            "clear": encode_server(AudioClear()),
            "done": encode_server(AudioDone("x")),
            "delta": _delta(),
            "updated": encode_server(SessionUpdated({})),
        }
        fatal = kind == "garbage" or (kind == "delta" and state is State.IDLE)
        skippable = {
            "unknown": True,
            "binary": True,
            "clear": state is not State.CLEARING,
            "done": state in (State.IDLE, State.SENDING),
            "updated": pending == 0,
        }
        if fatal:
            with pytest.raises(RemoteProtocolError):
                conn.receive_text(frames[kind])
            assert conn.state is State.CLOSED
            self.closed = True  # the face fails every waiter on this error
        elif skippable.get(kind):
            event = conn.receive_binary(b"\x00") if kind == "binary" else conn.receive_text(frames[kind])
            assert isinstance(event, Skipped)
            assert (conn.state, conn.owner, conn.pending_updates) == (state, owner, pending)

    @precondition(lambda self: self.closed)
    @rule()
    def nothing_more_happens(self) -> None:
        with pytest.raises(LocalProtocolError):
            self.conn.receive_text(_delta())

    @invariant()
    def in_flight_means_owned(self) -> None:
        if not self.closed and self.conn.state in (State.SENDING, State.FINISHING):
            assert self.conn.owner is not None
            assert any(w["ended"] is None and w["epoch"] == self.conn.owner for w in self.waiters)

    @invariant()
    def cleared_means_never_reused(self) -> None:
        if self.conn.tainted:
            assert not self.conn.reusable

    def teardown(self) -> None:
        if self.closed:
            return
        # the caller finishes what it started; then the server has its say, to the end
        owner = self.conn.owner
        if owner is not None and self.conn.state is State.SENDING:
            self.to_server.append(self.conn.finish(owner))
        self.srv_cleared = False  # no more leaks: let the exchange settle
        for _ in range(10_000):
            if self.closed:
                return
            if self.to_server:
                self.server_reads()
                self.srv_cleared = False
            elif self.srv_done:
                self.server_done()
            elif self.to_client:
                self._deliver(self.to_client.pop(0))
            else:
                break
        if self.closed:
            return
        assert self.conn.state is State.IDLE, self.conn
        assert self.conn.pending_updates == 0
        for w in self.waiters:
            assert w["ended"] in ("done", "cleared"), w
            if w["ended"] == "done":
                assert w["audio"] == w["server_audio"]


ConnectionModel.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestConnectionModel = ConnectionModel.TestCase
