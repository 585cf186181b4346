"""A fake vendor HTTP server on 127.0.0.1, with a request log and a scripted fault injector.

Each vendor (``tests/fakes/<vendor>.py``) subclasses ``FakeServer`` and lists its routes. The
server is aiohttp running in a background thread with its own event loop, so it works from sync
tests, from async tests on any event loop, and against clients of any kind (httpx, ccxt's
aiohttp session)::

    with FakeBinance() as fake:                       # or: async with FakeBinance() as fake:
        fake.faults.fail(500, times=1, path="/api/v3/klines")
        fake.faults.rate_limit(retry_after=1, after=2)
        ...  # point the client at fake.url
        fake.requests("/api/v3/klines")               # what arrived, with monotonic arrival times

Faults are consumed in the order they were added. A request matches a fault when its path starts
with the fault's ``path`` (any path when ``None``); the fault first lets ``after`` matching
requests through, then fires ``times`` times (``None``: for ever). One fault fires per request.

* ``fail(status)``: answer ``status`` with the vendor's error body;
* ``rate_limit(retry_after)``: 429 with ``Retry-After`` (seconds, an HTTP date, or none);
* ``delay(seconds)``: hold the answer (to trip the client's timeout);
* ``malformed(how, row=i)``: the vendor's handler corrupts row ``i`` of its answer: ``how`` is
  one of ``nan``, ``negative``, ``missing``, ``null``, ``high_lt_low`` (vendors may add more);
* ``garbage()``: a 200 whose body is not JSON (an HTML page);
* ``fail_after(n, status)``: let ``n`` requests through, then fail every later one;
* ``drop(status=None)``: run the handler (the venue *accepts* the request) and then cut the
  connection without an answer, or answer ``status`` (say 502/504) instead of the real reply:
  the client cannot tell whether its order was placed.
"""

from __future__ import annotations

import abc
import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web

FAULT = web.RequestKey("fault", object)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    at: float
    """``time.monotonic()`` when the request arrived."""
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int | None = None


@dataclass
class Fault:
    kind: str
    status: int = 500
    seconds: float = 0.0
    retry_after: str | None = None
    how: str = "nan"
    row: int = 0
    times: int | None = 1
    after: int = 0
    path: str | None = None
    body: Any = None
    fired: int = 0


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail(
        self,
        status: int = 500,
        *,
        times: int | None = 1,
        after: int = 0,
        path: str | None = None,
        body: Any = None,
    ) -> Fault:
        return self._add(Fault("status", status=status, times=times, after=after, path=path, body=body))

    def rate_limit(
        self,
        retry_after: float | str | None = 1,
        *,
        times: int | None = 1,
        after: int = 0,
        path: str | None = None,
        status: int = 429,
    ) -> Fault:
        value = (
            None
            if retry_after is None
            else (retry_after if isinstance(retry_after, str) else f"{retry_after:g}")
        )
        return self._add(
            Fault("status", status=status, retry_after=value, times=times, after=after, path=path)
        )

    def delay(
        self, seconds: float, *, times: int | None = 1, after: int = 0, path: str | None = None
    ) -> Fault:
        return self._add(Fault("delay", seconds=seconds, times=times, after=after, path=path))

    def malformed(
        self,
        how: str = "nan",
        *,
        row: int = 0,
        times: int | None = 1,
        after: int = 0,
        path: str | None = None,
    ) -> Fault:
        return self._add(Fault("malformed", how=how, row=row, times=times, after=after, path=path))

    def garbage(self, *, times: int | None = 1, after: int = 0, path: str | None = None) -> Fault:
        return self._add(Fault("garbage", times=times, after=after, path=path))

    def drop(
        self,
        status: int | None = None,
        *,
        times: int | None = 1,
        after: int = 0,
        path: str | None = None,
    ) -> Fault:
        return self._add(Fault("drop", status=status or 0, times=times, after=after, path=path))

    def fail_after(self, ok: int, status: int = 500, *, path: str | None = None) -> Fault:
        return self.fail(status, times=None, after=ok, path=path)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> Fault | None:
        """The fault that fires for a request to ``path`` (counting it against the others)."""
        with self._lock:
            chosen = None
            for fault in self._faults:
                if fault.path is not None and not path.startswith(fault.path):
                    continue
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                if chosen is None:
                    chosen = fault
            if chosen is not None:
                chosen.fired += 1
            return chosen


