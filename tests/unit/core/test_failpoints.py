"""Failpoints: parsing, counting, and the refusal to arm them in production."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from pydantic import ValidationError

from algotrendy.app.settings import Settings
from algotrendy.core.failpoints import Failpoints


def test_unarmed_points_do_nothing_and_unknown_names_are_refused() -> None:
    fp = Failpoints("")
    assert not fp.armed
    fp.hit("trading.after_send")
    with pytest.raises(ValueError, match="unknown failpoint"):
        Failpoints("trading.nowhere")


def test_a_point_fires_on_its_nth_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: kills.append((pid, sig)))
    fp = Failpoints("trading.after_send@3, outbox.before_publish")
    fp.hit("trading.after_send")
    fp.hit("trading.after_send")
    assert kills == []
    fp.hit("trading.after_send")
    assert kills == [(os.getpid(), signal.SIGKILL)]
    fp.hit("outbox.before_publish")
    assert len(kills) == 2


def test_settings_refuse_failpoints_in_production(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot be armed in production"):
        Settings(env="production", data_dir=tmp_path, failpoints="trading.after_send")
    with pytest.raises(ValidationError, match="unknown failpoint"):
        Settings(env="test", data_dir=tmp_path, failpoints="nope")
    assert Settings(env="test", data_dir=tmp_path, failpoints="trading.after_ack").failpoints
