"""Core subcommands: ``multipliers``, ``register``, ``info``, ``show-config``."""

from __future__ import annotations

import time

import numpy as np

from approxsim import multipliers
from approxsim.lut import grid_operands


def _cmd_multipliers(args) -> int:
    rows = []
    for name in multipliers.available():
        mult = multipliers.get(name)
        if mult.is_integer:
            width = mult.format.name
        else:
            width = ("full" if mult.kind == "direct" else "exact") if mult.mantissa_bits is None \
                else f"M={mult.mantissa_bits}"
        rows.append((name, width, mult.kind, mult.description))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    for name, width, kind, desc in rows:
        print(f"{name:<{w0}}  {width:<{w1}}  {kind:<{w2}}  {desc}")
    return 0


def _cmd_register(args) -> int:
    start = time.perf_counter()
    mult = multipliers.register_c(args.file, function=args.function, mantissa_bits=args.mantissa_bits,
                                  name=args.name, description=args.description or "", timeout=args.timeout,
                                  mode=args.mode, replace=args.replace, bits=args.bits, signed=args.signed)
    elapsed = time.perf_counter() - start
    if mult.is_integer:
        how = "table" if mult.kind == "int-table" else "direct (model compiled into the kernels, no table)"
        print(f"registered {mult.name!r}: {mult.format.describe()}, {how}, built in {elapsed:.2f} s")
        summary = _int_summary(mult)
        if summary:
            print(summary)
        return 0
    if mult.kind == "direct":  # no table to describe
        width = "full width" if mult.mantissa_bits is None else f"M={mult.mantissa_bits}"
        print(f"registered {mult.name!r}: {width}, direct (model compiled into the kernels, no table), "
              f"built in {elapsed:.2f} s")
        return 0
    table = mult.table
    print(f"registered {mult.name!r}: M={mult.mantissa_bits}, {table.shape[0]}x{table.shape[1]} table, "
          f"values in [{table.min():.6g}, {table.max():.6g}], built in {elapsed:.2f} s")
    summary = _error_summary(mult)
    if summary:
        print(summary)
    return 0


def _int_summary(mult) -> str:
    """EvoApproxLib's error metrics of an integer table, on one line."""
    if mult.kind != "int-table":
        return ""
    from approxsim.int_metrics import error_metrics

    m = error_metrics(mult.table, mult.bits, mult.signed)
    return (f"MAE {m['MAE']:.4g} ({m['MAE%']:.3g} %), WCE {m['WCE']:.6g} ({m['WCE%']:.3g} %), EP {m['EP%']:.4g} %, "
            f"MRE {m['MRE%']:.3g} %")


def _error_summary(mult) -> str:
    """A one-line error summary from the analysis module, when it is present."""
    try:
        from approxsim.analysis import summary_line
    except ImportError:
        return ""
    return summary_line(mult)


def _cmd_info(args) -> int:
    mult = multipliers.get(args.name)
    print(f"name:          {mult.name}")
    if mult.aliases:
        print(f"aliases:       {', '.join(mult.aliases)}")
    print(f"kind:          {mult.kind}")
    full = "full (direct model)" if mult.kind == "direct" else "full (exact)"
    if not mult.is_integer:
        print(f"mantissa bits: {mult.mantissa_bits if mult.mantissa_bits is not None else full}")
    print(f"description:   {mult.description}")
    print(f"source:        {mult.source or 'built in'}")
    if mult.is_integer:
        print(f"codes:         {mult.format.describe()}")
        if mult.kind == "int-table":
            from approxsim.int_metrics import error_metrics, format_metrics

            table = mult.table
            print(f"table:         {table.shape[0]}x{table.shape[1]} int32 ({table.nbytes} bytes), "
                  f"values in [{int(table.min())}, {int(table.max())}]")
            print(format_metrics(error_metrics(table, mult.bits, mult.signed)))
        _print_published(mult)
    if mult.kind == "table":
        table = mult.table
        finite = table[np.isfinite(table)]
        print(f"table:         {table.shape[0]}x{table.shape[1]} float32 ({table.nbytes} bytes)")
        print(f"range:         [{finite.min():.9g}, {finite.max():.9g}]")
        grid = grid_operands(mult.mantissa_bits).astype(np.float64)
        exact = np.outer(grid, grid).astype(np.float32)
        print(f"exact entries: {int(np.sum(table == exact))} of {table.size}")
        print(f"structure:     {mult.structure.describe()}")
    for ref in mult.references:
        print(f"reference:     {ref}")
    return 0


