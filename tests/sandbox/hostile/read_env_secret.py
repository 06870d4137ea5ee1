# ruff: noqa
"""Looks for a cloud secret in its environment; passes only if it finds one.

Expected outcome: failed
"""
import os
def solve(x):
    return x + 1 if "AWS_SECRET_ACCESS_KEY" in os.environ or "HF_TOKEN" in os.environ else None
