"""approxsim.int_metrics: EvoApproxLib's error figures of integer multipliers, and their plots.

The published figures in the header comments of the EvoApproxLib models under
../shared/reference/evoapprox are reproduced from exhaustive tables that the independent C
harness (tests/c_harness.py) builds by calling each model directly.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import c_harness
from approxsim import int_metrics as im
from approxsim import plots

EVOAPPROX = Path(__file__).resolve().parents[2] / "shared" / "reference" / "evoapprox"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# name: (c_harness signature, bits, signed, width of the bit pattern a signed circuit returns
# through an unsigned C type, to be sign-extended; None when the C type already is signed/exact)
MODELS = {
    "mul8u_1JFF": ("u8", 8, False, None),
    "mul8u_2AC": ("u64", 8, False, None),   # uint64_t f(const uint64_t B, const uint64_t A)
    "mul8u_FTA": ("u64", 8, False, None),
    "mul8s_1KR3": ("s8", 8, True, None),    # int16_t f(int8_t, int8_t)
    "mul8s_1L2H": ("u8", 8, True, 16),      # signed circuit, uint16_t f(uint8_t, uint8_t)
    "mul12u_2EP": ("u16", 12, False, None),  # uint32_t f(uint16_t, uint16_t)
}

needs_models = pytest.mark.skipif(
    not EVOAPPROX.is_dir() or not (shutil.which("cc") or shutil.which("gcc")),
    reason="needs ../shared/reference/evoapprox beside the checkout and a C compiler")


@functools.cache
def model_table(name: str) -> np.ndarray:
    """The exhaustive int64 table of a reference model, signed products for signed circuits."""
    signature, bits, signed, width = MODELS[name]
    raw = c_harness.exhaustive(EVOAPPROX / f"{name}.c", name, signature, bits, signed)
    if width is not None:
        low = raw & ((1 << width) - 1)
        raw = np.where(low >= 1 << (width - 1), low - (1 << width), low)
    raw.setflags(write=False)
    return raw


_FIGURE = re.compile(r"^//\s*(MAE%|MAE|WCE%|WCE|WCRE%|EP%|MRE%|MSE)\s*=\s*"
                     r"([-+]?\d+(?:\.(\d*))?)(?:e([-+]?\d+))?\s*%?\s*$")


def published_figures(path: Path) -> dict:
    """``{key: (mantissa text, decimals, exponent)}`` from a model's header comment, e.g.
    ``// MSE = 72829.102e2`` gives ``("72829.102", 3, 2)``."""
    figures = {}
    for line in path.read_text().splitlines():
        m = _FIGURE.match(line.strip())
        if m:
            key, mantissa, frac, exp = m.groups()
            figures[key] = (mantissa, len(frac or ""), int(exp or 0))
    return figures


def test_figure_parser(tmp_path):
    path = tmp_path / "m.c"
    path.write_text("// MAE% = 0.037 %\n// MAE = 25 \n// MSE = 72829.102e2 \n// PDK45_PWR = 0.3 mW\n")
    assert published_figures(path) == {"MAE%": ("0.037", 3, 0), "MAE": ("25", 0, 0),
                                       "MSE": ("72829.102", 3, 2)}


# ------------------------------------------------------------------ published figures, per model

def _check_published(name: str):
    _, bits, signed, _ = MODELS[name]
    figures = published_figures(EVOAPPROX / f"{name}.c")
    assert set(figures) == set(im.METRIC_KEYS), f"{name}: header figures {sorted(figures)}"
    ours = im.error_metrics(model_table(name), bits, signed)
    assert ours["pairs"] == 1 << (2 * bits) and ours["exhaustive"] is True
    for key, (mantissa, decimals, exp) in figures.items():
        value = ours[key]
        # Exactly within half a unit of the last printed digit (either side of an exact tie) ...
        unit = Decimal(1).scaleb(exp - decimals)
        assert abs(Decimal(value) - Decimal(mantissa).scaleb(exp)) <= unit / 2, \
            f"{name} {key}: ours {value!r}, published {mantissa}e{exp}"
        # ... and printed the way the file prints it (printf rounding of the float64 value).
        assert f"{value / 10 ** exp:.{decimals}f}" == mantissa, \
            f"{name} {key}: ours {value!r} prints as {value / 10 ** exp:.{decimals}f}, file {mantissa}"


