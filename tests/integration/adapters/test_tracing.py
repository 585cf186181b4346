"""OpenTelemetry spans exported over OTLP/HTTP to a local fake collector."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.apphelp import make_settings, running
from tests.procs import free_port


def test_requests_become_spans_at_the_collector(tmp_path: Path) -> None:
    received: list[ExportTraceServiceRequest] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                received.append(req)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    port = free_port()
    server = HTTPServer(("127.0.0.1", port), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    import asyncio

    async def scenario() -> None:
        settings = make_settings(
            tmp_path, otel={"endpoint": f"http://127.0.0.1:{port}", "service_name": "algo-test"}
        )
        async with running(settings) as api:
            r = await api.client.get("/health", headers={"X-Request-ID": "trace-test-0001"})
            assert r.status_code == 200
            api.app.state.tracer_provider.force_flush()

    try:
        asyncio.run(scenario())
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        spans = [
            s for req in received for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans
        ]
        services = {
            a.value.string_value
            for req in received
            for rs in req.resource_spans
            for a in rs.resource.attributes
            if a.key == "service.name"
        }
        assert "algo-test" in services
        assert any("/health" in s.name for s in spans), [s.name for s in spans]
    finally:
        server.shutdown()