def _seconds(text: str) -> float:
    import argparse

    from approxsim.toolchain import check_timeout

    try:
        return check_timeout(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds above 0, got {text!r}") from None


def _cmd_restore(args) -> int:
    kept = multipliers.restore_registry()
    print(f"restored the registry from its last good copy; the damaged file is kept as {kept}")
    return 0


def _cmd_show_config(args) -> int:
    from approxsim.config import show_config

    show_config()
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("multipliers", help="list the registered multipliers")
    p.set_defaults(func=_cmd_multipliers)

    p = sub.add_parser("register", help="compile a C/C++ multiplier model into a table and register it")
    p.add_argument("file", help="C (.c) or C++ (.cc/.cpp/.inl/.h) file defining float F(float, float), or an "
                                "integer model (uint16_t F(uint8_t, uint8_t), ..., uint64_t F(uint64_t, uint64_t))")
    p.add_argument("--function", "-f", required=True, help="name of the multiplier function in FILE")
    p.add_argument("--mantissa-bits", "-m", type=int, default=None,
                   help="mantissa width M: 1..11 for a table (required); direct: 12..23, or omit for full width")
    p.add_argument("--mode", choices=("table", "direct"), default=None,
                   help="table: evaluate the model on a 2^M x 2^M grid (integer: all pairs of codes); direct: "
                        "compile the model into the kernels and call it on the real operands (no table). "
                        "Default: table, but direct for integer models wider than 12 bits")
    p.add_argument("--bits", type=int, default=None,
                   help="integer models: the code width (2..16) where the prototype does not say it "
                        "(uint64_t form), or narrower than its types (a 12-bit circuit in uint16_t)")
    sign = p.add_mutually_exclusive_group()
    sign.add_argument("--signed", dest="signed", action="store_true", default=None,
                      help="integer models: two's complement codes (with unsigned types: the circuit takes and "
                           "returns bit patterns)")
    sign.add_argument("--unsigned", dest="signed", action="store_false", help="integer models: unsigned codes")
    p.add_argument("--name", "-n", help="registry name (default: the function's name)")
    p.add_argument("--description", help="one line describing the multiplier")
    p.add_argument("--timeout", type=_seconds, default=60.0,
                   help="seconds the model may run (grid evaluation, or a direct model's sample check)")
    p.add_argument("--replace", action="store_true",
                   help="replace a different model registered under the same name")
    p.set_defaults(func=_cmd_register)

    p = sub.add_parser("restore-registry", help="put back the last good copy of a damaged registry of user "
                                                "multipliers (the damaged file is kept)")
    p.set_defaults(func=_cmd_restore)

    p = sub.add_parser("info", help="show a multiplier's table size, range and source")
    p.add_argument("name")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("show-config", help="print versions, backends and the cache folder")
    p.set_defaults(func=_cmd_show_config)


def _print_published(mult) -> None:
    """The figures the circuit's C file states in its header (EvoApproxLib's), to compare with the above."""
    from approxsim.int_metrics import published_figures
    from approxsim.multipliers._store import source_file

    path = source_file(mult)
    stated = published_figures(path) if path is not None else {}
    if stated:
        shown = ", ".join(f"{k} {v:g}" for k, v in stated.items())
        print(f"published:     {shown} (header of {path.name})")
