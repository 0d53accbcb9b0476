"""The configuration of a run: architecture hyperparameters plus the zoo's own sections.

A run config has five sections: `encoder` (the plugin's hyperparameter
dataclass), `classifier` (embedding, pooling, head), `tokenizer`, `train` and
`pretrain` (the language model of `zoo pretrain`).
Values come from dataclass defaults, then a registry.toml recipe, then
`--set section.key=value` overrides (a bare `key` works when only one section
has it). Every value is type-checked before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ConfigError

POOLINGS = ("max", "mean", "last")
MAX_VOCAB = 1_000_000  # SentencePiece vocabularies beyond this are mistakes (and an embedding of gigabytes)
MAX_WIDTH = 65_536  # embedding and head sizes
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine", "linear")  # cosine and linear decay to 0 after the warmup


@dataclass
class ClassifierConfig:
    """Embedding -> encoder -> pooling over valid steps -> head; shared by every architecture."""

    embedding_dim: int = 128
    embedding_std: float = 1.0  # embeddings start as N(0, std^2); 1.0 is PyTorch's default (init = "torch" only)
    embedding_dropout: float = 0.0
    word_dropout: float = 0.0  # training only: each token's whole embedding is zeroed with this probability
    pooling: str = "max+mean+last"  # any of max, mean, last joined with "+"
    head_hidden: int = 64  # 0: a single linear layer
    head_dropout: float = 0.0
    init: str = "torch"  # "keras": Keras' initializers (see zoo.model.keras_init), as in the seed tutorial

    def __post_init__(self) -> None:
        if self.init not in ("torch", "keras"):
            raise ValueError(f"init must be torch or keras, got {self.init!r}")
        if self.init == "keras" and self.embedding_std != 1.0:
            raise ValueError("embedding_std applies to init = torch; init = keras draws embeddings from uniform(-0.05, 0.05)")
        parts = self.pooling.split("+")
        if not parts or any(p not in POOLINGS for p in parts) or len(set(parts)) != len(parts):
            raise ValueError(f"pooling must join distinct items of {', '.join(POOLINGS)} with '+', got {self.pooling!r}")
        _check_positive(embedding_dim=self.embedding_dim, embedding_std=self.embedding_std)
        _check_at_most(MAX_WIDTH, embedding_dim=self.embedding_dim, head_hidden=self.head_hidden)
        _check_dropout(embedding_dropout=self.embedding_dropout, word_dropout=self.word_dropout,
                       head_dropout=self.head_dropout)


@dataclass
class TokenizerConfig:
    vocab_size: int = 8192
    model_type: str = "unigram"  # unigram or bpe
    use_unsupervised: bool = False  # also train the tokenizer on the 50k unlabeled reviews

    def __post_init__(self) -> None:
        if self.model_type not in ("unigram", "bpe"):
            raise ValueError("model_type must be unigram or bpe")
        if self.vocab_size < 64:
            raise ValueError("vocab_size must be >= 64")
        _check_at_most(MAX_VOCAB, vocab_size=self.vocab_size)


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    max_batch_tokens: int = 0  # cap on padded tokens per batch (B * T); 0: batch_size alone
    max_tokens: int = 0  # truncate reviews to their first max_tokens tokens; 0: full reviews
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0: no clipping
    schedule: str = "constant"
    warmup_fraction: float = 0.0
    ema_decay: float = 0.0  # > 0: validate, keep and test an exponential moving average of the weights
    patience: int = 0  # epochs without validation improvement before stopping; 0: never stop early
    seed: int = 0
    log_every: int = 50  # steps between metrics.jsonl step records
    eval_every: int = 0  # steps between extra validation evaluations; 0: at the end of each epoch only
    checkpoint_every: int = 100  # steps between resumable checkpoints (also written at each epoch's end)
    # Fine-tuning from `zoo pretrain` (`--init-from`), as in ULMFiT. The layer groups, top down: head, encoder,
    # embedding. Each group's learning rate is the one above it divided by lr_decay (1.0: one rate for all);
    # with unfreeze_fraction f > 0, only the head trains for the first f of the steps, the encoder joins at f,
    # the embedding at 2f.
    lr_decay: float = 1.0
    unfreeze_fraction: float = 0.0
    # > 0: adversarial training (Miyato et al. 2017), `zoo train` only. Each step also trains on every review with
    # its embeddings moved in the direction that raises its loss most (the loss's gradient), by this fraction of
    # their L2 norm over the review; a step costs about twice as much.
    adversarial: float = 0.0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}")
        _check_positive(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)
        if not 0 <= self.seed < 2**32:
            raise ValueError("seed must be in [0, 2**32)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("ema_decay must be in [0, 1)")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError("warmup_fraction must be in [0, 1)")
        if not 0.0 <= self.unfreeze_fraction < 0.5:
            raise ValueError("unfreeze_fraction must be in [0, 0.5) (the embedding joins at twice it)")
        if not 0.0 <= self.adversarial < 1.0:
            raise ValueError("adversarial must be in [0, 1) (a fraction of each review's embedding norm)")
        if self.lr_decay < 1.0:
            raise ValueError("lr_decay must be >= 1 (the rate divides by it from the head down)")
        for name in ("max_batch_tokens", "max_tokens", "weight_decay", "grad_clip", "patience", "log_every",
                     "eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


SOFTMAXES = ("sampled", "full")


@dataclass
class PretrainConfig:
    """`zoo pretrain`: the encoder as a language model over train + unlabelled texts (see zoo.language_model)."""

    chunk_tokens: int = 400  # texts are cut into chunks of at most this many tokens, each read from its start
    softmax: str = "sampled"  # sampled: the true token against `samples` shared draws from the unigram^0.75
    samples: int = 1024  # negatives per batch (sampled softmax)
    eval_texts: int = 1000  # validation texts for the perplexity check (the full softmax); 0: all
    snapshot_minutes: float = 0.0  # > 0: keep the weights every this many minutes of training (snapshots/)

    def __post_init__(self) -> None:
        if self.softmax not in SOFTMAXES:
            raise ValueError(f"softmax must be one of {', '.join(SOFTMAXES)}")
        if self.chunk_tokens < 2:
            raise ValueError("chunk_tokens must be >= 2 (a token and the next one to predict)")
        _check_positive(samples=self.samples)
        _check_at_most(MAX_VOCAB, samples=self.samples, chunk_tokens=self.chunk_tokens)
        for name in ("eval_texts", "snapshot_minutes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name} must be > 0")


def _check_at_most(limit: int, **values: float) -> None:
    for name, value in values.items():
        if value > limit:
            raise ValueError(f"{name} must be <= {limit:,}")


def _check_dropout(**values: float) -> None:
    for name, value in values.items():
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1)")


SECTIONS = {"classifier": ClassifierConfig, "tokenizer": TokenizerConfig, "train": TrainConfig,
            "pretrain": PretrainConfig}


@dataclass
class RunConfig:
    """Everything needed to rebuild and retrain a model, and nothing executable."""

    recipe: str
    architecture: str
    encoder: Any
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)

    def sections(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "classifier": self.classifier, "tokenizer": self.tokenizer, "train": self.train,
                "pretrain": self.pretrain}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"recipe": self.recipe, "architecture": self.architecture}
        out.update({name: dataclasses.asdict(section) for name, section in self.sections().items()})
        return out


def field_types(cls: type) -> dict[str, Any]:
    """The declared type of each field of a dataclass (resolving string annotations)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:  # an annotation that names something the plugin module does not define
        raise ConfigError(f"cannot read the field types of {cls.__qualname__}: {type(exc).__name__}: {exc}") from None
    return {f.name: hints.get(f.name, str) for f in dataclasses.fields(cls)}


