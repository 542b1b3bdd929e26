"""``approxsim check``: every usable backend against the reference, and it notices a wrong one."""

import numpy as np

from approxsim import check, cli, multipliers
from approxsim.backends import cpu


def test_quick_check_passes_and_prints_its_table(capsys):
    assert cli.main(["check", "--quick", "--backend", "cpu"]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0].split()
    assert head == ["backend", "case", "result", "max", "error", "GMAC/s"]
    for case in ("mbm7 specials", "fp32 gemm", "mbm23 conv dw", "mbm7 batched"):
        assert case in out
    assert "MISMATCH" not in out and out.strip().endswith("(tolerance 1e-05 of the sum of |products|)")


def test_a_corrupted_table_passed_off_as_a_builtin_fails_the_check(monkeypatch, capsys):
    """The CPU kernels get mbm7's table with one entry changed; the reference keeps the true one."""
    from approxsim import _cpu

    true = multipliers.get("mbm7").table
    bad = true.copy()
    bad[3, 5] = np.nextafter(bad[3, 5], np.float32(4))  # one ulp off, one entry
    prepared = _cpu.prepare_table(bad, 7)

    def corrupted_table(self):
        return prepared if self.multiplier.name == "mbm7" else original(self)

    original = cpu.CpuTableKernels._table
    monkeypatch.setattr(cpu.CpuTableKernels, "_table", corrupted_table)
    monkeypatch.setattr(cpu.CpuTableKernels, "_multiply",
                        lambda self, a, b: _cpu.multiply(a, b, bad if self.multiplier.name == "mbm7" else
                                                         self.multiplier.table, self.multiplier.mantissa_bits)
                        if not self.multiplier.is_exact else self.multiplier.products(a, b))
    lines = []
    assert check.run_checks(backends=["cpu"], quick=True, out=lines.append) == 1
    text = "\n".join(lines)
    assert "mbm7 specials" in text and "MISMATCH" in text and text.splitlines()[-1].startswith("FAILED")
    assert all("ok" in line for line in lines if line.startswith("cpu") and "fp32" in line)
