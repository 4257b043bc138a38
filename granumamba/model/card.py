"""The model card (README.md) that `GranuMamba.save_pretrained` writes beside config.json and
model.safetensors, so that a checkpoint pushed to the Hub says what it is, how to load it and
how it was trained. huggingface_hub's ModelCard renders it and writes its metadata header."""

from __future__ import annotations

from huggingface_hub import ModelCard, ModelCardData

from .. import FPS

# A card that still has this line is the project's and is rewritten with the weights; delete the
# line to keep a card of your own (save_pretrained then leaves it alone).
CARD_MARKER = "<!-- Written by GranuMamba's save_pretrained, which rewrites it with the weights: delete this line to keep your edits. -->"

LIBRARY = "granumamba"
LICENSE = "apache-2.0"
TAGS = ["co-speech-gesture", "smplx", "mamba"]

TEMPLATE = (
    """---
{{ card_data }}
---

"""
    + CARD_MARKER
    + """

# {{ name }}

A GranuMamba checkpoint: speech in, full-body 3D co-speech gesture out (SMPL-X body, fingers,
jaw and face, 30 fps, BEAT2's npz layout), from a multi-granularity selective state space
(Mamba) model. Stage 1 holds a VQ-VAE per body part (upper body, hands, lower body, face) with
a coarse, a mid and a fine codebook; stage 2 generates the codes from the speech, the words
when a transcript is given and the speaker.

| | |
|---|---|
| mode | {{ mode }} |
| parameters | {{ parameters }} |
| codebooks | {{ levels }} |
| generator | {{ generator }} |
| speakers / styles | {{ speakers }} |
| words it knows | {{ words }} |
| served sampling | {{ sampling }} |
| stages trained | {{ stages }} |

## Use

```bash
python -m granumamba generate --model {{ repo_id }} --audio speech.wav --out gesture.mp4 --npz gesture.npz
python app.py {{ app_option }} {{ repo_id }}   # the browser demo on it (in a GranuMamba checkout)
```

```python
from granumamba.pipeline import GranuMambaPipeline

pipe = GranuMambaPipeline.from_pretrained("{{ repo_id }}")
result = pipe("speech.wav", gains=(1.0, 1.0, 1.0), seed=0)  # coarse, mid, fine
result.motion  # poses (T, 165), trans, expressions: save with granumamba.data.beat2.save_motion
```

## Training

{{ training }}

## Limitations

What a checkpoint can do is what its data taught it: one trained on the project's synthetic
corpus has never seen motion capture, and its motion on real speech is measured in the
project's README (Metrics). Gesture is generated, not retrieved: it follows the rhythm and
loudness of the speech, not the meaning of the words.
"""
)


def _speakers(config) -> str:
    named = [f"{key}: {name}" for key, name in sorted(config.speaker_names.items(), key=lambda item: int(item[0]))]
    return f"ids 0 to {config.num_speakers - 1}, default {config.default_speaker}" + (f"; named {', '.join(named)}" if named else "")


def _sampling(config) -> str:
    shares = ", ".join(f"{share:g}" for share in config.level_temperature) if config.level_temperature else "1, 1, 1"
    hold = f", holds at {config.hold_temperature:g}" if config.hold_speed > 0 else ""
    return f"temperature {config.temperature:g}, each level (coarse, mid, fine) at {shares} times it{hold}"


def model_card(model, repo_id: str | None = None, training: str | None = None) -> ModelCard:
    """The card of `model` (a GranuMamba): what it is from its config, how to load it from
    `repo_id` (a Hub id or a folder), and `training` (markdown: what it was trained on and how;
    said to be unrecorded when not given)."""
    config = model.config
    ahead = f"{config.lookahead} frames ({config.lookahead / FPS:.2f} s)"
    if config.causal:
        mode = f"causal (the demo's Live tab, streaming): nothing it outputs hears speech more than {ahead} later"
    else:
        mode = f"offline (the demo's Generate tab): a whole recording at once, the motion hearing the speech {ahead} ahead"
    steps = " / ".join(str(factor * 2**config.downsamples) for factor in config.factors)
    card_data = ModelCardData(library_name=LIBRARY, license=LICENSE, tags=list(TAGS))
    return ModelCard.from_template(
        card_data,
        template_str=TEMPLATE,
        name=repo_id.rstrip("/").rsplit("/", 1)[-1] if repo_id else "GranuMamba",
        repo_id=repo_id or "PATH_OR_REPO_ID",
        mode=mode,
        app_option="--live-model" if config.causal else "--model",
        parameters=f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M",
        levels=f"{config.codebook_size} codes each; a code every {steps} frames at {FPS} fps (coarse / mid / fine)",
        generator=f"width {config.d_model}, {config.n_global} global and {config.n_local} local Mamba layers, state size {config.d_state}",
        speakers=_speakers(config),
        words=f"{len(model.vocab)} (a transcript's other words are unknown to it)",
        sampling=_sampling(config),
        stages=", ".join(str(s) for s in config.trained_stages) or "none (untrained weights)",
        training=training or "Not recorded with these weights.",
    )
