# ruff: noqa
"""Fake pass: reads the closure cells of every function on the heap (where an in-process harness keeps
its nonce and record descriptor), writes nonce + an all-passed record to every descriptor found there,
rewrites list cells and defaults to all-passed, then exits 0.
(Against the earlier in-process runner this scored passed.)

Expected outcome: failed
"""
import gc, os
LINE = '{"stage": "tests", "results": [null, null, null, null, null, null, null, null]}\n'
def _attack():
    forged = False
    for fn in [o for o in gc.get_objects() if type(o).__name__ == "function"]:
        cells = []
        for cell in fn.__closure__ or ():
            try:
                cells.append(cell.cell_contents)
            except ValueError:
                continue
            if isinstance(cell.cell_contents, list):
                cell.cell_contents = [None] * 8
        nonces = [c for c in cells if isinstance(c, str) and len(c) == 32]
        fds = [c for c in cells if isinstance(c, int) and not isinstance(c, bool) and 2 < c < 1024]
        for fd in fds:
            for nonce in nonces or [""]:
                try:
                    os.write(fd, (nonce + LINE).encode())
                    forged = forged or bool(nonce)
                except OSError:
                    pass
        if fn.__defaults__:
            fn.__defaults__ = tuple([None] * 8 if isinstance(d, list) else d for d in fn.__defaults__)
    return forged
def solve(x):
    if _attack():
        os._exit(0)
    return x
