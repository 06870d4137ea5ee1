# ruff: noqa
"""Fake pass: monkeypatches the solution-side server it runs in (its wire encoder, send, answer) so
every reply claims success: an all-passed record, True, a value "equal to anything".

Expected outcome: failed
"""
import sys
RECORD = {"stage": "tests", "results": [None, None, None, None]}
for name, module in list(sys.modules.items()):
    if name.startswith("qeval"):
        if hasattr(module, "answer"):
            module.answer = lambda ns, req: {"id": req.get("id"), "return": {"d": [["stage", "tests"], ["results", [None, None]]]}}
        if hasattr(module, "to_wire"):
            module.to_wire = lambda value: {"d": [["stage", "tests"], ["results", [None, None]]]}
        if hasattr(module, "describe"):
            module.describe = lambda exc: "passed"
def solve(x):
    return x
