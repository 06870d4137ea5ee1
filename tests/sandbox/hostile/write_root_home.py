# ruff: noqa
"""Drops a file into /root and /etc; passes only if it can.

Expected outcome: failed
"""
def solve(x):
    for path in ("/root/__MARKER__", "/etc/__MARKER__"):
        with open(path, "w") as fh:
            fh.write("pwned")
    return x + 1
