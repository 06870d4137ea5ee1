# ruff: noqa
"""Fake pass: monkeypatches json.dumps so the runner's record would claim success.

Expected outcome: failed
"""
import json
json.dumps = lambda *a, **k: '{"stage": "tests", "results": [null, null]}'
def solve(x):
    return x
