"""The sizes of each module, as the module takes them: one object, passed whole.

`GranuMambaConfig` (config.json, flat for the Hub) holds them all; `VQConfig` and
`GeneratorConfig` are its views for the part VQ-VAEs and the generator. A field added here is
read from config.json by name, and `train.stage2` takes the generator's fields from the training
config by these names, so none is forgotten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..audio.features import FEATURE_DIM
from ..motion.parts import PART_NAMES


@dataclass
class VQConfig:
    """A part VQ-VAE (stage 1): every field has the name it has in config.json."""

    vq_hidden: int = 256
    latent_dim: int = 128
    codebook_size: int = 256
    downsamples: int = 2
    factors: tuple[int, ...] = (4, 2, 1)  # coarse, mid, fine: latent steps per token of each level
    beta: float = 0.25
    dead_after: int = 200
    split_decoder: bool = False  # the fine level decoded apart, the rest low-passed (vqvae.py); false in checkpoints before it
    slow_cutoff: float = 0.0  # Hz where the split decoder's low-pass halves; 0: the mid level's Nyquist rate, as before it (vqvae.py)
    # each level through a decoder of its own into its own band (coarse below its Nyquist rate, mid
    # up to the split decoder's cutoff, fine above it; vqvae.py); needs split_decoder; false before it
    level_bands: bool = False
    coarse_context: bool = False  # level_bands' mid decoder reads the coarse codes too (vqvae.py); false before it
    coarse_cutoff: float = 0.0  # Hz where level_bands' coarse low-pass halves; 0: the coarse level's Nyquist rate (vqvae.py)
    causal: bool = False  # no output sees later input: decoders, level upsampling, generator steps (live mode's latency); false before it

    @property
    def frames_per_latent(self) -> int:
        return 2**self.downsamples


@dataclass
class GeneratorSizes:
    """The generator's own settings (stage 2 may choose them anew on a finished stage 1)."""

    d_model: int = 256
    n_global: int = 2
    n_local: int = 2
    d_state: int = 16
    expand: int = 2
    lookahead: int = 6
    dropout: float = 0.1
    own_history: int = 1  # codes of its own level, the latest first, that each head step sees (generator.py); 1 before it
    # m/s; above 0 each head has a "hold" outcome beside its codes (keep the step before's code),
    # learned where the truth's elbows and wrists all move slower than this (generator.py); 0 before it
    hold_speed: float = 0.0


@dataclass
class GeneratorConfig(GeneratorSizes):
    """The generator: its own settings and the facts fixed by stage 1, its data (the speakers it
    saw), the speech features and the vocabulary."""

    num_speakers: int = 31
    feature_dim: int = FEATURE_DIM
    vocab_size: int = 1
    parts: int = 4
    codebook_size: int = 256
    latent_dim: int = 128
    frames_per_latent: int = 4
    factors: tuple[int, ...] = VQConfig.factors
    causal: bool = False  # each level's step sees the speech up to its first fine step only (generator.py)


class ModelLoadError(ValueError):
    """A model folder or repo that cannot be loaded; the message says what is wrong."""


# What a config.json may ask for: far above any model this project trains (BEAT2's is d_model
# 256, 512 codes), far below what would exhaust memory before the weights are even read.
_INT_RANGES = {
    "vq_hidden": (1, 4096),
    "latent_dim": (1, 4096),
    "codebook_size": (2, 65536),
    "downsamples": (0, 6),
    "dead_after": (0, 10**9),
    "d_model": (1, 4096),
    "n_global": (1, 64),
    "n_local": (1, 64),
    "d_state": (1, 1024),
    "expand": (1, 16),
    "lookahead": (0, 300),
    "own_history": (1, 16),
    "num_speakers": (1, 100_000),
    "default_speaker": (0, 100_000),
    "feature_dim": (1, 4096),
}


