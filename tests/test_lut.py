"""approxsim's table file format: round trip, and every way a file can be bad."""

import os

import numpy as np
import pytest

import approxsim
from approxsim.lut import FORMAT_VERSION, load_table, save_table


def _table(m=3, seed=0):
    rng = np.random.default_rng(seed)
    return (1 + rng.random((1 << m, 1 << m)) * 3).astype(np.float32)


def test_round_trip(tmp_path):
    t = _table()
    path = save_table(tmp_path / "t", t, 3, name="demo", source="unit test")
    assert path.name == "t.npz"
    loaded, m, meta = load_table(path)
    assert m == 3 and np.array_equal(loaded, t) and loaded.dtype == np.float32
    assert meta == {"name": "demo", "source": "unit test", "key": "", "provenance": {}}
    path = save_table(tmp_path / "sub" / "k", t, 3, key="abc", provenance={"function": "f", "mantissa_bits": 3})
    assert load_table(path)[2]["key"] == "abc" and load_table(path)[2]["provenance"]["function"] == "f"
    assert not loaded.flags.writeable
    assert [p for p in os.listdir(tmp_path) if p not in ("t.npz", "sub")] == []  # no temporary files left


def test_truncated_file(tmp_path):
    path = save_table(tmp_path / "t.npz", _table(), 3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(approxsim.TableFileError, match="truncated"):
        load_table(path)


def test_corrupt_table_fails_checksum(tmp_path):
    path = tmp_path / "t.npz"
    save_table(path, _table(), 3)
    with np.load(path) as z:
        fields = {k: z[k] for k in z.files}
    fields["table"] = fields["table"].copy()
    fields["table"][1, 2] += 1
    np.savez(path, **fields)
    with pytest.raises(approxsim.TableFileError, match="checksum"):
        load_table(path)


def test_wrong_size_and_version_and_foreign_files(tmp_path):
    path = tmp_path / "t.npz"
    save_table(path, _table(), 3)
    with np.load(path) as z:
        fields = {k: z[k] for k in z.files}
    np.savez(path, **{**fields, "mantissa_bits": np.array(4)})
    with pytest.raises(approxsim.TableFileError, match="mantissa_bits=4 .* shape \\(8, 8\\)"):
        load_table(path)
    np.savez(path, **{**fields, "format_version": np.array(FORMAT_VERSION + 1)})
    with pytest.raises(approxsim.TableFileError, match="format version"):
        load_table(path)
    np.savez(path, table=fields["table"])
    with pytest.raises(approxsim.TableFileError, match="not an approxsim table"):
        load_table(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(approxsim.TableFileError):
        load_table(tmp_path / "junk.npz")
    with pytest.raises(approxsim.TableFileError, match="does not exist"):
        load_table(tmp_path / "missing.npz")


def test_save_rejects_bad_tables(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        save_table(tmp_path / "t", np.ones((3, 3)), 2)
    bad = _table(2)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="finite"):
        save_table(tmp_path / "t", bad, 2)
    assert not any(tmp_path.iterdir())


def test_damaged_cache_entry_is_rebuilt(tmp_path):
    src = tmp_path / "sq.c"
    src.write_text("float sq(float a, float b) { return a * b; }\n")
    mult = approxsim.multipliers.register_c(src, function="sq", mantissa_bits=2, name="sq_rebuild")
    from approxsim.compile import build_table

    table, table_file = build_table(src, function="sq", mantissa_bits=2)
    table_file.write_bytes(b"garbage")
    again, _ = build_table(src, function="sq", mantissa_bits=2)
    assert np.array_equal(again, mult.table)
    assert load_table(table_file)[1] == 2
