# ruff: noqa
"""Fake pass: raises StopIteration from the solution, which would end a map() early and make
`all(map(check, cases))` true without checking anything.

Expected outcome: failed
"""
def solve(x):
    raise StopIteration