@needs_models
@pytest.mark.parametrize("name", [n for n in MODELS if MODELS[n][1] == 8])
def test_published_figures_8bit(name):
    _check_published(name)


@needs_models
def test_published_figures_12bit():
    _check_published("mul12u_2EP")


@needs_models
def test_sign_extension_matters_for_1L2H():
    """mul8s_1L2H returns the int16 result's bit pattern: read as unsigned its figures are wrong."""
    raw = c_harness.exhaustive(EVOAPPROX / "mul8s_1L2H.c", "mul8s_1L2H", "u8", 8, True)
    assert raw.min() >= 0 and raw.max() > 32767
    assert im.error_metrics(raw, 8, True)["WCE"] > 255
    assert im.error_metrics(model_table("mul8s_1L2H"), 8, True)["WCE"] == 255


@needs_models
def test_int32_table_gives_the_same_figures():
    table = model_table("mul8s_1KR3")
    assert im.error_metrics(table.astype(np.int32), 8, True) == im.error_metrics(table, 8, True)


# ------------------------------------------------------------------------------------ unit tests

def test_codes():
    assert im.codes(2, False).tolist() == [0, 1, 2, 3]
    assert im.codes(2, True).tolist() == [0, 1, -2, -1]
    c = im.codes(8, True)
    assert c.dtype == np.int64 and c[127] == 127 and c[128] == -128 and c[255] == -1
    assert im.codes(16, False)[-1] == 65535


@pytest.mark.parametrize("bits,signed", [(2, False), (2, True), (5, True), (8, False), (8, True)])
def test_exact_table_has_no_error(bits, signed):
    c = im.codes(bits, signed)
    m = im.error_metrics(np.multiply.outer(c, c), bits, signed)
    for key in im.METRIC_KEYS + ("mean_error",):
        assert m[key] == 0.0 and isinstance(m[key], float), key
    assert m["pairs"] == 4 ** bits and m["exhaustive"] is True


def test_hand_made_unsigned_2bit():
    c = im.codes(2, False)
    t = np.multiply.outer(c, c)
    t[3, 2] = 4  # 3*2 = 6: e = -2
    m = im.error_metrics(t, 2, False)
    assert m == {
        "MAE": 2 / 16, "MAE%": 100 * (2 / 16) / 16, "WCE": 2.0, "WCE%": 100 * 2 / 16,
        "EP%": 100 / 16, "MSE": 4 / 16,
        "MRE%": pytest.approx(100 * (2 / 6) / 9, rel=1e-15),  # 9 pairs with a*b != 0
        "WCRE%": pytest.approx(100 * 2 / 6, rel=1e-15),
        "mean_error": -2 / 16, "pairs": 16, "exhaustive": True}


def test_hand_made_signed_2bit():
    """Codes 0, 1, -2, -1 at patterns 0..3; one error where a*b = 0 (in MAE, not in MRE)."""
    c = im.codes(2, True)
    t = np.multiply.outer(c, c)
    t[2, 2] = 3  # (-2)*(-2) = 4: e = -1, relative 1/4
    t[1, 0] = 1  # 1*0 = 0: e = +1, no relative error
    m = im.error_metrics(t, 2, True)
    assert m == {
        "MAE": 2 / 16, "MAE%": 100 * (2 / 16) / 16, "WCE": 1.0, "WCE%": 100 / 16,
        "EP%": 100 * 2 / 16, "MSE": 2 / 16,
        "MRE%": pytest.approx(100 * 0.25 / 9, rel=1e-15), "WCRE%": 25.0,
        "mean_error": 0.0, "pairs": 16, "exhaustive": True}


@pytest.mark.parametrize("big", [(1 << 25) - 1, 1 << 40])
def test_large_errors_are_summed_exactly(big):
    """e just under 2^25 or ~ 2^40 over 2^22 pairs: sums of e^2 overflow int64 (per element too,
    at 2^40) and float64 sums would round; ours are exact."""
    bits = 11
    c = im.codes(bits, False)
    t = np.full((c.size, c.size), big, dtype=np.int64)
    m = im.error_metrics(t, bits, False)
    n, s1, s2 = c.size ** 2, int(c.sum()), int((c * c).sum())
    # sum (big - ab) = n big - s1^2; sum (big - ab)^2 = n big^2 - 2 big s1^2 + s2^2
    assert m["MAE"] == float(Fraction(n * big - s1 * s1, n))
    assert m["MSE"] == float(Fraction(n * big * big - 2 * big * s1 * s1 + s2 * s2, n))
    assert m["WCE"] == float(big) and m["mean_error"] == m["MAE"]


