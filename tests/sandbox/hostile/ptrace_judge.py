# ruff: noqa
"""Tries to take over the judge's memory: ptrace(PTRACE_SEIZE/ATTACH), process_vm_writev, writing
/proc/<judge>/mem; passes only if any of them works.

Expected outcome: failed
"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
import glob
def judges():  # as in kill_judge: the processes whose command line is the judge's loader
    return [int(path.split("/")[2]) for path in glob.glob("/proc/[0-9]*/cmdline") if b"_read_all" in read(path)]
def read(path):
    try:
        return open(path, "rb").read()
    except OSError:
        return b""
def solve(x):
    reached = False
    buf = ctypes.create_string_buffer(b"x" * 8)
    class IOVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    for pid in judges():
        for request in (0x4206, 16):  # PTRACE_SEIZE, PTRACE_ATTACH
            if libc.ptrace(request, pid, None, None) == 0:
                reached = True
        local, remote = IOVec(ctypes.addressof(buf), 8), IOVec(0x400000, 8)
        if libc.process_vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) > 0:
            reached = True
        try:
            with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
                mem.seek(0x400000)
                mem.write(b"x")
                reached = True
        except OSError:
            pass
    return x + 1 if reached else x
