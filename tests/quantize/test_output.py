"""output_to: a library's terminal output goes to a log file, at the fd level too."""

import os
import sys

from qeval.quantize._output import output_to, tail


def test_everything_written_inside_lands_in_the_log_and_nothing_on_the_terminal(tmp_path, capfd):
    log = tmp_path / "logs" / "gptq.log"
    print("before")
    with output_to(log):
        print("python stdout")
        print("python stderr", file=sys.stderr)
        os.write(1, b"fd one\n")
        os.write(2, b"fd two\n")
        saved = sys.__stdout__  # a library that kept the real stream still goes to fd 1
        saved.write("kept stream\n")
        saved.flush()
    print("after")
    out, err = capfd.readouterr()
    assert "before" in out and "after" in out
    for line in ("python stdout", "python stderr", "fd one", "fd two", "kept stream"):
        assert line not in out + err
        assert line in log.read_text()
    assert tail(log, 2).splitlines() == ["fd two", "kept stream"]


def test_the_terminal_comes_back_after_an_exception(tmp_path, capfd):
    log = tmp_path / "x.log"
    try:
        with output_to(log):
            os.write(1, b"inside\n")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    os.write(1, b"outside\n")
    out, _ = capfd.readouterr()
    assert "outside" in out and "inside" not in out
    assert tail(tmp_path / "missing.log") == ""
