"""`rdc frontier` and `rdc report`: answers from MLflow (and anchor files), no Ray needed.

Both are `main(argv) -> exit code`; bad input raises UserError, which `rdc.cli` prints as one
line with exit code 2 (argparse's own errors included).
"""

from __future__ import annotations

import argparse
import json
import sys

from analysis.printing import FORMATS
from rdc.arguments import ArgumentParser
from rdc.errors import UserError


def _hv_bounds(items: list[str]) -> dict | None:
    if not items:
        return None
    bounds = {}
    for item in items:
        metric, _, span = item.partition("=")
        best, _, worst = span.partition(":")
        try:
            bounds[metric] = (float(best), float(worst))
        except ValueError:
            raise UserError("--hv-bounds", item, reason="not METRIC=BEST:WORST",
                            allowed="e.g. decode_kflops_per_px=0:1200") from None
    return bounds


def frontier_main(argv: list[str] | None = None) -> int:
    from analysis.query import DEFAULT_X, DEFAULT_Y

    parser = ArgumentParser(prog="rdc frontier", description="The rate-distortion-computation frontier of an experiment: "
                     "the runs no other run beats on every objective.")
    parser.add_argument("--experiment", required=True, help="MLflow experiment (the sweep's name)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow URI (default: $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db)")
    parser.add_argument("--x", default=DEFAULT_X, help=f"first objective, METRIC[:min|max] (default {DEFAULT_X})")
    parser.add_argument("--y", default=DEFAULT_Y, help=f"second objective (default {DEFAULT_Y})")
    parser.add_argument("--z", default=None, help="optional third objective, e.g. decode_ms_<device>")
    parser.add_argument("--family", default=None, help="only runs of this family, e.g. 'Conv/Hyperprior:Conv'")
    parser.add_argument("--lmbda", type=float, default=None,
                        help="only runs trained at this lambda (default with rd_loss: the lambda most runs used)")
    parser.add_argument("--all", action="store_true", help="every ranked run with its non-dominated rank")
    parser.add_argument("--include-stopped", action="store_true",
                        help="also rank runs a scheduler stopped early (status KILLED, tag stopped_early)")
    parser.add_argument("--with-references", action="store_true",
                        help="rank reference runs (models trained elsewhere, tag reference) with the sweep")
    parser.add_argument("--hv-bounds", action="append", default=[], metavar="METRIC=BEST:WORST",
                        help="fix the hypervolume normalisation of an objective (repeat per objective)")
    parser.add_argument("--table1", action="store_true",
                        help="the study's Table 1: params, decode kFLOPs/px, decode MP/s per device, rate savings")
    parser.add_argument("--anchor", action="append", default=[], metavar="FILE",
                        help="with --table1: an anchor RD curve rate savings are measured against (e.g. BPG, VTM); repeat")
    parser.add_argument("--versus", default=None, metavar="ROW",
                        help="with --table1: also the rate savings vs this frontier row's RD curve (e.g. A)")
    parser.add_argument("--psnr-range", default=None, metavar="common|overlap|LOW:HIGH",
                        help="with --table1: the PSNR range of the BD-rates (default common: one range every row's "
                             "curve and every anchor cover; overlap: each pair's own; or e.g. 31.6:40.8)")
    parser.add_argument("--bd-method", default="pchip", choices=("pchip", "akima", "cubic"),
                        help="with --table1: BD-rate interpolation (bjontegaard package; default pchip)")
    parser.add_argument("--replicates", action="store_true",
                        help="one row per variant over its seeds: mean, sd, 95 %% t-interval, p_frontier (bootstrap)")
    parser.add_argument("--draws", type=int, default=1000, help="with --replicates: bootstrap draws for p_frontier")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="with --replicates: seed of the bootstrap")
    parser.add_argument("--no-images", action="store_true",
                        help="with --replicates: resample seeds only (reads no eval_images.csv)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    args = parser.parse_args(argv)
    if args.replicates:
        return _replicates(args)
    for key, given in (("--draws", args.draws != 1000), ("--bootstrap-seed", args.bootstrap_seed != 0),
                       ("--no-images", args.no_images)):
        if given:
            raise UserError(key, reason="only with --replicates")
    if not args.table1:
        for key, given in (("--anchor", args.anchor), ("--versus", args.versus), ("--psnr-range", args.psnr_range)):
            if given:
                raise UserError(key, given[0] if isinstance(given, list) else given, reason="only with --table1")
    elif args.all:
        raise UserError("--all", reason="not with --table1 (Table 1 lists the frontier rows)")

    from analysis.query import LABEL_COLUMN, query_frontier
    from analysis.store import display_uri, tracking_uri

    table1 = None
    if args.table1:
        from analysis.anchors import read_anchor, unique_names
        from analysis.table1 import parse_psnr_range

        span = parse_psnr_range(args.psnr_range)
        anchors = unique_names([read_anchor(path) for path in args.anchor])
    result = query_frontier(args.experiment, args.x, args.y, args.z, family=args.family, lmbda=args.lmbda,
                            tracking_uri=args.tracking_uri, all_runs=args.all, hv_bounds=_hv_bounds(args.hv_bounds),
                            include_stopped=args.include_stopped, with_references=args.with_references)
    if args.table1:
        from analysis.table1 import table_one

        table1 = table_one(result, anchors, versus=args.versus, psnr_range=span, method=args.bd_method)
    table, volume = (table1.table if table1 else result.table), result.hypervolume
    on_front = int((result.ranked["pareto_rank"] == 1).sum())
    ranked = int(result.ranked["pareto_rank"].notna().sum())
    goals = ", ".join(f"{'minimise' if d == 'min' else 'maximise'} {m}" for m, d in result.objectives.items())
    headline = (f"{'Table 1' if table1 else 'frontier'} of {args.experiment!r}: {on_front} of {ranked} ranked runs"
                f"{f' of {args.family}' if args.family else ''} ({goals})")
    lines = ([table1.describe()] if table1 else []) + [volume.describe(), *result.notes, *(table1.notes if table1 else [])]
    if args.format == "json":
        payload = {
            "experiment": args.experiment,
            "tracking_uri": display_uri(tracking_uri(args.tracking_uri)),
            "objectives": result.objectives,
            "lmbda": result.lmbda,
            "runs_considered": len(result.ranked),
            "runs_ranked": ranked,
            "hypervolume": {"value": volume.value, "reference_point": volume.reference,
                            "normalised_bounds": {k: {"best": b, "worst": w} for k, (b, w) in volume.bounds.items()},
                            "description": volume.describe()},
            "notes": result.notes + (table1.notes if table1 else []),
            "rows": json.loads(table.to_json(orient="records")),
        }
        if table1:
            payload["table1"] = {"description": table1.describe(), "lambdas": table1.lambdas, "rule": table1.rule,
                                 "psnr_range": table1.psnr_range, "references": table1.references,
                                 "method": table1.method, "ranges": json.loads(table1.ranges.to_json(orient="records"))}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    if args.format == "csv":
        for line in [headline, *lines]:
            print(line, file=sys.stderr)
        sys.stdout.write(table.to_csv(index=False))
        return 0
    # Text for people: a non-frontier run has no label ("-"); Table 1 in words with units.
    blanks = {c: table[c].astype(object).where(table[c].notna(), "-") for c in (LABEL_COLUMN, "pareto_rank") if c in table}
    shown = table.assign(**blanks)
    if table1:
        from analysis.labels import SAVINGS_PREFIX, headers

        shown = shown.drop(columns=["run_id"])
        savings = [c for c in shown if c.startswith(SAVINGS_PREFIX)]
        shown[savings] = shown[savings].round(2) + 0.0  # + 0.0: a row against itself saves 0, not -0
        shown = shown.rename(columns=headers(shown.columns))
    from analysis.printing import print_table

    print_table(headline, lines, shown, args.format)
    return 0


def _replicates(args: argparse.Namespace) -> int:
    """`rdc frontier --replicates`: the frontier of each variant's mean over its seeds."""
    for key, given in (("--hv-bounds", args.hv_bounds), ("--table1", args.table1)):
        if given:
            raise UserError(key, reason="not with --replicates")
    from analysis.replicates import query_replicates, render_replicates

    result = query_replicates(args.experiment, args.x, args.y, args.z, family=args.family, lmbda=args.lmbda,
                              tracking_uri=args.tracking_uri, draws=args.draws, bootstrap_seed=args.bootstrap_seed,
                              images=not args.no_images, all_variants=args.all)
    out, err = render_replicates(result, args.experiment, args.format)
    for line in err:
        print(line, file=sys.stderr)
    sys.stdout.write(out)
    return 0


def report_main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="rdc report", description="The study's figures and one self-contained HTML page "
                     "(frontier table, rate savings, FLOPs vs runtime) for an experiment.")
    parser.add_argument("--experiment", required=True, help="MLflow experiment (the sweep's name)")
    parser.add_argument("--out", required=True, help="folder for report.html and the figures (PNG and SVG)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow URI (default: $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db)")
    parser.add_argument("--anchor", action="append", default=[], metavar="FILE",
                        help="an anchor RD curve (compressai JSON, or tensorflow_compression 'bpp, psnr' TXT); repeat")
    parser.add_argument("--reference", default=None, metavar="NAME",
                        help="the curve rate savings are measured against (Fig. 1, 3): an anchor's or codec's name "
                             "(default: the first --anchor, else JPEG)")
    parser.add_argument("--images", default=None, metavar="DIR",
                        help="evaluation images for JPEG/WebP/AVIF curves computed here with Pillow (e.g. Kodak)")
    parser.add_argument("--codecs", default="jpeg,webp,avif", help="Pillow codecs for --images (default jpeg,webp,avif)")
    parser.add_argument("--family", default=None, help="only runs of this family")
    parser.add_argument("--lmbda", type=float, default=None, help="lambda of the RD-loss figure and frontier")
    parser.add_argument("--bd-method", default="pchip", choices=("pchip", "akima", "cubic"),
                        help="BD-rate interpolation (bjontegaard package; default pchip, as the JVET sheet)")
    parser.add_argument("--psnr-range", default=None, metavar="common|overlap|LOW:HIGH",
                        help="PSNR range of Table 1's rate savings (default common: one range every row's curve "
                             "and every anchor cover)")
    parser.add_argument("--include-stopped", action="store_true",
                        help="also rank runs a scheduler stopped early (status KILLED, tag stopped_early)")
    parser.add_argument("--with-references", action="store_true",
                        help="rank reference runs (models trained elsewhere) with the sweep; otherwise drawn apart")
    args = parser.parse_args(argv)

    from analysis.report import ReportOptions, write_report
    from analysis.table1 import parse_psnr_range

    options = ReportOptions(
        experiment=args.experiment, out=args.out, tracking_uri=args.tracking_uri, anchors=list(args.anchor),
        reference=args.reference, images=args.images, codecs=[c.strip() for c in args.codecs.split(",") if c.strip()],
        family=args.family, lmbda=args.lmbda, bd_method=args.bd_method, psnr_range=parse_psnr_range(args.psnr_range),
        include_stopped=args.include_stopped, with_references=args.with_references,
    )
    page = write_report(options)
    print(f"wrote {page}")
    return 0
