"""The command line as a user runs it (a real subprocess, its own data dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.apphelp import remember


def cli(
    tmp_path: Path, *args: str, input_text: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "ALGO_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run(
        [sys.executable, "-m", "algotrendy", *args],
        capture_output=True,
        text=True,
        env=full,
        input=input_text,
        timeout=120,
        check=False,
    )


def test_help_everywhere(tmp_path: Path) -> None:
    for args in (
        [],
        ["serve"],
        ["db"],
        ["db", "upgrade"],
        ["config", "show"],
        ["users"],
        ["users", "create"],
        ["users", "outbox"],
        ["keys", "rotate"],
        ["strategies"],
        ["strategies", "create"],
        ["strategies", "validate"],
    ):
        r = cli(tmp_path, *args, "--help")
        assert r.returncode == 0, (args, r.stderr)
        assert "Usage" in r.stdout


def test_db_upgrade_users_create_and_config_show(tmp_path: Path) -> None:
    r = cli(tmp_path, "db", "upgrade")
    assert r.returncode == 0 and "revision" in r.stdout, r.stderr
    password = "an admin passphrase"
    remember(password)
    r = cli(
        tmp_path,
        "users",
        "create",
        "--admin",
        "--email",
        "root@example.com",
        "--username",
        "root",
        "--password",
        password,
    )
    assert r.returncode == 0 and "created admin root" in r.stdout, r.stderr
    r = cli(
        tmp_path,
        "users",
        "create",
        "--email",
        "root@example.com",
        "--username",
        "root2",
        "--password",
        password,
    )
    assert r.returncode == 1 and "already registered" in r.stderr
    r = cli(
        tmp_path, "users", "create", "--email", "not-an-email", "--username", "x1", "--password", password
    )
    assert r.returncode == 2 and "invalid input" in r.stderr

    secret_db = "postgresql+asyncpg://algo:very-secret-pw@db.example:5432/algo"
    r = cli(tmp_path, "config", "show", ALGO_DATABASE_URL=secret_db, ALGO_MAIL__SMTP_PASSWORD="smtp-secret-1")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert "very-secret-pw" not in r.stdout and "smtp-secret-1" not in r.stdout
    assert shown["database_url"].startswith("postgresql+asyncpg://algo:***@")
    assert shown["data_dir"] == str((tmp_path / "data").resolve())


def test_users_outbox_prints_console_mail(tmp_path: Path) -> None:
    r = cli(tmp_path, "users", "outbox")
    assert r.returncode == 0 and "no messages" in r.stdout
    outbox = tmp_path / "data" / "mail" / "outbox.jsonl"
    outbox.parent.mkdir(parents=True)
    outbox.write_text(
        json.dumps({"at": "2024-01-01T00:00:00Z", "to": "a@example.com", "subject": "Hi", "text": "hello"})
        + "\n"
    )
    r = cli(tmp_path, "users", "outbox")
    assert "Subject: Hi" in r.stdout and "hello" in r.stdout


def test_keys_rotate_and_list(tmp_path: Path) -> None:
    first = cli(tmp_path, "keys", "rotate").stdout.split()[-1]
    second = cli(tmp_path, "keys", "rotate").stdout.split()[-1]
    listed = cli(tmp_path, "keys", "list").stdout.split()
    assert first in listed and second in listed and first != second
    key_file = tmp_path / "data" / "secrets" / "jwt" / f"{second}.pem"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("bad", [{"ALGO_SERVICES": "users,nonsense"}, {"ALGO_PORT": "99999"}])
def test_bad_configuration_is_a_clear_error(tmp_path: Path, bad: dict[str, str]) -> None:
    r = cli(tmp_path, "config", "show", **bad)
    assert r.returncode == 2 and "invalid configuration" in r.stderr


def test_production_refuses_to_start_without_keys(tmp_path: Path) -> None:
    r = cli(tmp_path, "serve", "--port", "1", ALGO_ENV="production")
    assert r.returncode == 2
    assert "refusing to start" in r.stderr and "JWT signing key" in r.stderr
