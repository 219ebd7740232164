"""Everything a training run needs, as one typed dataclass (saved in the checkpoint)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class TrainConfig:
    out: str | None = None               # output folder: best.pt, last.pt, log.csv, tb/ (None: runs/<task or data>)
    task: str = "dtmf"                   # built-in data ("dtmf", "actions", "actions_basic", "textlines") without manifests
    train_manifest: str | list | None = None  # manifest or corpus folder; or "path[:weight]" specs (crnn.data.mixing)
    val_manifest: str | None = None      # validation data, same forms
    manifest_format: str | None = None   # corpus layout of both manifests (None: detected from the path)
    text_norm: str = "auto"              # transcript policy: "english", "basic", "none" or "auto" (english if plain English)
    units: str = "char"                  # output units: "char", or SentencePiece "bpe" / "unigram" trained on the transcripts
    bpe_size: int = 256                  # SentencePiece vocabulary size (units bpe/unigram)
    modality: str = "auto"               # "audio", "video", "features" or "auto" (from the preset/files)
    model: str | None = None             # preset name (crnn.list_models()); None: the task's default
    model_args: dict = field(default_factory=dict)  # ModelConfig fields / frontend args over the preset
    train_size: int = 4000               # built-in task: utterances per epoch (fresh every epoch)
    val_size: int = 200                  # built-in task: fixed validation utterances
    epochs: int = 10                     # passes over the training data
    max_minutes: float | None = None     # stop (after validation) once this much training time is spent
    time_schedule: bool = False          # anneal the learning rate over max_minutes too (whichever ends first)
    batch_size: int = 32                 # items per batch (or the upper bound with max_frames)
    max_frames: int | None = None        # bucketed batching: max padded input units per batch
    lr: float = 3e-3                     # peak learning rate (AdamW)
    weight_decay: float = 1e-2           # AdamW weight decay
    warmup_steps: int = 200              # linear warm-up steps, then cosine decay
    min_lr_ratio: float = 0.05           # final learning rate / peak
    grad_clip: float = 5.0               # max gradient norm
    precision: str = "auto"              # "fp32", "bf16", "fp16" (autocast on CUDA) or "auto" (bf16 on CUDA)
    device: str = "auto"                 # "cpu", "cuda", "cuda:1" or "auto"
    workers: int | None = None           # DataLoader workers (None: 1 on CPU, 4 on CUDA)
    threads: int | None = None           # CPU compute threads (None: the cores the workers leave free)
    seed: int = 0                        # seeds model init, data order and the built-in data
    sortagrad: bool = True               # first epoch shortest-first (manifest data)
    augment: dict = field(default_factory=dict)  # waveform augmentation fields (AugmentConfig)
    clip_augment: dict = field(default_factory=dict)  # video clip augmentation fields (ClipAugmentConfig)
    resume: str | None = None            # checkpoint to resume from ("auto": OUT/last.pt if present)
    init_from: str | None = None         # checkpoint whose model (weights, tokenizer) a new run starts from
    overwrite: bool = False              # replace a run already in OUT (else a new run there is refused)
    max_bad_fraction: float = 0.5        # stop when more of the data than this is unusable (pre-scan, epoch 1)
    ema_decay: float | None = None       # keep an exponential moving average of the weights (e.g. 0.999): ema.pt
    fonts: list | None = None            # textlines: font folders/files/globs (None: system + matplotlib fonts)
    text_corpus: str | None = None       # textlines: a file of real sentences, one per line, half the lines drawn from it
    clip_pool: int = 0                   # actions: render this many training clips once into cache_dir and reuse them (0: fresh clips)
    cache_dir: str = "data/cache"        # where rendered clip pools are kept (named by a hash of what made them)
    average_last: int = 0                # average the weights of the last N epochs at the end: averaged.pt
    log_every: int = 20                  # steps between log rows
    tensorboard: bool = True             # also write TensorBoard event files
    progress: bool = True                # progress bars

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
