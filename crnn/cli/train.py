"""``crnn train``: train a model (built-in data by default, or manifests / corpus folders)."""
from __future__ import annotations

import argparse
import json
import sys

from crnn.cli.clip_augment_args import add_clip_augment_args, clip_augment_from_args
from crnn.cli.common import (OrderedPair, add_plugin_arg, finite_float, fraction, load_plugins, non_negative_int, open_fraction,
                              parse_key_values,
                              positive_float, positive_int)
from crnn.data.manifest import manifest_formats
from crnn.data.tasks import TASKS
from crnn.tokenizer import TEXT_NORMS, UNITS


def get_args_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(description="Train a CNN -> RNN -> CTC model")
    d = p.add_argument_group("data")
    d.add_argument("--out", default=None,
                   help="output folder (best.pt, last.pt, log.csv, tb/); default runs/<task> or runs/<manifest name>")
    d.add_argument("--task", default="dtmf", choices=TASKS.names(),
                   help="built-in data when no manifest is given (actions_basic: the action task's original look; "
                        "textlines: printed lines rendered on the fly)")
    d.add_argument("--fonts", action="append", metavar="PATH",
                   help="textlines: font folder, file or glob to render with (repeatable; default: the system's "
                        "fonts and matplotlib's, less the held-out test families)")
    d.add_argument("--text-corpus", metavar="FILE",
                   help="textlines: a text file of real sentences, one per line; half the lines are drawn from it "
                        "(one sentence in five is kept for the test split)")
    d.add_argument("--clip-pool", type=positive_int, metavar="N",
                   help="actions: render N training clips once (in parallel, kept in --cache-dir) and read them back "
                        "each epoch with fresh augmentation, so that the renderer does not pace training "
                        "(default: every epoch renders new clips)")
    d.add_argument("--cache-dir", default="data/cache", metavar="DIR",
                   help="where --clip-pool keeps its rendered clips (default: %(default)s)")
    d.add_argument("--train-manifest", action="append", metavar="PATH[:WEIGHT]",
                   help="training manifest (JSONL/NeMo/CSV) or corpus folder (LibriSpeech ...); repeat it to train on "
                        "several, each optionally weighted: items seen per epoch = WEIGHT x its items (default 1)")
    d.add_argument("--val-manifest", help="validation manifest or folder")
    d.add_argument("--manifest-format", choices=manifest_formats(),
                   help="corpus layout of the manifests (default: detected from the path)")
    d.add_argument("--text-norm", default="auto", choices=["auto", *TEXT_NORMS],
                   help="transcript policy: english (a-z ' space), basic (any script, punctuation removed), "
                        "none (as written); auto: english for plain English text, else none")
    d.add_argument("--units", default="char", choices=list(UNITS),
                   help="output units: characters, whole words (a closed vocabulary, e.g. digits), or a SentencePiece "
                        "bpe/unigram model trained on the transcripts")
    d.add_argument("--bpe-size", type=positive_int, default=256, help="SentencePiece vocabulary size (default: %(default)s)")
    d.add_argument("--modality", default="auto", choices=["auto", "audio", "video", "features", "image"])
    d.add_argument("--train-size", type=positive_int, default=4000, help="built-in data: items per epoch")
    d.add_argument("--val-size", type=positive_int, default=200, help="built-in data: validation items")
    m = p.add_argument_group("model")
    m.add_argument("--model", default=None, help="preset (crnn info lists them); default depends on the data")
    m.add_argument("--cell", help="recurrent cell name (crnn info lists them)")
    m.add_argument("--hidden-size", type=positive_int)
    m.add_argument("--num-layers", type=positive_int)
    m.add_argument("--unidirectional", action="store_true", help="forward-only recurrent layers (streamable)")
    m.add_argument("--dropout", type=fraction)
    m.add_argument("--layer-norm", action="store_true")
    m.add_argument("--frontend", help="frontend name (audio, video, video3d, features)")
    m.add_argument("--frontend-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="frontend setting, e.g. n_mels=64, normalize=global, time_subsample=4; repeatable")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=positive_int,
                   help="passes over the training data (default: 10; --task actions: 30, see --max-minutes)")
    o.add_argument("--max-minutes", type=positive_float,
                   help="stop after this much training time (after validating); --task actions: 30 by default")
    o.add_argument("--time-schedule", action=argparse.BooleanOptionalAction, default=None,
                   help="with --max-minutes: the learning rate decays over the time budget or --epochs, whichever "
                        "ends first, so a run the clock stops ends annealed rather than at its peak rate "
                        "(default: on for --task actions, else off)")
    o.add_argument("--batch-size", type=positive_int, default=32)
    o.add_argument("--max-frames", type=positive_int, help="length-bucketed batches of at most this many input units")
    o.add_argument("--lr", type=positive_float, default=3e-3)
    o.add_argument("--weight-decay", type=finite_float, default=1e-2)
    o.add_argument("--warmup-steps", type=positive_int, default=200)
    o.add_argument("--grad-clip", type=positive_float, default=5.0)
    o.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    o.add_argument("--no-sortagrad", action="store_true", help="shuffle the first epoch too")
    o.add_argument("--ema", type=open_fraction, metavar="DECAY", dest="ema_decay",
                   help="keep an exponential moving average of the weights (e.g. 0.999), validated each epoch "
                        "and saved as ema.pt when its validation CER improves")
    o.add_argument("--average-last", type=non_negative_int, default=0, metavar="N",
                   help="keep the last N epochs' weights (epochs/) and write their validated average as averaged.pt")
    a = p.add_argument_group("augmentation (training only)")
    a.add_argument("--spec-augment", action="store_true", help="SpecAugment time/frequency masks")
    a.add_argument("--speed-perturb", action="store_true", help="random speed 0.9/1.0/1.1 (see --speed-factors)")
    a.add_argument("--speed-factors", type=speed_factor_list, metavar="F,F,...",
                   help="speed perturbation drawing from these speeds (default 0.9,1.0,1.1; e.g. 0.8,0.9,1.0,1.1,1.2)")
    a.add_argument("--vtlp", type=vtlp_range, metavar="X", default=0.0,
                   help="vocal tract length perturbation: warp each utterance's frequency axis by a factor in "
                        "[1-X, 1+X] (e.g. 0.1; audio frontend, training only)")
    a.add_argument("--noise-snr", type=finite_float, nargs=2, action=OrderedPair, metavar=("MIN", "MAX"),
                   help="additive noise SNR range (dB)")
    a.add_argument("--noise-dir", help="folder of noise recordings (else coloured noise is generated)")
    a.add_argument("--gain", type=finite_float, nargs=2, action=OrderedPair, metavar=("MIN_DB", "MAX_DB"),
                   help="random gain range")
    a.add_argument("--narrowband", type=fraction, metavar="P",
                   help="band-limit this share of utterances to 8 kHz capture (so 8 kHz files read as well)")
    a.add_argument("--reverb", type=fraction, metavar="P", help="convolve this share of utterances with a room impulse response")
    a.add_argument("--reverb-rt60", type=positive_float, nargs=2, action=OrderedPair, metavar=("MIN", "MAX"),
                   help="simulated rooms' RT60 range (s)")
    a.add_argument("--rir-dir", help="folder of recorded impulse responses for --reverb (else rooms are simulated)")
    a.add_argument("--babble", type=fraction, metavar="P", help="mix 1-3 other training utterances into this share")
    a.add_argument("--babble-snr", type=finite_float, nargs=2, action=OrderedPair, metavar=("MIN", "MAX"),
                   help="speech / babble SNR range (dB)")
    a.add_argument("--eq", type=fraction, metavar="P", help="random microphone/channel EQ (tilt + one band) on this share")
    a.add_argument("--codec", type=fraction, metavar="P", help="lossy codec round trip (MP3, Opus, GSM, mu-law) on this share")
    add_clip_augment_args(p)
    r = p.add_argument_group("run")
    r.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    r.add_argument("--workers", type=non_negative_int, help="data loading workers (default 1 on CPU, 4 on CUDA)")
    r.add_argument("--threads", type=positive_int, help="CPU compute threads (default: cores left free by the workers)")
    r.add_argument("--seed", type=int, default=0)
    start = r.add_mutually_exclusive_group()
    start.add_argument("--resume", help="checkpoint to resume from, or 'auto' for OUT/last.pt when present")
    start.add_argument("--init-from", metavar="CK",
                       help="start a new run from this checkpoint's model (weights and units: fine-tuning, a "
                            "curriculum's next stage); optimizer, schedule and epochs start afresh")
    r.add_argument("--overwrite", action="store_true", help="replace the run already in --out (else it is refused)")
    r.add_argument("--max-bad-fraction", type=fraction, default=0.5,
                   help="stop when more than this share of the data is unusable (default: %(default)s)")
    r.add_argument("--no-tensorboard", action="store_true")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--summary-json", help="also write the run summary (best CER/WER, time) to this file")
    add_plugin_arg(p)
    return p


