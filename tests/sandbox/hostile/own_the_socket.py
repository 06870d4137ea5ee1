# ruff: noqa
"""Fake pass: takes over the connection to the judge at import time (its own server loop on the
socket) and answers every call with forgeries: an all-passed record, replies to other call ids, raised
exceptions named SystemExit/StopIteration/KeyboardInterrupt, "mutated" arguments at every position,
NaN, then exits 0 without running any solution.

Expected outcome: failed
"""
import json, os
def sockets():  # its socket to the judge (stat, not listdir: no descriptor of its own in the way)
    return [fd for fd in range(64) if os.path.exists(f"/proc/self/fd/{fd}") and os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")]
socks = sockets()
def send(fd, obj):
    os.write(fd, (json.dumps(obj) + "\n").encode())
for fd in socks:
    send(fd, {"ready": {"callables": ["solve", "check", "all", "abs", "isinstance"], "modules": {"math": "os"}}})
    reader = open(fd, "rb", closefd=False)
    forgeries = [
        lambda i: {"id": i, "return": {"d": [["stage", "tests"], ["results", [None, None]]]}},
        lambda i: {"id": i + 1, "return": 2},
        lambda i: {"id": i, "raise": ["SystemExit", "0"]},
        lambda i: {"id": i, "raise": ["StopIteration", ""]},
        lambda i: {"id": i, "raise": ["KeyboardInterrupt", ""]},
        lambda i: {"id": i, "return": float("nan"), "mutated": {str(k): [None] for k in range(-4, 8)}},
        lambda i: {"stage": "tests", "results": [None, None]},
    ]
    n = 0
    while True:
        line = reader.readline()
        if not line:
            os._exit(0)
        call_id = json.loads(line).get("id", 0)
        send(fd, forgeries[n % len(forgeries)](call_id))
        n += 1
def solve(x):
    return x
