"""The sections of a run's configuration: the zoo's own settings beside the architecture's hyperparameters.

A run config has five sections: `encoder` (the plugin's hyperparameter
dataclass), `classifier` (embedding, pooling, head; the embedding part is
shared with the language model), `tokenizer`, `train` (both `zoo train` and
`zoo pretrain`) and `pretrain` (the language model of `zoo pretrain`).
Values come from dataclass defaults, then a registry.toml recipe, then
`--set section.key=value` overrides (zoo.config.values). Every value is
checked here, before any work starts, and every setting accepted is used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

POOLINGS = ("max", "mean", "last")
MIN_VOCAB = 64  # the smallest tokenizer vocabulary (SentencePiece needs room for the characters)
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
    init: str = "torch"  # "keras": Keras' initializers (see zoo.models.frontend.keras_init), as in the seed tutorial

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
        if self.vocab_size < MIN_VOCAB:
            raise ValueError(f"vocab_size must be >= {MIN_VOCAB}")
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
    # The least optimizer steps a run plans: a small dataset gets more epochs than `epochs` (as many as reach
    # min_steps), and the learning-rate schedule spans them; patience still stops it once validation stops
    # improving, and the best epoch's weights are kept. 0: exactly `epochs`. `--epochs N` means exactly N.
    min_steps: int = 0
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
        for name in ("max_batch_tokens", "max_tokens", "weight_decay", "grad_clip", "patience", "min_steps",
                     "log_every", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


SOFTMAXES = ("sampled", "full")


@dataclass
class PretrainConfig:
    """`zoo pretrain`: the encoder as a language model over train + unlabelled texts (zoo.models.language_model).

    The language model's embedding follows the `classifier` section (size, init, embedding and word dropout)."""

    chunk_tokens: int = 400  # texts are cut into chunks of at most this many tokens, each read from its start
    # sampled: the true token against `samples` shared draws from the unigram^0.75; full: the softmax over the whole
    # vocabulary (exact, and the baseline the sampled softmax is measured against; slower on a CPU)
    softmax: str = "sampled"
    samples: int = 1024  # negatives per batch (sampled softmax only)
    output_dropout: float = 0.1  # on the encoder's outputs before the next-token heads
    eval_texts: int = 1000  # validation texts for the perplexity check (the full softmax); 0: all
    snapshot_minutes: float = 0.0  # > 0: keep the weights every this many minutes of training (snapshots/)

    def __post_init__(self) -> None:
        if self.softmax not in SOFTMAXES:
            raise ValueError(f"softmax must be one of {', '.join(SOFTMAXES)}")
        if self.chunk_tokens < 2:
            raise ValueError("chunk_tokens must be >= 2 (a token and the next one to predict)")
        _check_positive(samples=self.samples)
        _check_at_most(MAX_VOCAB, samples=self.samples, chunk_tokens=self.chunk_tokens)
        _check_dropout(output_dropout=self.output_dropout)
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
RECIPE_SECTIONS = ("encoder", *SECTIONS)  # what a recipe (registry.toml or a plugin's) may set


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
