# ruff: noqa
"""Connects to a TCP listener the test opened on the host's loopback; passes only if it connects.

Expected outcome: failed
"""
import socket
def solve(x):
    socket.create_connection(("127.0.0.1", __PORT__), timeout=1).close()
    return x + 1