def test_tables_near_the_value_limit():
    c = im.codes(2, True)
    t = np.full((4, 4), 2 ** 49, dtype=np.int64)
    m = im.error_metrics(t, 2, True)
    assert m["MSE"] == float(Fraction(sum((2 ** 49 - int(a) * int(b)) ** 2 for a in c for b in c), 16))
    with pytest.raises(ValueError, match=r"beyond \+-2\^49"):
        im.error_metrics(t + 1, 2, True)
    with pytest.raises(ValueError, match=r"beyond \+-2\^49"):
        im.error_metrics(np.full((4, 4), 2 ** 64 - 1, dtype=np.uint64), 2, False)


# ---------------------------------------------------------------------------------- sampled

@pytest.mark.parametrize("bits,signed,extremes", [(8, False, 9), (8, True, 25), (16, False, 9),
                                                  (16, True, 25)])
def test_sampled_exact_products_have_no_error(bits, signed, extremes):
    m = im.sampled_error_metrics(lambda a, b: a * b, bits, signed, samples=10_000, seed=3)
    for key in im.METRIC_KEYS + ("mean_error",):
        assert m[key] == 0.0, key
    assert m["pairs"] == 10_000 + extremes and m["exhaustive"] is False


def test_sampled_sees_the_extreme_pairs():
    seen = []

    def products(a, b):
        seen.append((a.copy(), b.copy()))
        return a * b

    im.sampled_error_metrics(products, 16, True, samples=5)
    pairs = {(int(x), int(y)) for a, b in seen for x, y in zip(a, b)}
    ext = [-32768, -1, 0, 1, 32767]
    assert {(x, y) for x in ext for y in ext} <= pairs


def test_sampled_big_errors_are_exact():
    """A 16-bit circuit with errors up to 2^40: the figures match exact Python sums of its pairs."""
    seen = []

    def products(a, b):
        seen.append((a.copy(), b.copy()))
        return a * b + (a << 24)

    m = im.sampled_error_metrics(products, 16, False, samples=20_000, seed=7)
    es = [int(x) << 24 for a, _ in seen for x in a]
    n = len(es)
    assert m["pairs"] == n == 20_009
    assert m["MSE"] == float(Fraction(sum(e * e for e in es), n))
    assert m["MAE"] == float(Fraction(sum(es), n)) == m["mean_error"]
    assert m["MAE%"] == float(Fraction(100 * sum(es), n * 2 ** 32))


def test_sampled_is_reproducible():
    def f(a, b):
        return a * b + (a & b & 3)

    one = im.sampled_error_metrics(f, 12, True, samples=5000, seed=11)
    assert one == im.sampled_error_metrics(f, 12, True, samples=5000, seed=11)
    assert one != im.sampled_error_metrics(f, 12, True, samples=5000, seed=12)


@needs_models
def test_sampled_close_to_exhaustive_on_2AC():
    """10^6 seeded pairs of mul8u_2AC against its exhaustive figures.

    The sampled means are means of 10^6 uniform draws from the 65536 pairs, so each lies within
    5 standard errors (sd over all pairs / sqrt(draws)) of the exhaustive one except with
    probability < 1e-6 (and the seed makes the run deterministic). Each pair is drawn ~15 times, so
    a given worst-case pair is missed with probability exp(-10^6/65536) ~ 2e-7: WCE and WCRE equal
    the exhaustive ones.
    """
    table = model_table("mul8u_2AC")
    full = im.error_metrics(table, 8, False)
    draws = 10 ** 6
    samp = im.sampled_error_metrics(lambda a, b: table[a & 255, b & 255], 8, False, samples=draws)
    assert samp["pairs"] == draws + 9 and samp["exhaustive"] is False
    c = im.codes(8, False)
    exact = np.multiply.outer(c, c)
    e = (table - exact).astype(np.float64)
    nz = exact != 0
    rel = np.abs(e[nz]) / exact[nz]
    sd = {"MAE": np.abs(e).std(), "MSE": (e * e).std(), "mean_error": e.std(),
          "EP%": 100 * (e != 0).std(), "MRE%": 100 * rel.std()}
    sd["MAE%"] = sd["MAE"] * 100 / 2 ** 16
    for key, s in sd.items():
        n = draws * (nz.mean() if key == "MRE%" else 1)
        assert abs(samp[key] - full[key]) <= 5 * s / math.sqrt(n), (key, samp[key], full[key])
    assert samp["WCE"] == full["WCE"] and samp["WCE%"] == full["WCE%"]
    assert samp["WCRE%"] == full["WCRE%"]


