"""Analysis subcommands: ``stats`` (one multiplier's error) and ``compare`` (several side by side)."""

from __future__ import annotations

import json

from approxsim import multipliers
from approxsim.analysis import relative_errors, summarize

_ROWS = (("mean_rel_error", "mean rel. error (bias)"), ("mean_abs_rel_error", "MRED"),
         ("max_abs_rel_error", "max |rel. error|"), ("std_rel_error", "std of rel. error"),
         ("error_probability", "error probability"))


def _pct(x: float, signed: bool = True) -> str:
    return f"{100 * x:+.4f}%" if signed else f"{100 * x:.4f}%"


def _run(name: str, args):
    mult = multipliers.get(name)
    if mult.is_integer:
        from approxsim.analysis import analyze_integer

        return analyze_integer(mult, samples=args.samples, seed=args.seed), None
    errors = relative_errors(mult, samples=args.samples, seed=args.seed)
    return summarize(mult, errors, samples=args.samples, seed=args.seed), errors


def _print_int_stats(s: dict) -> None:
    from approxsim.int_metrics import format_metrics

    mult = multipliers.get(s["multiplier"])
    print(f"{s['multiplier']} ({s['kind']}, {mult.format.describe()}): {mult.description}")
    print("\n".join("  " + line for line in format_metrics(s["metrics"]).split("\n")))


def _int_plots(mult, path: str) -> list:
    """The error map at ``path`` and the histogram beside it (``NAME-histogram.png``); tables only."""
    from pathlib import Path

    from approxsim.plots import error_histogram_plot, error_map_plot

    if mult.kind != "int-table":
        raise ValueError(f"{mult.name!r} is a direct model without a table: its plots would need all "
                         f"2^{2 * mult.bits} products. Plot a table multiplier, or drop --plot.")
    path = Path(path)
    hist = path.with_name(f"{path.stem}-histogram{path.suffix}")
    return [error_map_plot(mult.table, mult.bits, mult.signed, path, title=f"{mult.name}: error map"),
            error_histogram_plot(mult.table, mult.bits, mult.signed, hist, title=f"{mult.name}: error histogram")]


def _print_stats(s: dict) -> None:
    mult = multipliers.get(s["multiplier"])
    width = "exact" if s["mantissa_bits"] is None else f"M={s['mantissa_bits']}"
    print(f"{s['multiplier']} ({s['kind']}, {width}): {mult.description}")
    t, r = s["table"], s["random"]
    side = 1 << t["grid_bits"]
    note = "" if s["kind"] == "table" else " (no table: 11-bit grid)"
    head_t = f"table {side}x{side}{note}"
    head_r = f"random ({r['samples']:,} pairs, seed {r['seed']})"
    w0 = max(len(label) for _, label in _ROWS)
    print(f"  {'':<{w0}}  {head_t:>24}  {head_r:>30}")
    for key, label in _ROWS:
        signed = key == "mean_rel_error"
        print(f"  {label:<{w0}}  {_pct(t[key], signed):>24}  {_pct(r[key], signed):>30}")
    w = t["worst_case"]
    print(f"  worst case on the grid: T[{w['i']}][{w['j']}] = {w['approx']:.9g} for {w['a']:.9g} x {w['b']:.9g}"
          f" = {w['exact']:.9g} ({_pct(w['rel_error'])})")
    w = r["worst_case"]
    print(f"  worst random case:      {w['a']:.9g} x {w['b']:.9g} -> {w['approx']:.9g}, exact {w['exact']:.9g}"
          f" ({_pct(w['rel_error'])})")


def _cmd_stats(args) -> int:
    stats, errors = _run(args.name, args)
    if errors is None:  # an integer multiplier
        if args.json:
            print(json.dumps(stats, indent=2))
        else:
            _print_int_stats(stats)
        if args.plot:
            paths = _int_plots(multipliers.get(args.name), args.plot)
            if not args.json:
                print("plots written to " + ", ".join(map(str, paths)))
        return 0
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        _print_stats(stats)
    if args.plot:
        from approxsim.plots import plot_errors

        path = plot_errors(errors, stats, args.plot)
        if not args.json:
            print(f"plot written to {path}")
    return 0


