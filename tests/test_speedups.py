"""The accelerated (orjson, pybase64) and standard-library paths of the audio decoders
must agree: a user without the ``fast`` extra gets the same answers, only slower."""

from __future__ import annotations

import base64
import importlib.util
import sys
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xai_voice.protocol import speedups


def _stdlib_copy(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A second instance of the module, loaded while the accelerators cannot be imported."""
    monkeypatch.setitem(sys.modules, "orjson", None)
    monkeypatch.setitem(sys.modules, "pybase64", None)
    spec = importlib.util.find_spec("xai_voice.protocol.speedups")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_PLAIN: list[ModuleType] = []


def _plain_module() -> ModuleType:
    """One stdlib-only copy, shared (Hypothesis examples cannot take function fixtures)."""
    if not _PLAIN:
        with pytest.MonkeyPatch.context() as mp:
            _PLAIN.append(_stdlib_copy(mp))
    return _PLAIN[0]


@pytest.fixture
def plain() -> ModuleType:
    return _plain_module()


def test_the_installed_accelerators_are_in_use(plain: ModuleType) -> None:
    # the dev install has the fast extra: if this fails, the benchmarks measure the fallback
    assert speedups.ACCELERATED == ("orjson", "pybase64")
    assert plain.ACCELERATED == ()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=5000))
def test_round_trip_agrees(data: bytes) -> None:
    text = speedups.b64encode(data)
    assert text == base64.b64encode(data).decode()
    assert speedups.b64decode(text) == data


@pytest.mark.parametrize(
    "bad",
    ["YQ", "YQ=", "Y===", "YW Jj", "YWJj\n", "-_8=", "=YQ=", "YQ==YQ==", "é", "YWJj!", "QUJD=YQ"],
)
def test_both_refuse_what_is_not_strict_base64(plain: ModuleType, bad: str) -> None:
    for module in (speedups, plain):
        with pytest.raises(speedups.Error):
            module.b64decode(bad)


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="ABCab01+/=-_ \né", max_size=12))
def test_both_accept_and_refuse_the_same_base64(text: str) -> None:
    plain = _plain_module()

    def outcome(module: ModuleType) -> bytes | None:
        try:
            return module.b64decode(text)  # type: ignore[no-any-return]
        except speedups.Error:
            return None

    assert outcome(speedups) == outcome(plain)


def test_json_agrees_on_the_lenient_dialect(plain: ModuleType) -> None:
    for text in ('{"d": NaN}', '{"d": 1e400}', '"\\ud800"'):
        assert repr(speedups.loads(text)) == repr(plain.loads(text))
    with pytest.raises(ValueError):
        speedups.loads("{not json")


def test_json_agrees(plain: ModuleType) -> None:
    obj = {"type": "text.delta", "delta": "héllo \u2028 \U0001f600"}
    assert speedups.dumps(obj) == plain.dumps(obj)
    assert speedups.loads(speedups.dumps(obj)) == plain.loads(plain.dumps(obj)) == obj
