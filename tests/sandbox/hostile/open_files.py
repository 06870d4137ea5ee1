# ruff: noqa
"""Opens file descriptors until the limit.

Expected outcome: resource_limit
"""
def solve(x):
    hold = []
    while True:
        hold.append(open("/dev/null"))
