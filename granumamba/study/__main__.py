"""python -m granumamba.study build --plan study.yaml --out DIR
python -m granumamba.study analyze --key DIR/answer_key.csv --responses answers/ --out report/ [--reference NAME]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import AttentionRule, PlanError, ResponseError, analyze, build_study, load_plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m granumamba.study", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="render the stimuli, forms, key and questionnaire pages")
    b.add_argument("--plan", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--workers", type=int, default=None)
    a = commands.add_parser("analyze", help="analyse returned answers")
    a.add_argument("--key", type=Path, required=True)
    a.add_argument("--responses", type=Path, required=True, help="folder of answer CSVs")
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--reference", help="condition to test the others against (paired)")
    a.add_argument("--max-catch-rating", type=float, default=2.0)
    a.add_argument("--max-mismatched-rating", type=float, default=3.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            manifest = build_study(load_plan(args.plan), args.out, workers=args.workers)
            print(f"built {manifest['stimuli']} stimuli in {len(manifest['forms'])} forms under {args.out}")
        else:
            result = analyze(
                args.key, args.responses, args.out, args.reference, AttentionRule(args.max_catch_rating, args.max_mismatched_rating)
            )
            print(f"wrote {args.out}/summary.md ({len(result['excluded'])} participants excluded)")
    except (PlanError, ResponseError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
