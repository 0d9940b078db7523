#!/var/lang/bin/python3 -I
"""LocalStack's Lambda init, stood in for where LocalStack cannot download its own (no route to GitHub).

LocalStack copies this file into each image-function container as /var/rapid/init, the container's entrypoint, with
the image's command as its arguments, and drives it through its init protocol:

- LocalStack POSTs each invocation to :9563/invoke as ``{"invoke-id", "invoked-function-arn", "payload", "trace-id"}``
  (one at a time per container);
- the init POSTs ``$LOCALSTACK_RUNTIME_ENDPOINT/status/$LOCALSTACK_RUNTIME_ID/ready`` once it can take one (``/error``
  when the runtime cannot start), and per invocation ``.../invocations/<id>/logs``, then ``.../response`` or
  ``.../error``.

The runtime is the image's command run under the Runtime Interface Emulator that the Lambda base images carry
(/usr/local/bin/aws-lambda-rie), as Lambda's non-root user, and each invocation is handed to the emulator's invoke
endpoint. The emulator answers a failed invocation like a successful one (200, the error as the body), so the runtime
talks to the emulator's Runtime API through a pass-through proxy here: an invocation succeeded only if the runtime
posted its ``/response`` (not ``/error``, no crash, no timeout). The proxy also hands the runtime LocalStack's request
id and function ARN in place of the emulator's made-up ones, so the function's context and logs match LocalStack's.

Standard library only: it runs on the image's own Python (/var/lang/bin/python3).
"""

from __future__ import annotations

import codecs
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RIE = "/usr/local/bin/aws-lambda-rie"
LOOPBACK = "127.0.0.1"
RIE_INVOKE = f"{LOOPBACK}:8080"
RIE_RUNTIME_API = f"{LOOPBACK}:9001"
PROXY_PORT = 9002  # the runtime's AWS_LAMBDA_RUNTIME_API
INVOKE_PORT = 9563  # where LocalStack sends invocations
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
LAMBDA_USER = (993, 990)  # Lambda runs functions as a non-root user (sbx_user1051)
STARTUP_SECONDS = 30
REPORT_SECONDS = 2.0  # the emulator prints an invocation's REPORT line just after answering it
NOT_FORWARDED = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade"}
NOT_FORWARDED.add("expect")  # answered here (100 Continue)
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # LocalStack is reached directly


def log(message: str) -> None:
    print(f"[lambda init stand-in] {message}", file=sys.stderr, flush=True)


def report(path: str, body: bytes) -> None:
    """POST to LocalStack's endpoint for this execution environment."""
    url = os.environ["LOCALSTACK_RUNTIME_ENDPOINT"] + path
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with _DIRECT.open(request, timeout=30) as reply:
        reply.read()


def report_status(status: str, message: str = "") -> None:
    body = json.dumps({"errorType": "Runtime.InitError", "errorMessage": message}) if message else "{}"
    report(f"/status/{os.environ['LOCALSTACK_RUNTIME_ID']}/{status}", body.encode())


class Output:
    """The emulator's stdout (the runtime's output and its START/END/REPORT lines): echoed to the container's log and
    kept until an invocation takes it as its logs."""

    def __init__(self, stream) -> None:  # noqa: ANN001
        self._fd = stream.fileno()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""
        self._changed = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while chunk := os.read(self._fd, 65536):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            with self._changed:
                self._text += self._decoder.decode(chunk)
                self._changed.notify_all()

    def take(self, marker: str | None) -> str:
        """All output so far, once ``marker`` is in it (or after REPORT_SECONDS)."""
        deadline = time.monotonic() + REPORT_SECONDS
        with self._changed:
            while marker and marker not in self._text and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            text, self._text = self._text, ""
        return text


class Invocation:
    def __init__(self, request: dict) -> None:
        self.id: str = request["invoke-id"]
        self.arn: str = request["invoked-function-arn"]
        self.rie_id: str | None = None  # the emulator's request id for it
        self.outcome: str | None = None  # "response" or "error", as the runtime posted it


CURRENT: Invocation | None = None
ONE_AT_A_TIME = threading.Lock()


