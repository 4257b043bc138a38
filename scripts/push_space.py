"""Publish this checkout as a Hugging Face Space: the demo app with its bundled checkpoints.

    python scripts/push_space.py USER/SPACE [--private] [--hardware cpu-basic] [--dry-run]

Log in first (`hf auth login`) or set HF_TOKEN. The Space gets exactly the files git tracks here
(nothing of .venv, data/ or runs/), and files the checkout no longer has are deleted from it, so
the Space mirrors the checkout; README.md's header is the Space's configuration. A `git push` to
a Space would refuse the bundled checkpoints (plain files over the Hub's 10 MB limit for files
outside its large-file storage); huggingface_hub's upload_folder stores them the Hub's way.
"""

from __future__ import annotations

import argparse
import glob
import subprocess
import sys
from pathlib import Path

from huggingface_hub import HfApi

ROOT = Path(__file__).resolve().parents[1]


def tracked_files(root: Path = ROOT) -> list[str]:
    """The paths git tracks under `root`, relative to it; a clear error outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise SystemExit(f"{root} is not a git checkout (or git is missing): the Space is what git tracks here ({err})") from None
    return [path for path in out.decode().split("\0") if path and (root / path).is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space", help="the Space's id, USER/NAME (made if it does not exist)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--hardware", help="a Space hardware flavour for a new Space, e.g. cpu-basic, cpu-upgrade, t4-small")
    parser.add_argument("--dry-run", action="store_true", help="list the files and their size, upload nothing")
    args = parser.parse_args(argv)
    if args.space.count("/") != 1 or not all(args.space.split("/")):
        parser.error(f"the Space is USER/NAME, got {args.space!r}")
    if not (ROOT / "README.md").read_text(encoding="utf-8").startswith("---\n"):
        parser.error("README.md has lost its header (sdk: gradio, app_file: app.py), which the Space is configured by")
    files = tracked_files()
    size = sum((ROOT / f).stat().st_size for f in files)
    print(f"{len(files)} files, {size / 2**20:.1f} MiB, to the Space {args.space}")
    if args.dry_run:
        print("\n".join(files))
        return 0
    api = HfApi()
    api.create_repo(
        args.space, repo_type="space", space_sdk="gradio", private=args.private or None, space_hardware=args.hardware, exist_ok=True
    )
    commit = api.upload_folder(
        repo_id=args.space,
        repo_type="space",
        folder_path=ROOT,
        allow_patterns=[glob.escape(f) for f in files],  # each path exactly, even one with [ or *
        delete_patterns="*",  # what the checkout no longer has (the Hub keeps .gitattributes)
        commit_message="Publish GranuMamba from its checkout",
    )
    print(f"published: https://huggingface.co/spaces/{args.space} ({commit.oid[:8]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
