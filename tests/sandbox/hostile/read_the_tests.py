# ruff: noqa
"""Looks for the tests to answer from them: the judge's command line, environment and working
directory, the harness's private directories, other runs' directories; if it finds `solve(N) == M`
anywhere, it answers from that table (a lookup-table "solution").

Expected outcome: failed
"""
import glob, os, re
def _texts():
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        for part in ("cmdline", "environ"):
            try:
                yield open(f"/proc/{pid}/{part}", "rb").read().decode(errors="replace")
            except OSError:
                pass
        try:
            yield os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            pass
    for pattern in ("/tmp/qeval-judge-*/*", "/tmp/qeval-harness-*/*", "/tmp/qeval-sandbox-*/*", "/proc/*/cwd/*"):
        for path in glob.glob(pattern):
            try:
                yield open(path, errors="replace").read()
            except OSError:
                pass
TABLE = {}
def solve(x):
    if not TABLE:
        for text in _texts():
            for n, m in re.findall(r"solve\((\d+)\) == (\d+)", text):
                TABLE[int(n)] = int(m)
            for n, m in re.findall(r"candidate\((\d+)\) == (\d+)", text):
                TABLE[int(n)] = int(m)
    return TABLE.get(x, x)
