"""What the granularity sliders do to generated motion, seed by seed: the fine gain against the
wrists' and fingers' 3-15 Hz power, the coarse gain against the slow (below 1 Hz) posture power
(`train.metrics.band_energy`), over gains 0, 0.5, 1, 1.5, 2, on one sentence of project-made
speech (the pipeline tests' input) and on the shipped examples. "passes": rising at every step
and at least doubling (the tests' bar, which they check at seeds 0 to 4).

    python -m bench.bench_sliders [--model DIR ...] [--seeds 5]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from granumamba.pipeline import BUNDLED_MODEL, GranuMambaPipeline
from train.metrics import HAND_JOINTS, POSTURE_JOINTS, band_energy

from .common import machine, table

GAINS = (0.0, 0.5, 1.0, 1.5, 2.0)
SENTENCE = "Every careful student remembers the golden river, and the quiet city opens again."
EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def passes(energy: list[float]) -> bool:
    return all(a < b for a, b in zip(energy, energy[1:])) and energy[-1] > 2 * energy[0]


def curve(values: list[float]) -> str:
    return " / ".join(f"{v:.3g}" for v in values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, nargs="+", default=[BUNDLED_MODEL])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    import soundfile

    from granumamba.text.tts import synthesize

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        sentence = Path(tmp) / "sentence.wav"
        soundfile.write(sentence, synthesize(SENTENCE)[0], 16000, subtype="PCM_16")
        speeches = [("the tests' sentence", sentence)] + [(p.stem, p) for p in sorted(EXAMPLES.glob("*.wav"))]
        for model in args.model:
            pipe = GranuMambaPipeline.from_pretrained(model, allow_fallback=False)
            rows = []
            for label, path in speeches:
                for name, gains, joints, band in (
                    ("fine", lambda g: (1, 1, g), HAND_JOINTS, (3.0, 15.0)),
                    ("coarse", lambda g: (g, 1, 1), POSTURE_JOINTS, (0.05, 1.0)),
                ):

                    def energy(g: float, seed: int) -> float:
                        return band_energy(pipe(path, gains=gains(g), seed=seed).motion.poses, joints, *band)

                    per_seed = [[energy(g, s) for g in GAINS] for s in range(args.seeds)]
                    mean = list(np.mean(per_seed, axis=0))
                    verdict = "yes" if passes(mean) else "no"
                    rows.append([label, name, sum(passes(e) for e in per_seed), curve(mean), verdict, f"{mean[-1] / mean[0]:.2f}"])
            table(
                f"{model}: slider energy over gains {', '.join(map(str, GAINS))}, seeds 0-{args.seeds - 1}",
                ["speech", "slider", f"seeds that pass (of {args.seeds})", "mean energy per gain", "mean passes", "mean at 2 / at 0"],
                rows,
            )


if __name__ == "__main__":
    main()
