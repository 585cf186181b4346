#!/usr/bin/env python3
"""Render the AlgoTrendy nginx templates into an nginx prefix directory (stdlib only).

    python3 deploy/nginx/render.py --prefix /tmp/edge --listen 127.0.0.1:18080 \\
        --upstream users=127.0.0.1:8001 --upstream notifications=127.0.0.1:8002 \\
        --upstream jobs=127.0.0.1:8003
    nginx -p /tmp/edge -c /tmp/edge/nginx.conf -e stderr -g 'daemon off;'

Values not given as options are taken from the environment (NGINX_LISTEN, USERS_UPSTREAM, ...).
Substitution is ``string.Template.safe_substitute`` with only the placeholder names, so nginx's
own (lower-case) ``$variables`` pass through; a placeholder left unfilled is an error.

The placeholders are read from the templates themselves, so moving a service from the later
files into nginx.conf.template needs no change here. The later services' files
(later-upstreams.conf, later-services.conf) are written when ``--later`` is given or any
placeholder found only in them is set; then all of theirs must be set. Otherwise any stale
rendered copies of them are removed from the prefix, so the glob includes in nginx.conf
match nothing.

Creates PREFIX and PREFIX/logs (nginx creates its temp directories itself). Prints the path of
the rendered nginx.conf. Exit status 2 on a missing or malformed value.
"""

from __future__ import annotations

import argparse
import os
import re
import string
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

MAIN = ("nginx.conf.template", "nginx.conf")
LATER = (
    ("later-upstreams.conf.template", "later-upstreams.conf"),
    ("later-services.conf.template", "later-services.conf"),
)

_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
# host:port, [v6]:port or unix:/path; no spaces, quotes, braces or semicolons (config injection)
_UPSTREAM = re.compile(r"^(unix:/[^\s;{}'\"]+|[A-Za-z0-9._-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5})$")
_LISTEN = re.compile(r"^(\d{1,5}|[A-Za-z0-9._-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}|unix:/[^\s;{}'\"]+)$")


def placeholder(service: str) -> str:
    return f"{service.upper()}_UPSTREAM"


def placeholders(src: str) -> set[str]:
    """The ``${NAME}`` placeholders of one template (comments included, harmlessly)."""
    return set(_PLACEHOLDER.findall((HERE / src).read_text(encoding="utf-8")))


def upstream_services(names: set[str]) -> list[str]:
    return sorted(n[: -len("_UPSTREAM")].lower() for n in names if n.endswith("_UPSTREAM"))


def render_text(template: str, values: dict[str, str]) -> str:
    """Substitute ``${NAME}`` placeholders; raise KeyError naming any left unfilled."""
    text = string.Template(template).safe_substitute(values)
    missing = sorted(set(_PLACEHOLDER.findall(text)))
    if missing:
        raise KeyError(", ".join(missing))
    return text


def render(prefix: Path, values: dict[str, str], *, later: bool) -> Path:
    """Write nginx.conf (and the later services' files when ``later``) into ``prefix``.

    Everything is rendered before anything is written, so a missing value writes nothing.
    """
    pairs = [MAIN, *LATER] if later else [MAIN]
    texts = {dst: render_text((HERE / src).read_text(encoding="utf-8"), values) for src, dst in pairs}
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "logs").mkdir(exist_ok=True)
    for dst, text in texts.items():
        tmp = prefix / f".{dst}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(prefix / dst)
    if not later:
        for _src, dst in LATER:
            (prefix / dst).unlink(missing_ok=True)
    return prefix / MAIN[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", required=True, type=Path, help="nginx prefix directory (-p)")
    parser.add_argument("--listen", help="listen address (default: $NGINX_LISTEN, else 8000)")
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="SERVICE=HOST:PORT",
        help="upstream of one service (repeatable); default: $<SERVICE>_UPSTREAM",
    )
    parser.add_argument("--later", action="store_true", help="also render the later services' files")
    args = parser.parse_args(argv)

    main_names = placeholders(MAIN[0])
    later_names = set().union(*(placeholders(src) for src, _dst in LATER)) - main_names
    known = upstream_services(main_names | later_names)

    values: dict[str, str] = {}
    for name in main_names | later_names:
        env = os.environ.get(name)
        if env:
            values[name] = env
    for item in args.upstream:
        service, sep, address = item.partition("=")
        service = service.strip().lower()
        if not sep or service not in known:
            choices = ", ".join(known)
            parser.error(f"--upstream {item!r}: expected SERVICE=HOST:PORT, SERVICE one of {choices}")
        values[placeholder(service)] = address.strip()
    values["NGINX_LISTEN"] = args.listen or os.environ.get("NGINX_LISTEN") or "8000"

    for name, value in values.items():
        pattern = _LISTEN if name == "NGINX_LISTEN" else _UPSTREAM
        if not pattern.match(value):
            print(f"render.py: {name}={value!r} is not a valid address", file=sys.stderr)
            return 2

    later = args.later or any(name in values for name in later_names)
    try:
        out = render(args.prefix.resolve(), values, later=later)
    except KeyError as exc:
        print(
            f"render.py: no value for {exc.args[0]} (use --upstream SERVICE=HOST:PORT or the "
            f"environment variable)",
            file=sys.stderr,
        )
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