class RuntimeApiProxy(BaseHTTPRequestHandler):
    """The emulator's Runtime API, passed through: ids and ARN swapped for LocalStack's, the outcome noted."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (BaseHTTPRequestHandler's signature)
        pass

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else (b"" if self.command == "POST" else None)

    def _forward(self) -> None:
        body, path, invocation = self._body(), self.path, CURRENT
        outcome = re.fullmatch(r"(/[^/]+/runtime/invocation/)([^/]+)/(response|error)", path)
        if outcome and invocation and outcome[2] == invocation.id:
            path = f"{outcome[1]}{invocation.rie_id}/{outcome[3]}"
            invocation.outcome = outcome[3]
        headers = {k: v for k, v in self.headers.items() if k.lower() not in NOT_FORWARDED}
        upstream = http.client.HTTPConnection(RIE_RUNTIME_API)  # no timeout: /next waits for the next invocation
        try:
            upstream.request(self.command, path, body=body, headers=headers)
            reply = upstream.getresponse()
            data = reply.read()
            answer = [(k, v) for k, v in reply.getheaders() if k.lower() not in NOT_FORWARDED]
        finally:
            upstream.close()
        invocation = CURRENT  # /next returns when the next invocation has begun
        if path.endswith("/runtime/invocation/next") and reply.status == 200 and invocation:
            invocation.rie_id = reply.getheader("Lambda-Runtime-Aws-Request-Id")
            swap = {
                "lambda-runtime-aws-request-id": invocation.id,
                "lambda-runtime-invoked-function-arn": invocation.arn,
            }
            answer = [(k, swap.get(k.lower(), v)) for k, v in answer]
        self.send_response(reply.status)
        for name, value in answer:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def invoke(request: dict, output: Output) -> None:
    """One invocation: to the emulator, then its logs and its outcome to LocalStack."""
    global CURRENT
    with ONE_AT_A_TIME:
        invocation = CURRENT = Invocation(request)
        headers = {"Content-Type": "application/json"}
        if request.get("trace-id"):
            headers["X-Amzn-Trace-Id"] = request["trace-id"]
        try:
            emulator = http.client.HTTPConnection(RIE_INVOKE)  # no timeout: the emulator applies the function's
            emulator.request("POST", INVOKE_PATH, body=(request.get("payload") or "").encode(), headers=headers)
            body = emulator.getresponse().read()
        except OSError as exc:
            error = {"errorType": "Runtime.Unavailable", "errorMessage": f"the emulator did not answer: {exc}"}
            body = json.dumps(error).encode()
        finally:
            CURRENT = None
        logs = output.take(f"REPORT RequestId: {invocation.rie_id}" if invocation.rie_id else None)
        if invocation.rie_id:
            logs = logs.replace(invocation.rie_id, invocation.id)
        path = f"/invocations/{invocation.id}"
        report(f"{path}/logs", json.dumps({"logs": logs}).encode())
        report(f"{path}/{'response' if invocation.outcome == 'response' else 'error'}", body)


def invoke_handler(output: Output) -> type[BaseHTTPRequestHandler]:
    class InvokeHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            accepted = self.path == "/invoke" and "invoke-id" in request
            self.send_response(202 if accepted else 400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if accepted:
                threading.Thread(target=invoke, args=(request, output), daemon=True).start()

    return InvokeHandler


def prepare_filesystem() -> None:
    """What LocalStack asks its init to do (LOCALSTACK_CHMOD_PATHS), and /tmp writable by the Lambda user."""
    for entry in json.loads(os.environ.get("LOCALSTACK_CHMOD_PATHS") or "[]"):
        if os.path.exists(entry["path"]):
            os.chmod(entry["path"], int(entry["mode"], 8))
    os.chown("/tmp", *LAMBDA_USER)


def start_runtime(command: list[str]) -> subprocess.Popen:
    """The image's command under the emulator, told to use the proxy as its Runtime API."""
    pointed = f'AWS_LAMBDA_RUNTIME_API={LOOPBACK}:{PROXY_PORT} exec "$@"'
    args = [RIE, "--runtime-interface-emulator-address", RIE_INVOKE, "--runtime-api-address", RIE_RUNTIME_API]
    args += ["/bin/sh", "-c", pointed, "sh", *command]
    as_lambda = {"user": LAMBDA_USER[0], "group": LAMBDA_USER[1], "extra_groups": []} if os.getuid() == 0 else {}
    return subprocess.Popen(args, stdout=subprocess.PIPE, **as_lambda)


def listening(address: str, process: subprocess.Popen) -> bool:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + STARTUP_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((host, int(port))) == 0:
                return True
        time.sleep(0.05)
    return False


def main(command: list[str]) -> int:
    log(
        "LocalStack's Lambda init could not be downloaded here; this stand-in runs the function under the image's "
        "Runtime Interface Emulator"
    )
    if not command or not os.access(RIE, os.X_OK):
        problem = "the image has no command" if not command else f"the image has no {RIE}"
        report_status("error", f"lambda init stand-in: {problem}")
        return 1
    if os.getuid() == 0:
        prepare_filesystem()
    proxy = ThreadingHTTPServer((LOOPBACK, PROXY_PORT), RuntimeApiProxy)
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    runtime = start_runtime(command)
    output = Output(runtime.stdout)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 has no default action for SIGTERM
    try:
        if not listening(RIE_INVOKE, runtime):
            report_status("error", f"lambda init stand-in: the emulator did not start (exit code {runtime.poll()})")
            return 1
        server = ThreadingHTTPServer(("0.0.0.0", INVOKE_PORT), invoke_handler(output))
        server.daemon_threads = True

        def stop_with_the_emulator() -> None:
            log(f"the emulator exited (exit code {runtime.wait()})")
            server.shutdown()

        threading.Thread(target=stop_with_the_emulator, daemon=True).start()
        report_status("ready")
        server.serve_forever()
    finally:
        runtime.terminate()
    return runtime.wait() or 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