def coerce(value: Any, kind: Any, where: str) -> Any:
    """Convert a TOML value or a command-line string to a field's declared type, or raise ConfigError.

    Types: bool, int, float (finite only), str, `X | None` ("none" or "null" on the command line),
    `Literal[...]`, `list[X]` and `tuple[X, ...]` / `tuple[X, Y]` (TOML arrays, or "1,2" / "[1, 2]").
    """
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if type(None) in args and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))):
            return None
        for option in options:
            try:
                return coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {_type_name(kind)}")
    if origin is typing.Literal:
        for allowed in args:
            try:
                if coerce(value, type(allowed), where) == allowed:
                    return allowed
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
    if origin in (list, tuple):
        items = _items(value, where)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(items) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values ({_type_name(kind)}), got {len(items)}")
            return tuple(coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(items, args)))
        item_kind = args[0] if args else str
        converted = [coerce(v, item_kind, f"{where}[{i}]") for i, v in enumerate(items)]
        return tuple(converted) if origin is tuple else converted
    if kind not in (bool, int, float, str):
        if isinstance(kind, type) and isinstance(value, kind):
            return value
        raise ConfigError(f"{where}: the type {_type_name(kind)} cannot be set from {value!r}")
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        try:
            if kind is bool:
                lowered = text.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return lowered in ("true", "1", "yes")
            value = kind(text)
        except ValueError:
            raise ConfigError(f"{where}: {text!r} is not a valid {kind.__name__}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise ConfigError(f"{where}: expected a {kind.__name__}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    return value


def _items(value: Any, where: str) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        return [part.strip() for part in text.split(",") if part.strip()]
    raise ConfigError(f"{where}: expected a list, got {value!r}")


def _type_name(kind: Any) -> str:
    return kind.__name__ if isinstance(kind, type) and not typing.get_args(kind) else str(kind).replace("typing.", "")


def build_section(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate a section dataclass from defaults plus `values`, checking names and types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table of settings, got {type(values).__name__}")
    kinds = field_types(cls)
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(kinds)}")
    kwargs = {k: coerce(v, kinds[k], f"{where}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_overrides(pairs: list[str], encoder_cls: type) -> dict[str, dict[str, str]]:
    """Turn ["train.lr=1e-3", "hidden_size=64"] into {"train": {"lr": "1e-3"}, "encoder": {...}}."""
    known = {"encoder": field_types(encoder_cls)} | {name: field_types(cls) for name, cls in SECTIONS.items()}
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, for example train.lr=0.001")
        if "." in key:
            section, _, name = key.partition(".")
            if section not in known:
                raise ConfigError(f"--set {key}: unknown section {section!r}; sections: {', '.join(known)}")
            if name not in known[section]:
                raise ConfigError(f"--set {key}: unknown key; {section} has {', '.join(known[section])}")
        else:
            owners = [s for s, names in known.items() if key in names]
            if not owners:
                raise ConfigError(f"--set {key}: no section has this key; see `zoo info NAME`")
            if len(owners) > 1:
                raise ConfigError(f"--set {key}: ambiguous, use one of {', '.join(f'{s}.{key}' for s in owners)}")
            section, name = owners[0], key
        out.setdefault(section, {})[name] = value
    return out
