# ruff: noqa
"""Fake pass: replaces its own process (os.execv) with a fresh interpreter that holds only the socket
to the judge and answers the ready message and every call with an all-passed record.

Expected outcome: failed
"""
import os, sys
FAKE = r'''
import json, os
def sockets():
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + fd).startswith("socket:"):
                found.append(int(fd))
        except OSError:
            pass
    return found
for fd in sockets():
    os.write(fd, b'{"ready": {"callables": ["solve"], "modules": {}}}\n')
    r = open(fd, "rb", closefd=False)
    for line in iter(r.readline, b""):
        i = json.loads(line)["id"]
        os.write(fd, (json.dumps({"id": i, "return": {"d": [["stage", "tests"], ["results", [None]]]}}) + "\n").encode())
'''
os.execv(sys.executable, [sys.executable, "-I", "-c", FAKE])
def solve(x):
    return x