# waveform augmentation fields (crnn.data.audio.augment.AugmentConfig) -> the flag that sets each
WAVE_AUGMENT_FLAGS = {"speed_perturb": "--speed-perturb", "speed_factors": "--speed-factors", "noise_snr": "--noise-snr",
                      "noise_dir": "--noise-dir", "gain": "--gain", "narrowband_prob": "--narrowband",
                      "reverb_prob": "--reverb", "reverb_rt60": "--reverb-rt60", "rir_dir": "--rir-dir",
                      "babble_prob": "--babble", "babble_snr": "--babble-snr", "eq_prob": "--eq", "codec_prob": "--codec"}


def speed_factor_list(text: str) -> tuple[float, ...]:
    """``"0.8,0.9,1.0"`` -> (0.8, 0.9, 1.0): speeds in [0.5, 2]."""
    try:
        factors = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed factors must be numbers separated by commas, got {text!r}") from None
    if not factors or not all(0.5 <= f <= 2.0 for f in factors):
        raise argparse.ArgumentTypeError(f"speed factors must lie in [0.5, 2], got {text!r}")
    return factors


def vtlp_range(text: str) -> float:
    """The VTLP warp range X of ``--vtlp X``: a number in [0, 0.5)."""
    value = finite_float(text)
    if not 0 <= value < 0.5:
        raise argparse.ArgumentTypeError(f"must be in [0, 0.5), got {text}")
    return value


