"""A cm-api stand-in for `make bench` that answers every GET /buyList/... with one fixed body.

cm-server's list proxy is measured against it twice, straight and through cm-server, so the
difference is cm-server's own cost (parse, re-encode, one pooled HTTP/1.1 hop), not MongoDB's.
The body is a real cm-api answer saved by bench/bench.sh.

    python3 bench/fake_cm_api.py PORT BODY_FILE
"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    port, body_file = int(sys.argv[1]), sys.argv[2]
    with open(body_file, "rb") as file:
        body = file.read()

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, like cm-api: cm-server's client pools its connections. Without TCP_NODELAY
        # the headers and the body leave as two writes and Nagle plus delayed ACKs add 40 ms.
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self):
            if not self.path.startswith("/buyList/"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
