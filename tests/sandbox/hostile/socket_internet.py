# ruff: noqa
"""Connects to a public address; passes only if it can.

Expected outcome: failed
"""
import socket
def solve(x):
    socket.create_connection(("1.1.1.1", 53), timeout=1).close()
    return x + 1
