"""Decode the same utterances saved as 16 kHz WAV, FLAC, MP3, OGG, 48 kHz stereo WAV and 8 kHz WAV and
report how often each format gives the 16 kHz WAV's transcript.

    python datasets/tts_digits/format_check.py --checkpoint runs/digits/best.pt \
        --manifest data/tts_digits/test.jsonl --n 100 [--beam 8 --lexicon digit_words.txt]

Takes the decoding flags of ``crnn decode`` (``--beam``, ``--lexicon``, ``--lm``, ...).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import soundfile as sf
import torch
import torchaudio.functional as AF

import crnn
from crnn.data.audio import read_audio
from crnn.data.manifest import read_manifest
from crnn.cli.decode_args import add_decode_args, options_from_args
from crnn.decoding import Decoder
from crnn.inference import transcribe_files

FORMATS = {  # name -> (suffix, sample rate, channels)
    "flac": (".flac", 16000, 1), "mp3": (".mp3", 16000, 1), "ogg": (".ogg", 16000, 1),
    "wav48k_stereo": (".wav", 48000, 2), "wav8k": (".wav", 8000, 1),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--n", type=int, default=100, help="utterances to check")
    add_decode_args(p)
    args = p.parse_args()

    model = crnn.load_model(args.checkpoint)
    decoder = Decoder(model.tokenizer, options_from_args(args), model.frame_shift)
    rows = read_manifest(args.manifest)[: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {"wav16k": []} | {name: [] for name in FORMATS}
        for i, row in enumerate(rows):
            wave = read_audio(row["path"], 16000)  # (S,)
            base = tmp / f"u{i:04d}_wav16k.wav"
            sf.write(base, wave.numpy(), 16000)
            files["wav16k"].append(str(base))
            for name, (suffix, rate, channels) in FORMATS.items():
                w = AF.resample(wave, 16000, rate) if rate != 16000 else wave
                data = torch.stack([w, 0.8 * w], dim=1) if channels == 2 else w
                path = tmp / f"u{i:04d}_{name}{suffix}"
                sf.write(path, data.numpy(), rate)
                files[name].append(str(path))
        texts = {name: [r.hypotheses[0].text if r.hypotheses else None for r in transcribe_files(model, paths, decoder)]
                 for name, paths in files.items()}
    refs = [row["text"] for row in rows]
    base = texts.pop("wav16k")
    print(f"16 kHz WAV: {sum(b == r for b, r in zip(base, refs))}/{len(rows)} exactly right")
    for name, hyps in texts.items():
        same = sum(h == b for h, b in zip(hyps, base))
        right = sum(h == r for h, r in zip(hyps, refs))
        print(f"{name:>14}: same transcript as the 16 kHz WAV on {same}/{len(rows)} ({100 * same / len(rows):.1f}%), "
              f"exactly right {right}/{len(rows)}")


if __name__ == "__main__":
    main()