def _compare_integers(results, args) -> int:
    from approxsim.int_metrics import METRIC_KEYS

    if args.json:
        print(json.dumps([s for s, _ in results], indent=2))
        return 0
    w0 = max(len("multiplier"), *(len(s["multiplier"]) for s, _ in results))
    print(f"{'multiplier':<{w0}}  " + "  ".join(f"{k:>11}" for k in METRIC_KEYS))
    for s, _ in results:
        print(f"{s['multiplier']:<{w0}}  " + "  ".join(f"{s['metrics'][k]:>11.5g}" for k in METRIC_KEYS))
    fmt = multipliers.get(results[0][0]["multiplier"]).format
    print(f"({fmt.describe()}; EvoApproxLib's metrics, exhaustive over each table, sampled for direct models)")
    return 0


def _cmd_compare(args) -> int:
    mults = [multipliers.get(name) for name in args.names]
    kinds = {m.is_integer for m in mults}
    if len(kinds) > 1:
        raise ValueError("compare takes float multipliers or integer ones, not both: their errors are measured "
                         "differently (relative errors on floats, EvoApproxLib's metrics on codes). Received: "
                         + ", ".join(f"{m.name} ({m.kind})" for m in mults))
    if True in kinds:
        formats = {m.format for m in mults}
        if len(formats) > 1:
            raise ValueError("compare takes integer multipliers of one width and signedness. Received: "
                             + ", ".join(f"{m.name} ({m.format.name})" for m in mults))
        if args.plot:
            raise ValueError("compare --plot draws float multipliers; for an integer one, use "
                             "`approxsim stats NAME --plot FILE.png`.")
        return _compare_integers([_run(name, args) for name in args.names], args)
    results = [_run(name, args) for name in args.names]
    if args.json:
        print(json.dumps([s for s, _ in results], indent=2))
    else:
        columns = [("table", key, f"grid {label}") for key, label in _ROWS[:3]]
        columns += [("random", key, f"random {label}") for key, label in _ROWS]
        heads = ["grid bias", "grid MRED", "grid max", "rand bias", "rand MRED", "rand max", "rand std",
                 "rand P(err)"]
        w0 = max(len("multiplier"), *(len(s["multiplier"]) for s, _ in results))
        print(f"{'multiplier':<{w0}}  " + "  ".join(f"{h:>11}" for h in heads))
        for s, _ in results:
            cells = [_pct(s[section][key], key == "mean_rel_error") for section, key, _ in columns]
            print(f"{s['multiplier']:<{w0}}  " + "  ".join(f"{c:>11}" for c in cells))
        print(f"(grid: each table's own 2^M x 2^M grid, 2^11 for tableless; random: {args.samples:,} pairs, "
              f"seed {args.seed}; errors relative to the IEEE float32 product)")
    if args.plot:
        from approxsim.plots import plot_comparison

        path = plot_comparison(results, args.plot)
        if not args.json:
            print(f"plot written to {path}")
    return 0


def add_parser(sub) -> None:
    def common(p):
        p.add_argument("--json", action="store_true", help="print the statistics as JSON (approxsim.analyze's dict)")
        p.add_argument("--plot", metavar="FILE.png", help="write a plot of the errors to this image file")
        p.add_argument("--samples", type=int, default=1_000_000,
                       help="random operand pairs for the random section (default 1000000)")
        p.add_argument("--seed", type=int, default=0, help="seed of the random operands (default 0)")

    p = sub.add_parser("stats", help="error statistics of a multiplier (bias, MRED, worst case, ...)",
                       description="Relative error of a multiplier's products: exhaustively over its table grid "
                                   "and on random full-precision operands. Integer multipliers: EvoApproxLib's "
                                   "MAE, MAE%%, WCE, WCE%%, EP%%, MSE, MRE%%, WCRE%% over all pairs of codes, and "
                                   "with --plot an error map (FILE) and a histogram (FILE-histogram).")
    p.add_argument("name", help="multiplier name (see `approxsim multipliers`)")
    common(p)
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("compare", help="error statistics of several multipliers side by side",
                       description="A table of the error statistics of several multipliers and, with --plot, "
                                   "one comparative figure.")
    p.add_argument("names", nargs="+", metavar="NAME", help="multiplier names")
    common(p)
    p.set_defaults(func=_cmd_compare)