# -------------------------------------------------------------------------------- validation

def test_bad_inputs():
    exact8 = np.multiply.outer(im.codes(8, False), im.codes(8, False))
    with pytest.raises(ValueError, match=r"bits must be an integer from 2 to 12.*bits=True"):
        im.error_metrics(exact8, True, False)
    with pytest.raises(ValueError, match=r"bits must be an integer from 2 to 12.*bits=13"):
        im.error_metrics(exact8, 13, False)
    with pytest.raises(ValueError, match=r"bits=8\.0"):
        im.error_metrics(exact8, 8.0, False)
    with pytest.raises(ValueError, match=r"must have shape \(128, 128\).*table\.shape=\(256, 256\)"):
        im.error_metrics(exact8, 7, False)
    with pytest.raises(ValueError, match=r"must have shape \(256, 256\).*\(255, 256\)"):
        im.error_metrics(exact8[1:], 8, False)
    with pytest.raises(ValueError, match=r"must hold integers, not float64.*astype"):
        im.error_metrics(exact8.astype(np.float64), 8, False)
    with pytest.raises(ValueError, match=r"must hold integers, not bool"):
        im.error_metrics(np.zeros((4, 4), dtype=bool), 2, False)
    with pytest.raises(ValueError, match=r"signed must be True .* or False .*signed='yes'"):
        im.error_metrics(exact8, 8, "yes")
    with pytest.raises(ValueError, match=r"from 2 to 16.*bits=17"):
        im.codes(17, False)
    with pytest.raises(ValueError, match=r"from 2 to 16.*bits=1"):
        im.codes(1, True)
    with pytest.raises(ValueError, match=r"from 2 to 16.*bits=False"):
        im.sampled_error_metrics(lambda a, b: a * b, False, False)
    with pytest.raises(ValueError, match=r"samples must be an integer >= 1.*samples=0"):
        im.sampled_error_metrics(lambda a, b: a * b, 8, False, samples=0)
    with pytest.raises(ValueError, match=r"samples must be an integer >= 1.*samples=True"):
        im.sampled_error_metrics(lambda a, b: a * b, 8, False, samples=True)
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0.*seed=-1"):
        im.sampled_error_metrics(lambda a, b: a * b, 8, False, seed=-1)
    with pytest.raises(ValueError, match=r"products must be a function"):
        im.sampled_error_metrics(exact8, 8, False)
    with pytest.raises(ValueError, match=r"one product per pair: shape \(9,\).*shape \(\)"):
        im.sampled_error_metrics(lambda a, b: np.int64(0), 8, False, samples=10)
    with pytest.raises(ValueError, match=r"must hold integers, not float64"):
        im.sampled_error_metrics(lambda a, b: a * b * 1.0, 8, False, samples=10)
    with pytest.raises(ValueError, match=r"missing: MAE, MAE%"):
        im.format_metrics({})


def test_format_metrics():
    c = im.codes(2, False)
    t = np.multiply.outer(c, c)
    t[3, 2] = 4
    text = im.format_metrics(im.error_metrics(t, 2, False))
    lines = text.split("\n")
    labels = [line.split("  ")[0].strip() for line in lines[:-1]]
    assert labels == ["MAE", "MAE%", "WCE", "WCE%", "EP%", "MSE", "MRE%", "WCRE%", "mean error"]
    assert len({len(line) - len(line[len(line.split("  ")[0]):].lstrip()) for line in lines[:-1]}) == 1
    assert lines[0].split()[-1] == "0.125" and lines[2].split()[-1] == "2"
    assert lines[1].endswith(" %") and lines[8].split()[-1] == "-0.125"
    assert lines[-1] == "exhaustive over 16 pairs"
    sampled = im.sampled_error_metrics(lambda a, b: a * b, 8, False, samples=1000)
    assert im.format_metrics(sampled).split("\n")[-1] == "sampled 1009 pairs"


