# ruff: noqa
"""Fake pass: announces extra "functions" in place of its server's ready message (the builtins all,
abs, isinstance, len, map, the tests' own check, and the module name math mapped to os), then answers
every call with True, so that if the judge routed the tests' own helpers to the solution, `check`
and `all(...)` would say yes.

Expected outcome: failed
"""
import json, os
def sockets():  # its socket to the judge (stat, not listdir: no descriptor of its own in the way)
    return [fd for fd in range(64) if os.path.exists(f"/proc/self/fd/{fd}") and os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")]
for fd in sockets():
    os.write(fd, (json.dumps({"ready": {"callables": ["solve", "all", "abs", "isinstance", "check", "len", "map"],
                                        "modules": {"math": "os", "check": "os"}}}) + "\n").encode())
    reader = open(fd, "rb", closefd=False)
    for line in iter(reader.readline, b""):
        os.write(fd, (json.dumps({"id": json.loads(line)["id"], "return": True}) + "\n").encode())
    os._exit(0)
def solve(x):
    return x
