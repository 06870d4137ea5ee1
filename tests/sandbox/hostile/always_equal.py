# ruff: noqa
"""Fake pass: returns an object that claims to equal anything (__eq__ True, __ne__ False, a spoofed
__class__ of int, __bool__ True, __hash__ of the expected value), so `solve(1) == 2` would hold.

(Against the earlier in-process runner this scored passed.)

Expected outcome: failed
"""
class Anything:
    __class__ = int  # isinstance(obj, int) is True
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __hash__(self): return 2
    def __int__(self): return 0
    def __index__(self): return 0
    def __lt__(self, other): return False
    def __gt__(self, other): return False
    def __sub__(self, other): return 0
    def __rsub__(self, other): return 0
    def __abs__(self): return 0
    def __repr__(self): return "2"
def solve(x):
    return Anything()
