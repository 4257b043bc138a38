"""GranuMamba: the part VQ-VAEs (stage 1), the generator (stage 2), the normalisation statistics
and the vocabulary in one model, saved and loaded as a Hugging Face model repo
(`config.json` + `model.safetensors`) with `from_pretrained` / `save_pretrained` / `push_to_hub`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn
from huggingface_hub import ModelCard, ModelHubMixin, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..motion.normalize import Normalizer
from ..motion.parts import PART_DIMS, PART_NAMES
from ..text.vocab import Vocabulary
from .card import CARD_MARKER, LIBRARY, LICENSE, TAGS, model_card
from .configs import GranuMambaConfig, ModelLoadError
from .generator import Generator
from .quantizer import LEVELS, upsample
from .vqvae import PartVQVAE

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class GranuMamba(nn.Module, ModelHubMixin, library_name=LIBRARY, license=LICENSE, tags=TAGS):
    def __init__(self, config: dict | GranuMambaConfig | None = None):
        super().__init__()
        if not isinstance(config, GranuMambaConfig):
            config = GranuMambaConfig.from_dict(config or {})
        if len(config.factors) != len(LEVELS):
            raise ModelLoadError(f"factors must give {len(LEVELS)} levels ({', '.join(LEVELS)}), got {list(config.factors)}")
        self.config = config
        self.vocab = Vocabulary(config.vocab)
        self.vqvae = nn.ModuleDict({part: PartVQVAE(PART_DIMS[part], config.vq) for part in PART_NAMES})
        self.generator = Generator(config.generator(len(self.vocab)))
        for part in PART_NAMES:  # normalisation statistics travel in model.safetensors
            self.register_buffer(f"{part}_mean", torch.zeros(PART_DIMS[part]))
            self.register_buffer(f"{part}_std", torch.ones(PART_DIMS[part]))

    # ----- normalisation ---------------------------------------------------------------------
    def set_normalizer(self, normalizer: Normalizer) -> None:
        for part in PART_NAMES:
            mean, std = normalizer.stats[part]
            getattr(self, f"{part}_mean").copy_(mean)
            getattr(self, f"{part}_std").copy_(std)

    @property
    def normalizer(self) -> Normalizer:
        return Normalizer({p: (getattr(self, f"{p}_mean"), getattr(self, f"{p}_std")) for p in PART_NAMES})

    @property
    def frame_multiple(self) -> int:
        return self.generator.frame_multiple

    # ----- training --------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor], stage: int, **loss_options) -> dict[str, torch.Tensor]:
        """The training loss of `stage` (1: part VQ-VAEs, 2: generator) on a batch of windows
        (model/losses.py)."""
        from .losses import stage1_loss, stage2_loss

        if stage == 1:
            return stage1_loss(self, batch, **loss_options)
        if stage == 2:
            return stage2_loss(self, batch, **loss_options)
        raise ValueError(f"stage is 1 or 2, not {stage}")

    def with_new_generator(self, config: GranuMambaConfig | None = None) -> GranuMamba:
        """A model with this one's motion priors (part VQ-VAEs and statistics) and a generator at
        its initial weights, of `config`'s sizes (default this model's): what stage 2 starts from."""
        model = GranuMamba(config or self.config)
        model.load_state_dict({k: v for k, v in self.state_dict().items() if not k.startswith("generator.")}, strict=False)
        return model

    # ----- stage 2 training ------------------------------------------------------------------
    def teacher_codes(self, parts: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Normalised parts {part: (batch, T, dims)} -> per level indices (batch, parts, L) and
        code vectors (batch, parts, L, C) from the frozen stage 1."""
        per_part = []
        for part in PART_NAMES:
            vq = self.vqvae[part]
            _, indices, _ = vq.quantizer(vq.encode(parts[part]))
            per_part.append(indices)
        indices = [torch.stack([per_part[p][level] for p in range(len(PART_NAMES))], dim=1) for level in range(len(LEVELS))]
        codes = [self.lookup_codes(level, idx) for level, idx in enumerate(indices)]
        return indices, codes

    def lookup_codes(self, level: int, indices: torch.Tensor) -> torch.Tensor:
        """(batch, parts, L) -> (batch, parts, L, C) code vectors of each part's codebook."""
        return torch.stack([self.vqvae[part].quantizer.quantizers[level].lookup(indices[:, p]) for p, part in enumerate(PART_NAMES)], dim=1)

    def seed_conditioning(self, codes: list[torch.Tensor], seed_frames: int, total_frames: int) -> list[torch.Tensor]:
        """Per level (batch, parts, L, C+1): the code vectors of the first `seed_frames` with a
        flag channel set, zeros after."""
        out = []
        for level, factor in enumerate(self.config.factors):
            length = total_frames // (self.generator.frames_per_latent * factor)
            covered = seed_frames // (self.generator.frames_per_latent * factor)
            c = codes[level]
            marked = c.new_zeros(c.shape[0], c.shape[1], length, c.shape[-1] + 1)
            marked[:, :, :covered, :-1] = c[:, :, :covered]
            marked[:, :, :covered, -1] = 1.0
            out.append(marked)
        return out

    # ----- inference -------------------------------------------------------------------------
    def generate(
        self,
        audio: torch.Tensor,
        words: torch.Tensor | None = None,
        speaker: int | None = None,
        seed_parts: dict[str, torch.Tensor] | None = None,
        gains: tuple[float, float, float] = (1.0, 1.0, 1.0),
        temperature: float = 1.0,
        rng_seed: int = 0,
        chunk_frames: int | None = 480,
        decode_overlap: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Speech features (T, feature_dim) -> normalised parts {part: (T, dims)}: the codes
        sampled (`sampler.sample_codes`, which documents the arguments), then decoded with
        `gains` on coarse, mid, fine."""
        from .sampler import decode, sample_codes

        codes = sample_codes(self, audio, words, speaker, seed_parts, temperature, rng_seed, chunk_frames)
        return decode(self, codes, gains, decode_overlap)

    @torch.no_grad()
    def reconstruct(self, parts: dict[str, torch.Tensor], gains: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict[str, torch.Tensor]:
        """Normalised parts {part: (T, dims)}, T a multiple of `frame_multiple` -> stage 1's
        reconstruction from their own codes, with `gains` on coarse, mid, fine."""
        indices, _ = self.teacher_codes({p: x[None].float() for p, x in parts.items()})
        return {p: self.decode_part(p, [i[:, k] for i in indices], gains) for k, p in enumerate(PART_NAMES)}

    @property
    def decode_overlap(self) -> int:
        """Fine latents of context (each side; behind only for a causal model) that make windowed
        decoding exact: the part decoders' reach, in whole coarse steps (so the levels' tokens
        start with the window)."""
        frames = max(vq.reach for vq in self.vqvae.values())
        return self._whole_coarse_steps(-(-frames // self.generator.frames_per_latent))

    @property
    def step_frames(self) -> int:
        """The shortest span generation can advance by: a fine step when causal (each level's
        step sees the speech up to its own first fine step), else a whole coarse block."""
        return self.generator.frames_per_latent if self.config.causal else self.frame_multiple

    def _whole_coarse_steps(self, latents: int) -> int:
        coarse = self.config.factors[0]
        return -(-latents // coarse) * coarse

    def decode_part(
        self,
        part: str,
        indices: list[torch.Tensor],
        gains,
        overlap: int | None = None,
        window: int = 240,
        span: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Per level code indices (1, L_level) -> normalised part (T, dims), decoded in windows of
        `window` fine latents with `overlap` latents of context each side (default
        `decode_overlap`, which makes it exact; a causal model's decoding needs none ahead), so
        memory does not grow with length. `span` (first, last) in fine latents decodes only those
        (exactly the same frames as decoding everything). The levels may end mid-token: a causal
        model's codes of a block still being sampled."""
        vq = self.vqvae[part]
        factors = self.config.factors
        coarse = factors[0]
        overlap = self._whole_coarse_steps(self.decode_overlap if overlap is None else overlap)
        ahead = 0 if self.config.causal else overlap
        window = max(coarse, window // coarse * coarse)
        fine_length = indices[-1].shape[1] * factors[-1]
        first, last = span if span is not None else (0, fine_length)
        outputs = []
        for start in range(first, min(last, fine_length), window):
            stop = min(start + window, last, fine_length)
            lo, hi = max(0, (start - overlap) // coarse * coarse), min(fine_length, stop + ahead)
            tokens = [vq.quantizer.quantizers[level].lookup(indices[level][:, lo // f : -(-hi // f)]) for level, f in enumerate(factors)]
            contributions = [upsample(t, f, self.config.causal)[:, : hi - lo] for t, f in zip(tokens, factors)]
            decoded = vq.decode(contributions, tuple(gains))[0]
            per = vq.frames_per_latent
            outputs.append(decoded[(start - lo) * per : (stop - lo) * per])
        return torch.cat(outputs)

    # ----- saving and loading ----------------------------------------------------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        save_directory = Path(save_directory)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        tmp = save_directory / f".{WEIGHTS_NAME}.tmp"
        save_file(tensors, str(tmp), metadata={"format": "pt", "library": "granumamba"})
        os.replace(tmp, save_directory / WEIGHTS_NAME)
        (save_directory / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=1, ensure_ascii=False))

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        config: dict | None = None,
        model_card_kwargs: dict | None = None,
        **push_to_hub_kwargs,
    ):
        """Write config.json and model.safetensors (atomically) and the model card (README.md,
        granumamba.model.card: `model_card_kwargs` are its `repo_id`, by default the folder, and
        `training`) to `save_directory`; with `push_to_hub`, upload them and the card to
        `repo_id` (default: the folder's name) with huggingface_hub's `push_to_hub` (its keyword
        arguments pass through).
        `config` is the mixin's and unused: the config is the model's own. A card of your own
        (one without the project's marker line) is left as it is."""
        Path(save_directory).mkdir(parents=True, exist_ok=True)
        self._save_pretrained(Path(save_directory))
        self.write_model_card(save_directory, **{"repo_id": str(save_directory), **(model_card_kwargs or {})})
        if push_to_hub:
            repo_id = repo_id or Path(save_directory).resolve().name
            return self.push_to_hub(repo_id, model_card_kwargs=model_card_kwargs, **push_to_hub_kwargs)
        return None

    def push_to_hub(self, repo_id: str, *, model_card_kwargs: dict | None = None, **kwargs):
        """huggingface_hub's push_to_hub, the card naming `repo_id` in its examples."""
        return super().push_to_hub(repo_id, model_card_kwargs={"repo_id": repo_id, **(model_card_kwargs or {})}, **kwargs)

    def generate_model_card(self, repo_id: str | None = None, training: str | None = None) -> ModelCard:
        """The model card (granumamba.model.card.model_card); the mixin's push_to_hub uses it too."""
        return model_card(self, repo_id, training)

    def write_model_card(self, save_directory: str | os.PathLike, repo_id: str | None = None, training: str | None = None) -> bool:
        """Write README.md in `save_directory` (atomically) unless a card without the project's
        marker line is there; True when written."""
        path = Path(save_directory) / "README.md"
        if path.is_file() and CARD_MARKER not in path.read_text(encoding="utf-8", errors="replace"):
            return False
        tmp = path.with_name(f".{path.name}.tmp")
        self.generate_model_card(repo_id, training).save(tmp)
        os.replace(tmp, path)
        return True

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision=None,
        cache_dir=None,
        force_download=False,
        local_files_only=False,
        token=None,
        map_location: str = "cpu",
        motion_priors_only: bool = False,
    ) -> GranuMamba:
        files = {}
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if os.path.isdir(model_id):
                path = Path(model_id) / name
                if not path.is_file():
                    raise ModelLoadError(f"{model_id}: no {name}. A GranuMamba model folder holds {CONFIG_NAME} and {WEIGHTS_NAME}.")
                files[name] = str(path)
            else:
                try:
                    files[name] = hf_hub_download(
                        model_id,
                        name,
                        revision=revision,
                        cache_dir=cache_dir,
                        force_download=force_download,
                        local_files_only=local_files_only,
                        token=token,
                    )
                except HFValidationError:
                    raise ModelLoadError(f"{model_id!r} is neither a model folder nor a Hub repo id (owner/name).") from None
                except (EntryNotFoundError, RepositoryNotFoundError) as err:
                    raise ModelLoadError(f"{model_id}: no {name} on the Hub ({type(err).__name__}).") from None
                except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
                    raise ModelLoadError(f"{model_id}: cannot reach the Hub or its cache ({type(err).__name__}).") from None
        try:
            if Path(files[CONFIG_NAME]).stat().st_size > 50_000_000:
                raise ModelLoadError(f"{model_id}: {CONFIG_NAME} is over 50 MB; a config holds settings and a vocabulary.")
            config = json.loads(Path(files[CONFIG_NAME]).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:
            if isinstance(err, ModelLoadError):
                raise
            raise ModelLoadError(f"{model_id}: {CONFIG_NAME} is not valid JSON ({str(err)[:200]}).") from None
        model = cls(GranuMambaConfig.from_dict(config))
        try:
            tensors = load_file(files[WEIGHTS_NAME], device=map_location)
        except (SafetensorError, OSError, ValueError) as err:
            raise ModelLoadError(f"{model_id}: {WEIGHTS_NAME} is damaged or not a safetensors file ({err}).") from None
        broken = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if broken:
            names = ", ".join(broken[:3])
            raise ModelLoadError(f"{model_id}: {WEIGHTS_NAME} holds NaN or infinite weights ({names}); the file is damaged.")
        if motion_priors_only:  # stage 1's output: its generator is untrained, whatever its shape
            tensors = {k: v for k, v in tensors.items() if not k.startswith("generator.")}
        try:
            missing, unexpected = model.load_state_dict(tensors, strict=False)
        except RuntimeError as err:  # shapes that differ from config.json's sizes
            raise ModelLoadError(f"{model_id}: {WEIGHTS_NAME} does not match config.json ({str(err).splitlines()[-1].strip()}).") from None
        missing = [k for k in missing if not k.endswith("steps_unused") and not (motion_priors_only and k.startswith("generator."))]
        if missing or unexpected:
            raise ModelLoadError(
                f"{model_id}: {WEIGHTS_NAME} does not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]})."
            )
        return model.eval()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> GranuMamba:
        """Load from a local folder or a Hub repo id. Only safetensors weights are read: a
        checkpoint that would need unpickling is refused. `motion_priors_only=True` loads the
        part VQ-VAEs and statistics and leaves the generator at its initial weights (stage 1's
        output, which stage 2 starts from)."""
        model_id = str(pretrained_model_name_or_path)
        if not os.path.isdir(model_id) and (os.path.exists(model_id) or model_id.startswith((".", "/", "~"))):
            raise ModelLoadError(
                f"{model_id}: not a model folder (expected a folder with {CONFIG_NAME} and {WEIGHTS_NAME}, or a Hub repo id)."
            )
        return cls._from_pretrained(model_id=model_id, **kwargs)