# A built-in task may carry its own budget (crnn.data.tasks: the action task's 30 epochs or 30 minutes,
# annealed over whichever ends first); anything given on the command line wins.
BUDGET_DEFAULTS = dict(epochs=10, max_minutes=None, time_schedule=False)


def budget_from_args(args: argparse.Namespace) -> dict:
    """epochs, max_minutes, time_schedule: the command line's, else the built-in task's, else the defaults."""
    task = TASKS.get(args.task).budget if not args.train_manifest else {}
    return {k: getattr(args, k) if getattr(args, k) is not None else task.get(k, default)
            for k, default in BUDGET_DEFAULTS.items()}


def config_from_args(args: argparse.Namespace):
    from crnn.training import TrainConfig

    model_args = parse_key_values(args.frontend_arg)
    for key in ("cell", "hidden_size", "num_layers", "dropout", "frontend"):
        value = getattr(args, key)
        if value is not None:
            model_args[key] = value
    if args.unidirectional:
        model_args["bidirectional"] = False
    if args.layer_norm:
        model_args["layer_norm"] = True
    if args.spec_augment:
        model_args["spec_augment"] = True
    if args.vtlp:
        model_args["vtlp"] = args.vtlp
    augment = {}
    if args.speed_perturb:
        augment["speed_perturb"] = True
    if args.speed_factors:  # implies --speed-perturb
        augment["speed_perturb"] = True
        augment["speed_factors"] = args.speed_factors
    if args.noise_snr:
        augment["noise_snr"] = tuple(args.noise_snr)
    if args.noise_dir:
        augment["noise_dir"] = args.noise_dir
    if args.gain:
        augment["gain"] = tuple(args.gain)
    if args.narrowband:
        augment["narrowband_prob"] = args.narrowband
    for flag, field in (("reverb", "reverb_prob"), ("reverb_rt60", "reverb_rt60"), ("rir_dir", "rir_dir"),
                        ("babble", "babble_prob"), ("babble_snr", "babble_snr"), ("eq", "eq_prob"), ("codec", "codec_prob")):
        value = getattr(args, flag)
        if value is not None:
            augment[field] = tuple(value) if isinstance(value, list) else value
    return TrainConfig(
        out=args.out, task=args.task, val_manifest=args.val_manifest,
        train_manifest=args.train_manifest[0] if args.train_manifest and len(args.train_manifest) == 1 else args.train_manifest,
        manifest_format=args.manifest_format, text_norm=args.text_norm, units=args.units, bpe_size=args.bpe_size,
        modality=args.modality, model=args.model, model_args=model_args, train_size=args.train_size,
        val_size=args.val_size, **budget_from_args(args), batch_size=args.batch_size,
        max_frames=args.max_frames, lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
        grad_clip=args.grad_clip, precision=args.precision, device=args.device, workers=args.workers, threads=args.threads,
        seed=args.seed, sortagrad=not args.no_sortagrad, augment=augment, clip_augment=clip_augment_from_args(args),
        resume=args.resume, init_from=args.init_from, overwrite=args.overwrite, max_bad_fraction=args.max_bad_fraction,
        tensorboard=not args.no_tensorboard, progress=not args.no_progress,
        ema_decay=args.ema_decay or None, average_last=args.average_last, fonts=args.fonts, text_corpus=args.text_corpus,
        clip_pool=args.clip_pool or 0, cache_dir=args.cache_dir,
    )


