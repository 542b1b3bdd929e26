"""The approxsim command line: round trips across processes, and errors without tracebacks."""

import os
import subprocess
import sys

import numpy as np

from approxsim import cli, multipliers


def _run(*args):
    return subprocess.run([sys.executable, "-m", "approxsim.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120)


def test_multipliers_lists_builtins(capsys):
    assert cli.main(["multipliers"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "M=7" in lines["mbm7"] and "minimally biased" in lines["mbm7"]
    assert "exact" in lines["fp32"] and "M=7" in lines["bf16"]


def test_register_from_cli_then_use_in_another_process(tmp_path):
    src = tmp_path / "cli_model.c"
    src.write_text("float cli_model(float a, float b) { return a + b; }\n")
    out = _run("register", str(src), "--function", "cli_model", "--mantissa-bits", "11", "--name", "cli_m11")
    assert out.returncode == 0, out.stderr
    assert "registered 'cli_m11': M=11, 2048x2048 table" in out.stdout
    info = _run("info", "cli_m11")
    assert info.returncode == 0 and "2048x2048 float32" in info.stdout and "cli_model.c" in info.stdout
    listed = _run("multipliers")
    assert "cli_m11" in listed.stdout
    # The table is the model on the grid: T[i][j] = 2 + (i + j) / 2048.
    table = multipliers.get("cli_m11").table
    i, j = np.meshgrid(np.arange(2048), np.arange(2048), indexing="ij")
    np.testing.assert_array_equal(table, (2 + (i + j) / 2048).astype(np.float32))


def test_broken_file_prints_compiler_error_without_traceback(tmp_path):
    src = tmp_path / "broken.c"
    src.write_text("float broken(float a, float b) { return a *; }\n")
    out = _run("register", str(src), "--function", "broken", "--mantissa-bits", "4")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "broken.c does not compile" in out.stderr and "error:" in out.stderr
    assert "broken" not in [line.split()[0] for line in _run("multipliers").stdout.splitlines() if line.strip()]


def test_user_errors_are_one_line(tmp_path):
    for args, text in ((["info", "nosuch"], "Unknown multiplier 'nosuch'"),
                       (["register", str(tmp_path / "none.c"), "-f", "x", "-m", "3"], "does not exist"),
                       (["register", __file__, "-f", "x", "-m", "30"], "mantissa_bits")):
        out = _run(*args)
        assert out.returncode == 2, args
        assert "Traceback" not in out.stderr and text in out.stderr, out.stderr


def test_info_and_show_config(capsys):
    assert cli.main(["info", "MIT_7"]) == 0
    out = capsys.readouterr().out
    assert "name:          mitchell7" in out and "128x128 float32" in out and "range:" in out
    assert "Mitchell" in out  # the reference
    assert cli.main(["show-config"]) == 0
    out = capsys.readouterr().out
    assert "approxsim:" in out and "backend reference:" in out and "cache:" in out
    assert os.environ["APPROXSIM_CACHE"] in out


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 1
    assert "usage: approxsim" in capsys.readouterr().out
