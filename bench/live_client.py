"""The dashboard's live stream without a browser: logs in to the clinic service
(`POST /api/login`) and reads `GET /api/live` (Server-Sent Events) as the page's EventSource
does, noting when each `tile` event arrives. Run by bench/fleet.py as
    python bench/live_client.py BASE_URL USERNAME PASSWORD OUTPUT
On SIGTERM it writes one line per tile event to OUTPUT: arrival (Unix s), device, heart rate
(`-` when none), mode.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

base, username, password, output = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
netloc = urlsplit(base).netloc
seen: list[tuple[float, bytes]] = []
done = threading.Event()


def login() -> str:
    conn = http.client.HTTPConnection(netloc, timeout=10)
    body = json.dumps({"username": username, "password": password})
    conn.request("POST", "/api/login", body, {"Content-Type": "application/json"})
    answer = conn.getresponse()
    answer.read()
    if answer.status != 200:
        sys.exit(f"live_client: login refused ({answer.status})")
    cookie = answer.getheader("Set-Cookie") or ""
    conn.close()
    return cookie.split(";", 1)[0]


def read() -> None:
    """Raw socket reads, each line stamped when its bytes arrive (no reader's buffering)."""
    host, _, port = netloc.partition(":")
    sock = socket.create_connection((host, int(port or 80)), timeout=60)
    request = (
        f"GET /api/live HTTP/1.1\r\nHost: {netloc}\r\nCookie: {login()}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    )
    sock.sendall(request.encode())
    pending, event = b"", b""
    while not done.is_set():
        data = sock.recv(65536)
        if not data:
            break
        now = time.time()
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:  # chunk sizes and the head's lines match neither prefix
            if line.startswith(b"event: "):
                event = line[7:].strip()
            elif line.startswith(b"data: ") and event == b"tile":
                seen.append((now, line[6:]))  # parsed afterwards


signal.signal(signal.SIGTERM, lambda *_: done.set())
threading.Thread(target=read, daemon=True, name="live").start()
print("reading", flush=True)
done.wait()
lines = []
for at, raw in seen:
    tile = json.loads(raw)
    bpm = tile.get("heart_rate_bpm")
    lines.append(f"{at:.6f} {tile['device']} {'-' if bpm is None else bpm} {tile.get('mode')}\n")
output.write_text("".join(lines))
