"""Make the synthetic corpus in BEAT2's layout.

    python -m train.make_corpus --out data/synth --minutes 120 --seed 0 --speakers 4

Writes smplxflame_30/, wave16k/, textgrid/, components/ (the three granularity components of
each take) and train_test_split.csv. The same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from granumamba.text.tts import SpeechError, espeak_available

from .corpus import BOTH_HANDS, GIRDLE, PAUSED_SHARE, PHRASE_PAUSE, WALK, make_take

SUBFOLDERS = ("smplxflame_30", "wave16k", "textgrid", "components")


def split_of(index: int, takes: int) -> str:
    """Per speaker: the last tenth of the takes (at least one) is test, the tenth before it val
    (where there are three takes or more), the rest train."""
    held = max(1, takes // 10)
    if index >= takes - held:
        return "test"
    if takes >= 3 and index >= takes - 2 * held:
        return "val"
    return "train"


def make_corpus(
    out: Path,
    minutes: float,
    seed: int,
    speakers: int,
    take_seconds: float = 40.0,
    progress: bool = True,
    paused_share: float = PAUSED_SHARE,
    phrase_pause: float = PHRASE_PAUSE,
    walk: float = WALK,
    both_hands: float = BOTH_HANDS,
    girdle: float = GIRDLE,
) -> list[tuple[str, str]]:
    shares = (paused_share, walk, both_hands)
    if (
        minutes <= 0
        or speakers < 1
        or take_seconds < 2
        or not all(0 <= s <= 1 for s in shares)
        or not 0 <= phrase_pause <= 1.2
        or not 0 <= girdle <= 0.5
    ):
        raise ValueError(
            "minutes must be positive, speakers at least 1, take_seconds at least 2, paused_share from 0 to 1,"
            " phrase_pause from 0 to 1.2 s, walk from 0 to 1, both_hands from 0 to 1, girdle from 0 to 0.5"
        )
    if not espeak_available():
        raise SpeechError("the synthetic corpus is spoken by espeak-ng: `apt-get install espeak-ng`.")
    for sub in SUBFOLDERS:
        (out / sub).mkdir(parents=True, exist_ok=True)
    takes_per_speaker = max(1, int(np.ceil(minutes * 60 / take_seconds / speakers)))
    rows: list[tuple[str, str]] = []
    jobs = [(take, speaker) for take in range(takes_per_speaker) for speaker in range(1, speakers + 1)]
    for take, speaker in tqdm(jobs, desc="corpus", unit="take", disable=not progress):
        name = f"{speaker}_synth{speaker}_0_{take + 1}_{take + 1}"
        rng = np.random.default_rng([seed, speaker, take])
        seconds = take_seconds * float(np.random.default_rng([seed, speaker, take, 1]).uniform(0.75, 1.25))
        split = split_of(take, takes_per_speaker)
        make_take(out, name, speaker, seconds, rng, split == "train", paused_share, phrase_pause, walk, both_hands, girdle)
        rows.append((name, split))
    with (out / "train_test_split.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("id", "type"))
        writer.writerows(sorted(rows))
    return rows


# make_corpus's keywords of how the takes sound and move, each with its default and its option's help
TAKE_OPTIONS = {
    "paused_share": (PAUSED_SHARE, "share of takes with long silences, where the body rests"),
    "phrase_pause": (PHRASE_PAUSE, "most seconds added to the voices' pauses between phrases (0: none)"),
    "walk": (WALK, "share of phrase boundaries where the speaker walks to another place"),
    "both_hands": (BOTH_HANDS, "how far the speakers use both hands, 0 to 1 (train.corpus.BOTH_HANDS)"),
    "girdle": (GIRDLE, "share of each arm's swing the collar takes, the elbow hanging low; 0 to 0.5 (train.corpus.GIRDLE)"),
}


def add_take_options(parser: argparse.ArgumentParser, unset: bool = False) -> None:
    """The command-line options of TAKE_OPTIONS, for every command that makes a corpus. With
    `unset`, an option not given reads None (make_demo: its config's corpus section decides)."""
    for name, (default, text) in TAKE_OPTIONS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=None if unset else default, help=text)


def take_options(args: argparse.Namespace) -> dict[str, float | None]:
    """make_corpus's keywords from the options `add_take_options` added."""
    return {name: getattr(args, name) for name in TAKE_OPTIONS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write (BEAT2 layout)")
    parser.add_argument("--minutes", type=float, default=20.0, help="total speech to make")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speakers", type=int, default=4, help="synthetic speakers, each with its own voice and style")
    parser.add_argument("--take-seconds", type=float, default=40.0, help="mean length of a take")
    add_take_options(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        rows = make_corpus(
            args.out,
            args.minutes,
            args.seed,
            args.speakers,
            args.take_seconds,
            **take_options(args),
        )
    except (ValueError, OSError) as err:
        print(f"make_corpus: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(rows)} takes to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
