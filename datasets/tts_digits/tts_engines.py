"""The speech synthesizers the spoken-digits recipe draws voices from: espeak-ng, flite and festival.

Each engine lists the voices it offers on this machine and turns one text into ``(samples (S,), rate)``.
All three are Debian packages (``apt-get install espeak-ng flite festival festvox-kallpc16k
festvox-kdlpc16k festvox-us-slt-hts``); a missing one simply offers no voices.
"""
from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import soundfile as sf
import torch

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# Flite voices that share their speaker with a festival test voice (kal: the same diphone database; slt: the same
# Arctic recordings) never go into training, so ``test_festival`` stays an unseen engine *and* unseen speakers.
FLITE_HELD_OUT = ("kal", "kal16", "slt")
FLITE_SKIP = ("awb_time",)  # a talking-clock voice: it can only say times
ACCENT_MIN_KEPT = 0.7  # share of an English digit's phonemes a foreign voice must keep to count as an accent


def _run(cmd: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True, timeout=60)


def _read_wav_bytes(data: bytes, what: str) -> tuple[torch.Tensor, int]:
    try:
        samples, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise RuntimeError(f"{what}: produced no readable WAV ({e})") from None
    if samples.shape[0] == 0:
        raise RuntimeError(f"{what}: produced no audio")
    return torch.from_numpy(samples).mean(dim=1), sr


# ---------------------------------------------------------------------------------------------- espeak-ng
def espeak_exe() -> str | None:
    return shutil.which("espeak-ng")


def _espeak_table(exe: str, kind: str) -> list[list[str]]:
    out = _run([exe, f"--voices={kind}" if kind else "--voices"]).stdout
    return [line.split() for line in out.splitlines()[1:] if line.strip()]


def espeak_english_voices(exe: str) -> list[str]:
    """espeak-ng's own English voices (MBROLA voices left out: they need the non-free mbrola data)."""
    return sorted({r[1] for r in _espeak_table(exe, "en") if len(r) >= 5 and r[4].startswith("gmw/")})


def espeak_variants(exe: str) -> list[str]:
    """Variant names usable as ``<voice>+<variant>``."""
    rows = _espeak_table(exe, "variant")
    return sorted({r[4].split("/", 1)[1] for r in rows if len(r) >= 5 and r[4].startswith("!v/")})


def _strip_ipa(ipa: str) -> str:
    return re.sub(r"[ˈˌ\d\s]|\([^)]*\)", "", ipa)  # stress marks, tone digits, language-switch tags


def english_phonemes(exe: str) -> dict[str, str]:
    """Each digit word in espeak-ng's phoneme mnemonics as en-us says it (``three`` -> ``Tr'i:``)."""
    return {w: _run([exe, "-q", "-v", "en-us", "-x", w]).stdout.strip() for w in DIGITS}


def espeak_accent_voices(exe: str) -> list[str]:
    """Non-English espeak-ng voices that can speak English digits with their own phoneme set: an accent.

    A foreign voice reading English *spelling* applies its own letter-to-sound rules ("one" -> /oːnə/ in
    German), which is a different word, not an accent. Fed the English phonemes instead (``[[Tr'i:]]``),
    it maps each onto its own phoneme inventory and drops the ones it lacks; a voice is kept when every
    digit keeps at least ``ACCENT_MIN_KEPT`` of its English length (about 40 of espeak-ng's 130 languages).
    """
    phonemes = english_phonemes(exe)
    ref = {w: len(_strip_ipa(_run([exe, "-q", "-v", "en-us", "--ipa", f"[[{p}]]"]).stdout)) for w, p in phonemes.items()}
    langs = sorted({r[1] for r in _espeak_table(exe, "") if len(r) >= 5 and not r[4].startswith(("mb/", "gmw/"))})
    text = " , ".join(f"[[{phonemes[w]}]]" for w in DIGITS)  # one call per language; commas split the words
    kept = []
    for lang in langs:
        try:
            ipa = _run([exe, "-q", "-v", lang, "--ipa", text]).stdout
        except subprocess.SubprocessError:
            continue
        words = [_strip_ipa(w) for w in ipa.strip().splitlines()]  # --ipa prints each comma's phrase on a line
        if len(words) == len(DIGITS) and all(len(wd) >= ACCENT_MIN_KEPT * ref[w] for wd, w in zip(words, DIGITS)):
            kept.append(lang)
    return kept