@dataclass
class _Runtime:
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    runner: web.AppRunner
    port: int


class FakeServer(abc.ABC):
    """Base of the fake vendors: start/stop, request log, faults (see the module docstring)."""

    vendor = "fake"

    def __init__(self) -> None:
        self.faults = FaultInjector()
        self._log: list[Recorded] = []
        self._lock = threading.Lock()
        self._rt: _Runtime | None = None

    # ---- what a vendor defines ---------------------------------------------------------------

    @abc.abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The vendor's HTTP routes (each fake vendor defines them)."""

    def error_body(self, status: int, message: str) -> Any:
        return {"message": message}

    # ---- helpers for handlers ----------------------------------------------------------------

    @staticmethod
    def malformed(request: web.Request) -> Fault | None:
        """The malformed-row fault for this request, if one fired."""
        fault = request.get(FAULT)
        return fault if isinstance(fault, Fault) and fault.kind == "malformed" else None

    def error(self, status: int, message: str, **headers: str) -> web.Response:
        return web.json_response(self.error_body(status, message), status=status, headers=headers or None)

    # ---- running -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._rt is None:
            raise RuntimeError(f"fake {self.vendor} is not running")
        return f"http://127.0.0.1:{self._rt.port}"

    def requests(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self._log if path is None or r.path.startswith(path)]

    def reset(self) -> None:
        with self._lock:
            self._log.clear()
        self.faults.clear()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        record = Recorded(
            at=time.monotonic(),
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
        )
        with self._lock:
            self._log.append(record)
        fault = self.faults.take(request.path)
        response: web.StreamResponse
        if fault is not None and fault.kind == "delay":
            # Read the body first: a client that gives up during the delay must not make the
            # server drop a request it already received (that is "timeout after accept").
            await request.read()
            await asyncio.sleep(fault.seconds)
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
            body = (
                fault.body
                if fault.body is not None
                else self.error_body(
                    fault.status, "Too many requests" if fault.status == 429 else "Internal error"
                )
            )
            response = web.json_response(body, status=fault.status, headers=headers)
        elif fault is not None and fault.kind == "garbage":
            response = web.Response(
                text="<html><body>502 Bad Gateway</body></html>", content_type="text/html"
            )
        elif fault is not None and fault.kind == "drop":
            await handler(request)  # the venue acts on it ...
            if fault.status:  # ... and a proxy answers an error instead
                response = web.json_response(
                    self.error_body(fault.status, "Bad gateway"), status=fault.status
                )
            else:  # ... or the connection dies before the answer
                if request.transport is not None:
                    request.transport.abort()
                record.status = -1
                raise ConnectionResetError("fault: connection dropped after the venue accepted")
        else:
            request[FAULT] = fault
            response = await handler(request)
        record.status = response.status
        return response

    def start(self) -> Self:
        if self._rt is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"fake-{self.vendor}", daemon=True)
        thread.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

        async def boot() -> web.AppRunner:
            app = web.Application(middlewares=[self._middleware])
            app.add_routes(self.routes())
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
            await runner.setup()
            await web.SockSite(runner, sock).start()
            return runner

        runner = asyncio.run_coroutine_threadsafe(boot(), loop).result(timeout=10)
        self._rt = _Runtime(loop=loop, thread=thread, runner=runner, port=port)
        return self

    def stop(self) -> None:
        rt, self._rt = self._rt, None
        if rt is None:
            return
        asyncio.run_coroutine_threadsafe(rt.runner.cleanup(), rt.loop).result(timeout=10)
        rt.loop.call_soon_threadsafe(rt.loop.stop)
        rt.thread.join(timeout=10)
        rt.loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)