@dataclass
class GranuMambaConfig(VQConfig, GeneratorSizes):
    """Everything that defines a model (config.json): the part VQ-VAEs' fields, the generator's
    own, and what they share. Sizes default to the demo model; see train/configs."""

    num_speakers: int = 31
    vocab: list[str] = field(default_factory=list)
    speaker_names: dict[str, str] = field(default_factory=dict)  # speaker id -> display name
    default_speaker: int = 2
    trained_stages: list[int] = field(default_factory=list)
    feature_dim: int = FEATURE_DIM
    temperature: float = 1.0  # the sampling temperature it is served at unless told otherwise (pipeline, live mode)
    # with a hold outcome, the temperature a step's hold-or-move choice is sampled at, whatever
    # the codes' (generator.StepSampling); 1 before it
    hold_temperature: float = 1.0
    # each level's temperature as a share of the sampling temperature, coarse to fine (a level
    # whose codes set the strokes may be sampled warmer than one whose codes add the fine
    # motion); empty: every level at the sampling temperature, as before it
    level_temperature: list[float] = field(default_factory=list)

    def level_temperatures(self, temperature: float) -> list[float]:
        """The temperature each level's codes are sampled at, coarse to fine."""
        return [temperature * share for share in self.level_temperature or [1.0] * len(self.factors)]

    @classmethod
    def from_dict(cls, values: dict) -> GranuMambaConfig:
        """Checked before anything is built: every value of the right type and within what the
        product can hold, so a hostile or broken config.json is a message, not an allocation."""
        if not isinstance(values, dict):
            raise ModelLoadError(f"config.json must hold an object of settings, not {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelLoadError(f"config.json has keys this version does not know: {', '.join(unknown)}")
        values = dict(values)
        for name, (low, high) in _INT_RANGES.items():
            if name in values:
                value = values[name]
                if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                    raise ModelLoadError(f"config.json: {name} must be a whole number from {low} to {high}, got {value!r}")
        # (name, top, whether 0 itself is allowed): a hold temperature of 0 would divide by zero
        for name, high, zero in (
            ("beta", 1, True),
            ("dropout", 1, True),
            ("temperature", 2, True),
            ("slow_cutoff", 15, True),
            ("coarse_cutoff", 15, True),
            ("hold_speed", 5, True),
            ("hold_temperature", 2, False),
        ):
            value = values.get(name, high)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value if zero else 0 < value) or value > high:
                span = f"from 0 to {high}" if zero else f"above 0 up to {high}"
                raise ModelLoadError(f"config.json: {name} must be a number {span}, got {value!r}")
        if "factors" in values:
            factors = values["factors"]
            if not isinstance(factors, list) or not all(isinstance(f, int) and not isinstance(f, bool) and 1 <= f <= 64 for f in factors):
                raise ModelLoadError(f"config.json: factors must be a list of whole numbers from 1 to 64, got {factors!r}")
            values["factors"] = tuple(factors)
        shares = values.get("level_temperature", [])
        levels = len(values.get("factors", cls.factors))
        if (
            not isinstance(shares, list)
            or shares
            and len(shares) != levels
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 <= s <= 2 for s in shares)
        ):
            raise ModelLoadError(
                f"config.json: level_temperature must be empty or a list of {levels} numbers from 0 to 2 (one a level), got {shares!r}"
            )
        values["level_temperature"] = [float(s) for s in shares]
        for name in ("split_decoder", "level_bands", "coarse_context", "causal"):
            if not isinstance(values.get(name, False), bool):
                raise ModelLoadError(f"config.json: {name} must be true or false, got {values[name]!r}")
        for name, kind in (("vocab", list), ("speaker_names", dict), ("trained_stages", list)):
            if name in values and not isinstance(values[name], kind):
                raise ModelLoadError(f"config.json: {name} must be a {kind.__name__}")
        if len(values.get("vocab", [])) > 1_000_000 or not all(isinstance(w, str) for w in values.get("vocab", [])):
            raise ModelLoadError("config.json: vocab must be a list of at most a million words")
        return cls(**values)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["factors"] = list(self.factors)
        return out

    @property
    def vq(self) -> VQConfig:
        """What each part VQ-VAE is built from."""
        return VQConfig(**{f.name: getattr(self, f.name) for f in fields(VQConfig)})

    def generator(self, vocab_size: int) -> GeneratorConfig:
        """What the generator is built from (the vocabulary's size counts its padding entries)."""
        own = {f.name: getattr(self, f.name) for f in fields(GeneratorConfig) if hasattr(self, f.name)}
        return GeneratorConfig(**own | {"vocab_size": vocab_size, "parts": len(PART_NAMES), "frames_per_latent": self.vq.frames_per_latent})