def main(args: argparse.Namespace) -> int:
    from crnn.training import train

    load_plugins(args.plugin)
    cfg = config_from_args(args)
    if cfg.augment and not cfg.train_manifest:
        flags = ", ".join(sorted(WAVE_AUGMENT_FLAGS[k] for k in cfg.augment if k in WAVE_AUGMENT_FLAGS))
        print(f"error: {flags} augment the recordings of --train-manifest; the built-in task --task {cfg.task} "
              "draws its own variation (give --train-manifest, or leave them out)", file=sys.stderr)
        return 2
    if cfg.clip_pool and (cfg.train_manifest or cfg.task not in ("actions", "actions_basic")):
        print(f"error: --clip-pool pre-renders the built-in action clips (--task actions or actions_basic), "
              f"and this run reads {'--train-manifest' if cfg.train_manifest else '--task ' + cfg.task}", file=sys.stderr)
        return 2
    summary = train(cfg)  # expected failures become `error: ...` lines in crnn.cli.main
    if summary.get("rank", 0) != 0:  # under torchrun only rank 0 reports
        return 0
    if summary["best"] is None:
        print(f"no validated epoch: no best.pt; the model is {summary['last']}, {summary['seconds']:.0f} s")
    else:
        print(f"best: {summary['best']} (epoch {summary['best_epoch']}, CER {100 * summary['best_cer']:.2f}%, "
              f"WER {100 * summary['best_wer']:.2f}%), {summary['seconds']:.0f} s")
    if args.summary_json:
        with open(args.summary_json, "w") as f:
            json.dump({k: v for k, v in summary.items() if k != "model"}, f, indent=2)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model", description=__doc__)
    get_args_parser(p)
    p.set_defaults(func=main)
