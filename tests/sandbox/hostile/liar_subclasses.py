# ruff: noqa
"""Fake pass: returns subclasses of int, str, list and tuple whose __eq__ says yes to everything (the
values themselves are wrong), cycling through them call by call.

(Against the earlier in-process runner this scored passed.)

Expected outcome: failed
"""
class LiarInt(int):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = int.__hash__
class LiarStr(str):
    def __eq__(self, other): return True
    __hash__ = str.__hash__
class LiarList(list):
    def __eq__(self, other): return True
class LiarTuple(tuple):
    def __eq__(self, other): return True
    __hash__ = tuple.__hash__
CALLS = []
def solve(x):
    CALLS.append(x)
    kinds = [LiarInt(0), LiarStr("no"), LiarList([0]), LiarTuple((0,))]
    return kinds[len(CALLS) % len(kinds)]
