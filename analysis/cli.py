"""`rdc frontier` (and later `rdc report`): answers from MLflow, no Ray needed."""

from __future__ import annotations

import argparse
import sys

from rdc import names
from rdc.errors import UserError

TABLE_COLUMNS = [names.TAG_VARIANT_ID, names.TAG_FAMILY, names.RD_LOSS, names.DECODE_KFLOPS_PER_PX,
                 names.BPP, names.PSNR, names.PARAMS]


def frontier_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rdc frontier", description="The rate-distortion-computation frontier of an experiment.")
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--tracking-uri", default=None, help="MLflow URI (default: $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db)")
    parser.add_argument("--x", default=names.DECODE_KFLOPS_PER_PX, help="cost objective (minimised)")
    parser.add_argument("--y", default=names.RD_LOSS, help="quality objective (minimised)")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    args = parser.parse_args(argv)

    from analysis.frontier import frontier
    from analysis.runs import runs

    frame = runs(args.experiment, args.tracking_uri)
    for column in (args.x, args.y):
        if column not in frame:
            metrics = sorted(c for c in frame.columns if c not in ("run_id", "status") and not c.startswith("spec."))
            raise UserError("--x" if column == args.x else "--y", column, reason="no run has this metric",
                            allowed=", ".join(metrics))
    table = frontier(frame, {args.x: "min", args.y: "min"})
    columns = [c for c in dict.fromkeys([names.TAG_VARIANT_ID, names.TAG_FAMILY, args.x, args.y] + TABLE_COLUMNS) if c in table]
    table = table[columns]
    if args.format == "csv":
        sys.stdout.write(table.to_csv(index=False))
    elif args.format == "json":
        sys.stdout.write(table.to_json(orient="records", indent=2) + "\n")
    else:
        print(f"frontier of {args.experiment!r}: {len(table)} of {len(frame)} finished runs (minimising {args.x}, {args.y})")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0