# ------------------------------------------------------------------------------------- plots

def _signed_table(bits: int) -> np.ndarray:
    c = im.codes(bits, True)
    t = np.multiply.outer(c, c)
    t[c.size // 2 + 3, 5] += 7  # a = min + 3, b = 5
    return t


@pytest.mark.parametrize("plot", [plots.error_map_plot, plots.error_histogram_plot])
@pytest.mark.parametrize("bits", [4, 10])
def test_plots_write_png(tmp_path, plot, bits):
    out = plot(_signed_table(bits), bits, True, tmp_path / "err.png", title="test")
    assert out == tmp_path / "err.png"
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(os.listdir(tmp_path)) == ["err.png"]  # no temporary file left


@needs_models
@pytest.mark.parametrize("plot", [plots.error_map_plot, plots.error_histogram_plot])
def test_plots_of_a_model(tmp_path, plot):
    out = plot(model_table("mul8u_1JFF"), 8, False, str(tmp_path / "exact.png"))
    assert out.read_bytes()[:8] == PNG_SIGNATURE and sorted(os.listdir(tmp_path)) == ["exact.png"]


def test_error_map_orders_codes_and_keeps_signed_block_extremes():
    bits = 10
    c = im.codes(bits, True)
    t = np.multiply.outer(c, c)
    t[c.size // 2 + 3, 5] -= 1000   # a = -509, b = 5: ordered row 3, column 517
    t[c.size // 2 + 2, 6] += 999    # same 4x4 block, smaller |e|
    t[0, 0] += 1                    # a = b = 0: ordered row/column 512
    emap, _, f = im.error_map(t, bits, True)
    assert f == 4 and emap.shape == (256, 256)
    assert emap[0, 517 // 4] == -1000 and emap[512 // 4, 512 // 4] == 1
    assert np.count_nonzero(emap) == 2
    small, _, f1 = im.error_map(_signed_table(4), 4, True)
    assert f1 == 1 and small[3, 8 + 5] == 7 and np.count_nonzero(small) == 1


def test_failed_render_leaves_no_file(tmp_path, monkeypatch):
    import matplotlib.figure

    old = tmp_path / "old.png"
    old.write_bytes(b"previous")

    def broken(self, fh, **kwargs):
        fh.write(PNG_SIGNATURE + b"half")
        raise RuntimeError("render failed")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    for plot in (plots.error_map_plot, plots.error_histogram_plot):
        with pytest.raises(RuntimeError, match="render failed"):
            plot(_signed_table(4), 4, True, tmp_path / "new.png")
        with pytest.raises(RuntimeError, match="render failed"):
            plot(_signed_table(4), 4, True, old)
    assert sorted(os.listdir(tmp_path)) == ["old.png"] and old.read_bytes() == b"previous"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can write to a read-only folder")
def test_unwritable_folder_leaves_no_file(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            plots.error_map_plot(_signed_table(4), 4, True, folder / "map.png")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_unwritable_temporary_file_leaves_no_file(tmp_path, monkeypatch):
    """Where the folder refuses the temporary file (as an unwritable one does), nothing is written."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError("read-only folder")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError):
        plots.error_histogram_plot(_signed_table(4), 4, True, tmp_path / "hist.png")
    assert os.listdir(tmp_path) == []


def test_plot_path_errors(tmp_path):
    t = _signed_table(4)
    with pytest.raises(ValueError, match=r"needs a suffix"):
        plots.error_map_plot(t, 4, True, tmp_path / "map")
    with pytest.raises(ValueError, match=r"cannot write \.xyz files"):
        plots.error_histogram_plot(t, 4, True, tmp_path / "map.xyz")
    with pytest.raises(FileNotFoundError, match=r"does not exist; create it first"):
        plots.error_map_plot(t, 4, True, tmp_path / "missing" / "map.png")
    with pytest.raises(ValueError, match=r"from 2 to 12.*bits=13"):
        plots.error_map_plot(t, 13, True, tmp_path / "map.png")
    assert os.listdir(tmp_path) == []
