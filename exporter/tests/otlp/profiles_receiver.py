"""A small OTLP profiles receiver on the official opentelemetry-proto and grpcio packages.

Usage: profiles_receiver.py GRPC_PORT HTTP_PORT [MODE [CERT KEY]]
MODE (HTTP only) is `ok` (the default), `reject` (every export answered 400, which the OTLP
specification makes final), `slow` (every answer 3 s late) or `flaky` (the first 5 exports
answered 503 with Retry-After: 1, which the specification makes retryable, then accepted). With CERT and KEY (PEM files) both
servers speak TLS with that certificate.
Serves ProfilesService/Export (and accepts logs and metrics unread) over gRPC and POST /v1development/profiles over HTTP
(protobuf, gzip or not) on 127.0.0.1, and prints each export it decodes as one JSON
line (protobuf's JSON mapping), flushed, for the Rust tests to check.
"""

import gzip
import ssl
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs, logs_service_pb2_grpc as logs_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2 as metrics,
    metrics_service_pb2_grpc as metrics_grpc,
)
from opentelemetry.proto.collector.profiles.v1development import (
    profiles_service_pb2 as service,
    profiles_service_pb2_grpc as service_grpc,
)

LOCK = threading.Lock()
FLAKY_LEFT = [5]
MODE = sys.argv[3] if len(sys.argv) > 3 else "ok"
CERT, KEY = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, None)


def emit(request):
    line = json_format.MessageToJson(request, indent=None)
    with LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Profiles(service_grpc.ProfilesServiceServicer):
    def Export(self, request, context):
        emit(request)
        return service.ExportProfilesServiceResponse()


class Logs(logs_grpc.LogsServiceServicer):
    """Accepts logs unread: this receiver is about profiles."""

    def Export(self, request, context):
        return logs.ExportLogsServiceResponse()


class Metrics(metrics_grpc.MetricsServiceServicer):
    """Accepts metrics unread: this receiver is about profiles."""

    def Export(self, request, context):
        return metrics.ExportMetricsServiceResponse()


class Http(BaseHTTPRequestHandler):
    def do_POST(self):
        if MODE == "slow":
            time.sleep(3)
        if MODE == "flaky":
            with LOCK:
                refuse = FLAKY_LEFT[0] > 0
                FLAKY_LEFT[0] -= 1
            if refuse:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(503)
                self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        if MODE == "reject":
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path in ("/v1/logs", "/v1/metrics"):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path != "/v1development/profiles":
            self.send_response(404)
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = service.ExportProfilesServiceRequest()
        request.ParseFromString(body)
        emit(request)
        payload = service.ExportProfilesServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def main():
    grpc_port, http_port = int(sys.argv[1]), int(sys.argv[2])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service_grpc.add_ProfilesServiceServicer_to_server(Profiles(), server)
    logs_grpc.add_LogsServiceServicer_to_server(Logs(), server)
    metrics_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    if CERT:
        with open(KEY, "rb") as key, open(CERT, "rb") as cert:
            credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
        server.add_secure_port(f"127.0.0.1:{grpc_port}", credentials)
    else:
        server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    server.start()
    http = ThreadingHTTPServer(("127.0.0.1", http_port), Http)
    if CERT:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(CERT, KEY)
        http.socket = context.wrap_socket(http.socket, server_side=True)
    http.serve_forever()


if __name__ == "__main__":
    main()
