# ruff: noqa
"""Attacks the judge's decoder: answers the first call with JSON nested a million levels deep, then
a line over the size limit, an integer with a million digits and invalid UTF-8, then exits 0.

Expected outcome: failed
"""
import os
def sockets():  # its socket to the judge (stat, not listdir: no descriptor of its own in the way)
    return [fd for fd in range(64) if os.path.exists(f"/proc/self/fd/{fd}") and os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")]
socks = sockets()
for fd in socks:
    os.write(fd, b'{"ready": {"callables": ["solve"], "modules": {}}}\n')
    open(fd, "rb", closefd=False).readline()
    for payload in (b'{"id": 0, "return": ' + b"[" * 1_000_000 + b"\n",
                    b'{"id": 0, "return": "' + b"x" * (9 * 1024 * 1024) + b'"}\n',
                    b'{"id": 0, "return": ' + b"9" * 1_000_000 + b"}\n",
                    b'{"id": 0, "return": "\xff\xfe"}\n'):
        try:
            os.write(fd, payload)
        except OSError:
            pass
    os._exit(0)
def solve(x):
    return x
