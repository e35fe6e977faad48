"""An OTLP/HTTP trace receiver, independent of the services' exporter: it decodes what they send with
the OpenTelemetry project's own protobuf definitions (PyPI opentelemetry-proto) and keeps every span.

    with Receiver() as receiver:
        shop = Shop(env=receiver.environment())
        ...
        spans = receiver.wait_for(lambda spans: ..., timeout=30)
"""

import gzip
import http.server
import json
import threading

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from shoptest.waiting import wait_for

KINDS = {trace_pb2.Span.SPAN_KIND_INTERNAL: "internal", trace_pb2.Span.SPAN_KIND_SERVER: "server",
         trace_pb2.Span.SPAN_KIND_CLIENT: "client", trace_pb2.Span.SPAN_KIND_PRODUCER: "producer",
         trace_pb2.Span.SPAN_KIND_CONSUMER: "consumer"}
STATUS = {trace_pb2.Status.STATUS_CODE_UNSET: "unset", trace_pb2.Status.STATUS_CODE_OK: "ok",
          trace_pb2.Status.STATUS_CODE_ERROR: "error"}


def attribute_value(value):
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [attribute_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def attributes(pairs):
    return {pair.key: attribute_value(pair.value) for pair in pairs}


class Span(dict):
    """One received span as plain values: ids in lowercase hex (parent "" for a root), kind and status
    as words, attributes as a dict, links as dicts of trace_id, span_id and attributes."""

    def __getattr__(self, name):
        return self[name]


def decode(body):
    """The spans of one ExportTraceServiceRequest."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(Span(
                    service=resource.get("service.name"), resource=resource, name=span.name,
                    trace_id=span.trace_id.hex(), span_id=span.span_id.hex(), parent=span.parent_span_id.hex(),
                    kind=KINDS.get(span.kind, str(span.kind)), attributes=attributes(span.attributes),
                    links=[{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                            "attributes": attributes(link.attributes)} for link in span.links],
                    status=STATUS.get(span.status.code, str(span.status.code)), status_message=span.status.message,
                    start=span.start_time_unix_nano, end=span.end_time_unix_nano))
    return spans


class Receiver:
    """`POST /v1/traces` on a free loopback port; anything else is a 404. Bodies must be
    `application/x-protobuf` (gzip allowed): a JSON export would be refused with a 415."""

    def __init__(self):
        receiver = self
        self.spans = []
        self.requests = 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/traces":
                    return self.answer(404)
                if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/x-protobuf":
                    return self.answer(415)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                spans = decode(body)
                with receiver.lock:
                    receiver.spans.extend(spans)
                    receiver.requests += 1
                self.answer(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

            def answer(self, status, body=b""):
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *arguments):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exception):
        self.server.shutdown()
        self.server.server_close()

    def environment(self, **more):
        """The standard variables that send a service's spans here, exported within 100 ms."""
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": self.url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
               "OTEL_BSP_SCHEDULE_DELAY": "100"}
        env.update(more)
        return env

    def received(self):
        with self.lock:
            return list(self.spans)

    def wait_for(self, find, timeout=30):
        """The first truthy `find(spans)` over the spans received so far, within `timeout` seconds;
        None when it never is."""
        found = []

        def check():
            result = find(self.received())
            if result:
                found.append(result)
            return bool(result)

        wait_for(check, timeout, 0.1)
        return found[0] if found else None

    def dump(self, path):
        with open(path, "w") as out:
            json.dump(self.received(), out, indent=1)
