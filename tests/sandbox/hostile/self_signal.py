# ruff: noqa
"""Sends itself SIGABRT.

Expected outcome: crashed
"""
import os, signal
def solve(x):
    os.kill(os.getpid(), signal.SIGABRT)