def espeak_say(exe: str, words: list[str], voice: str, variant: str, speed: int, pitch: int, gap: int,
               pauses: list[bool], accent: bool) -> tuple[torch.Tensor, int]:
    """Speak digit ``words`` (a pause after word i where ``pauses[i]``) -> ((S,), 22050).

    ``accent``: pass English phonemes instead of spelling (for non-English voices)."""
    if accent:
        phonemes = _english_phonemes_cached(exe)
        tokens = [f"[[{phonemes[w]}]]" for w in words]
    else:
        tokens = list(words)
    text = " ".join(t + ("," if p else "") for t, p in zip(tokens, pauses))
    cmd = [exe, "-v", f"{voice}+{variant}", "-s", str(speed), "-p", str(pitch), "-g", str(gap), "--stdout", text]
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    return _read_wav_bytes(out, f"espeak-ng {voice}+{variant}")


_PHONEMES: dict[str, dict[str, str]] = {}


def _english_phonemes_cached(exe: str) -> dict[str, str]:
    if exe not in _PHONEMES:
        _PHONEMES[exe] = english_phonemes(exe)
    return _PHONEMES[exe]


# ---------------------------------------------------------------------------------------------- flite
def flite_exe() -> str | None:
    return shutil.which("flite")


def flite_voices(exe: str) -> list[str]:
    """Voices compiled into flite (``flite -lv``: "Voices available: kal awb_time kal16 awb rms slt")."""
    out = _run([exe, "-lv"]).stdout
    names = out.split(":", 1)[1].split() if ":" in out else []
    return sorted(v for v in names if v not in FLITE_SKIP)


def flite_say(exe: str, words: list[str], voice: str, stretch: float, pauses: list[bool]) -> tuple[torch.Tensor, int]:
    """Speak digit ``words`` with a flite voice, durations scaled by ``stretch`` -> ((S,), rate)."""
    text = " ".join(w + ("," if p else "") for w, p in zip(words, pauses))
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "u.wav"
        subprocess.run([exe, "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}", "-t", text, "-o", str(wav)],
                       capture_output=True, check=True, timeout=60)
        return _read_wav_bytes(wav.read_bytes(), f"flite {voice}")


# ---------------------------------------------------------------------------------------------- festival
def festival_exe() -> str | None:
    return shutil.which("text2wave") if shutil.which("festival") else None


def festival_voices() -> list[str]:
    """Voices festival can load (``(voice.list)``), e.g. kal_diphone, ked_diphone, cmu_us_slt_arctic_hts."""
    if shutil.which("festival") is None:
        return []
    out = _run(["festival", "--pipe"], stdin="(print (voice.list))\n").stdout
    match = re.search(r"\(([^()]*)\)", out)
    return sorted(match.group(1).split()) if match else []


def festival_say(exe: str, words: list[str], voice: str, stretch: float, pauses: list[bool]) -> tuple[torch.Tensor, int]:
    """Speak digit ``words`` with festival's ``text2wave`` (``Duration_Stretch``; HTS voices ignore it)."""
    text = " ".join(w + ("," if p else "") for w, p in zip(words, pauses)) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "u.wav"
        subprocess.run([exe, "-eval", f"(voice_{voice})", "-eval", f"(Parameter.set 'Duration_Stretch {stretch:.3f})",
                        "-o", str(wav)], input=text.encode(), capture_output=True, check=True, timeout=60)
        return _read_wav_bytes(wav.read_bytes(), f"festival {voice}")
