"""``crnn serve``: the real server on a free loopback port (in process and as a subprocess), real HTTP and
WebSocket clients; files give what ``crnn decode --json`` gives, streams what offline decoding gives.

The streaming model is a tiny forward-only DTMF model trained here (about 10 s of CPU, ``train_helpers``):
the committed ``tests/data/dtmf_tiny.pt`` is bidirectional, so it serves files but not streams.
"""
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

aiohttp = pytest.importorskip("aiohttp")
from aiohttp.test_utils import TestServer  # noqa: E402

import crnn  # noqa: E402
from cli_helpers import ROOT, run_cli  # noqa: E402
from train_helpers import train_streaming_dtmf  # noqa: E402
from crnn.data.builtin.dtmf import DTMFSpec, generate_utterance  # noqa: E402
from crnn.model.checkpoint import save_checkpoint  # noqa: E402
from crnn.serve import EndpointRules, Endpointer, ServeOptions, endpoint  # noqa: E402
from crnn.serve.pcm import PcmDecoder, StreamResampler  # noqa: E402

BIDIRECTIONAL = Path(__file__).parent / "data" / "dtmf_tiny.pt"
SR = 8000
# Keys as the test model was trained on, a little louder and cleaner, with room before and after.
SPEC = DTMFSpec(key_ms=(80, 150), gap_ms=(60, 140), no_gap_prob=0.0, snr_db=(25, 30), level_db=(-12, -8),
                edge_ms=(150, 250), sample_rates=(SR,))


# -- no model needed ----------------------------------------------------------------------------------------
def test_endpointing_rules():
    rules = EndpointRules(trailing_silence=0.4, max_utterance=2.0)
    shift = 0.04
    assert endpoint(rules, frames=20, last_speech=15, frame_shift=shift) is None  # 0.2 s of silence
    assert endpoint(rules, frames=25, last_speech=15, frame_shift=shift) == "silence"  # 0.4 s: rule 1
    assert endpoint(rules, frames=50, last_speech=50, frame_shift=shift) == "max_utterance"  # rule 2
    assert endpoint(rules, frames=9, last_speech=None, frame_shift=shift) is None
    assert endpoint(rules, frames=10, last_speech=None, frame_shift=shift) == "nothing"  # silence only
    with pytest.raises(ValueError, match="trailing_silence"):
        EndpointRules(trailing_silence=0)

    ep = Endpointer(rules, shift)
    blank, key = torch.zeros(5), torch.zeros(5)
    blank[0], key[3] = 1.0, 1.0
    frames = lambda *rows: torch.stack(rows).log_softmax(-1)  # noqa: E731  (N, V)
    assert ep.update(frames(blank, blank, key, blank)) is None  # speech heard at frame 2
    assert ep.last_speech == 3 and ep.frames == 4
    assert ep.update(frames(*[blank] * 8)) is None  # 9 blank frames after speech: 0.36 s
    assert ep.update(frames(blank)) == "silence"
    ep.reset()
    assert ep.frames == 0 and ep.last_speech is None


@pytest.mark.parametrize("orig", [16000, 44100, 48000, 22050])
def test_stream_resampler_equals_whole_signal_resampling(orig, one_thread):
    import torchaudio.functional as AF

    x = torch.randn(orig // 3)
    whole = AF.resample(x, orig, SR)
    for chunk in (7, 160, orig // 10):
        r = StreamResampler(orig, SR)
        got = torch.cat([r.accept(x[i:i + chunk]) for i in range(0, x.numel(), chunk)] + [r.finish()])
        assert got.shape == whole.shape
        torch.testing.assert_close(got, whole, atol=1e-4, rtol=0)


def test_pcm_pieces_of_any_size():
    samples = np.array([0, 1, -1, 32767, -32768, 1234], dtype="<i2")
    data = samples.tobytes()
    dec = PcmDecoder()
    got = torch.cat([dec.decode(data[i:i + 3]) for i in range(0, len(data), 3)])  # odd-sized pieces
    assert torch.equal(got, torch.from_numpy(samples.astype(np.float32) / 32768))


def test_serve_refuses_an_open_host_without_a_token_and_says_what_to_install(capsys, monkeypatch):
    from crnn.cli import main

    monkeypatch.delenv("CRNN_SERVE_TOKEN", raising=False)
    assert main(["serve", "-c", "missing.pt", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "error: --host 0.0.0.0 is not a loopback address" in err and "--token" in err
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if it were not installed
    assert main(["serve", "-c", "missing.pt"]) == 1
    assert capsys.readouterr().err.strip() == "error: crnn serve needs aiohttp: pip install 'crnn[serve]'"
    with pytest.raises(SystemExit) as e:
        main(["serve", "-c", "missing.pt", "--port", "70000"])
    assert e.value.code == 2 and "port number" in capsys.readouterr().err


# -- a trained streaming model ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("serve") / "uni.pt", train_streaming_dtmf(steps=450), {})


@pytest.fixture(scope="module")
def model(ckpt):
    return crnn.load_model(ckpt)


def keys_audio(rng, keys: str) -> np.ndarray:
    return generate_utterance(rng, SPEC, SR, keys=keys)[0]


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """one.wav: a key string; two.wav: two key strings 1.5 s of quiet noise apart (16-bit PCM, 8 kHz)."""
    folder = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(7)
    one = keys_audio(rng, "147#2")
    quiet = rng.normal(0, 0.002, int(1.5 * SR)).astype(np.float32)
    two = np.concatenate([keys_audio(rng, "3690"), quiet, keys_audio(rng, "*58")])
    paths = {"one": folder / "one.wav", "two": folder / "two.wav"}
    sf.write(paths["one"], one, SR, subtype="PCM_16")
    sf.write(paths["two"], two, SR, subtype="PCM_16")
    return paths


@contextlib.asynccontextmanager
async def serving(model, **options):
    """The app on a free loopback port (aiohttp's TestServer) and a real client session."""
    from crnn.serve.app import make_app

    async with TestServer(make_app(model, ServeOptions(**options)), host="127.0.0.1") as server:
        async with aiohttp.ClientSession() as client:
            yield client, server.make_url


async def stream_file(client, url, path: Path, chunk_s: float = 0.1, rate: int | None = None, headers=None,
                      **config) -> tuple[list[dict], int]:
    """Stream a file's 16-bit PCM in ``chunk_s`` pieces, then {"type": "end"}; the messages and the close code."""
    pcm, sr = sf.read(path, dtype="int16")
    if rate and rate != sr:
        import torchaudio.functional as AF

        pcm = (AF.resample(torch.from_numpy(pcm.astype(np.float32)), sr, rate).round().clamp(-32768, 32767)
               .numpy().astype(np.int16))
        sr = rate
    data = pcm.astype("<i2").tobytes()
    step = 2 * int(chunk_s * sr)
    async with client.ws_connect(url("/stream"), headers=headers) as ws:
        if rate or config:
            await ws.send_str(json.dumps({**({"sample_rate": rate} if rate else {}), **config}))
        for i in range(0, len(data), step):
            await ws.send_bytes(data[i:i + step])
        await ws.send_str(json.dumps({"type": "end"}))
        messages = [json.loads(m.data) async for m in ws if m.type == aiohttp.WSMsgType.TEXT]
    return messages, ws.close_code


def offline(model, path) -> dict:
    return crnn.transcribe(str(path), model=model)[0].to_json()


@pytest.mark.slow
def test_health_model_description_and_token(model):
    async def check():
        async with serving(model, token="s3cret") as (client, url):
            r = await client.get(url("/health"))
            assert r.status == 200 and await r.json() == {"status": "ok"}  # open without the token
            r = await client.get(url("/model"))
            assert r.status == 401 and "Bearer" in (await r.json())["error"]
            r = await client.get(url("/model"), headers={"Authorization": "Bearer wrong"})
            assert r.status == 401 and (await r.json())["error"] == "wrong token"
            r = await client.post(url("/recognize"), data=b"x")
            assert r.status == 401
            r = await client.get(url("/stream"))
            assert r.status == 401
            auth = {"Authorization": "Bearer s3cret"}
            r = await client.get(url("/model"), headers=auth)
            info = await r.json()
            assert r.status == 200 and info["modality"] == "audio" and info["sample_rate"] == SR
            assert info["vocabulary_size"] == 17 and info["frame_shift"] == pytest.approx(0.04)
            assert info["streaming"] is True and info["stream_format"]["encoding"] == "pcm_s16le"
            assert info["config"]["bidirectional"] is False and ".wav" in info["accepts"]
            r = await client.get(url("/nowhere"), headers=auth)
            assert r.status == 404 and "error" in await r.json()

    asyncio.run(check())


@pytest.mark.slow
def test_recognize_gives_what_decode_json_prints(model, ckpt, wavs):
    cli = run_cli("decode", "--checkpoint", ckpt, wavs["one"], "--json", "--device", "cpu")
    assert cli.returncode == 0, cli.stderr
    expected = json.loads(cli.stdout)
    assert expected["text"] == "147#2"
    expected["path"] = "one.wav"
    data = wavs["one"].read_bytes()

    async def check():
        async with serving(model) as (client, url):
            raw = await client.post(url("/recognize"), data=data, headers={"Content-Type": "audio/wav"})
            assert raw.status == 200
            assert await raw.json() == {**expected, "path": "upload.wav"}  # no name given: named by its type
            named = await client.post(url("/recognize?name=one.wav"), data=data)
            assert await named.json() == expected
            form = aiohttp.FormData()
            form.add_field("file", data, filename="one.wav", content_type="application/octet-stream")
            multi = await client.post(url("/recognize"), data=form)
            assert multi.status == 200 and await multi.json() == expected
            # requests that arrive together are decoded together; the event loop answers meanwhile
            posts = [client.post(url(f"/recognize?name={k}.wav"), data=wavs[k].read_bytes()) for k in ("one", "two") * 3]
            health = asyncio.ensure_future(client.get(url("/health")))
            answers = await asyncio.gather(*posts)
            assert (await health).status == 200
            rows = [await a.json() for a in answers]
            assert [r["text"] for r in rows] == [expected["text"], offline(model, wavs["two"])["text"]] * 3
            assert [r["path"] for r in rows] == ["one.wav", "two.wav"] * 3
            assert [w["word"] for w in rows[0]["words"]] == [w["word"] for w in expected["words"]]

    asyncio.run(check())


@pytest.mark.slow
def test_recognize_refuses_what_it_cannot_take(model, wavs, tmp_path):
    long = tmp_path / "long.wav"
    sf.write(long, np.random.default_rng(0).normal(0, 0.01, 12 * SR), SR, subtype="PCM_16")  # 12 s, 192 kB

    async def check():
        async with serving(model, max_upload_bytes=150_000, max_seconds=5.0) as (client, url):
            async def post(data, path="/recognize", **headers):
                r = await client.post(url(path), data=data, headers=headers)
                body = await r.json()
                assert set(body) == {"error"} and "crnn-serve" not in body["error"], body  # no server path
                return r.status, body["error"]

            status, error = await post(long.read_bytes(), "/recognize?name=long.wav")
            assert status == 413 and "150000 byte limit" in error  # refused from its Content-Length

            async def chunked():  # no Content-Length: refused once the limit is passed
                data = long.read_bytes()
                for i in range(0, len(data), 16384):
                    yield data[i:i + 16384]

            status, error = await post(chunked(), "/recognize?name=long.wav")
            assert status == 413 and "150000 byte limit" in error
            six = tmp_path / "six.wav"
            sf.write(six, np.zeros(6 * SR), SR, subtype="PCM_U8")  # 6 s in 48 kB: under the size, over the time
            status, error = await post(six.read_bytes(), "/recognize?name=six.wav")
            assert status == 413 and error.startswith("six.wav: 6.0 s long, over the 5 s limit")
            status, error = await post(b"just some text\n", "/recognize?name=notes.txt", **{"Content-Type": "text/plain"})
            assert status == 415 and "notes.txt" in error and "text/plain" in error and ".wav" in error
            status, error = await post(b"just some text\n", "/recognize", **{"Content-Type": "application/octet-stream"})
            assert status == 415
            status, error = await post(b"just some text\n" * 20, "/recognize?name=notes.wav")
            assert status == 422 and error.startswith("notes.wav: ")
            status, error = await post(b"", "/recognize?name=empty.wav")
            assert status == 400 and "empty" in error
            form = aiohttp.FormData()
            form.add_field("other", b"1234", filename="a.wav")
            status, error = await post(form)
            assert status == 400 and "'file'" in error
            r = await client.get(url("/recognize"))
            assert r.status == 405 and "error" in await r.json()

    asyncio.run(check())


@pytest.mark.slow
def test_stream_in_100ms_chunks_gives_the_offline_words(model, wavs):
    expected = offline(model, wavs["one"])
    shift = model.frame_shift

    async def check():
        async with serving(model) as (client, url):
            return await stream_file(client, url, wavs["one"], chunk_s=0.1)

    messages, code = asyncio.run(check())
    assert code == 1000
    finals = [m for m in messages if m["type"] == "final"]
    partials = [m["text"] for m in messages if m["type"] == "partial"]
    assert len(finals) == 1 and finals[0]["text"] == expected["text"] == "147#2"
    assert finals[0]["reason"] == "end" and finals[0]["start"] == 0.0
    got, want = finals[0]["words"], expected["words"]
    assert [w["word"] for w in got] == [w["word"] for w in want]
    for g, w in zip(got, want):  # the documented tolerance: one output frame
        assert abs(g["start"] - w["start"]) <= shift + 1e-6 and abs(g["end"] - w["end"]) <= shift + 1e-6
    assert partials and all(expected["text"].startswith(p) for p in partials) and partials[-1] == expected["text"]


@pytest.mark.slow
def test_two_utterances_apart_give_two_finals_on_one_connection(model, wavs):
    whole = offline(model, wavs["two"])

    async def check():
        async with serving(model, endpointing=EndpointRules(trailing_silence=0.6)) as (client, url):
            at_model_rate = await stream_file(client, url, wavs["two"])
            declared = await stream_file(client, url, wavs["two"], rate=16000)  # resampled by the server
            return at_model_rate, declared

    for messages, code in asyncio.run(check()):
        finals = [m for m in messages if m["type"] == "final"]
        assert code == 1000 and [f["text"] for f in finals] == ["3690", "*58"], messages
        assert "".join(f["text"] for f in finals) == whole["text"]
        first, second = finals
        assert first["reason"] == "silence" and second["reason"] == "end"
        assert first["end"] <= second["start"] <= second["words"][0]["start"]
        assert first["words"][0]["start"] == pytest.approx(whole["words"][0]["start"], abs=2 * model.frame_shift)
        assert second["words"][-1]["end"] == pytest.approx(whole["words"][-1]["end"], abs=2 * model.frame_shift)


@pytest.mark.slow
def test_streams_closed_with_a_reason(model, wavs):
    bidirectional = crnn.load_model(BIDIRECTIONAL)

    async def first_error(client, url, *sends):
        async with client.ws_connect(url("/stream")) as ws:
            for s in sends:
                await (ws.send_bytes(s) if isinstance(s, bytes) else ws.send_str(s))
            messages = [json.loads(m.data) async for m in ws if m.type == aiohttp.WSMsgType.TEXT]
        errors = [m for m in messages if m["type"] == "error"]
        assert len(errors) == 1 and messages[-1] is errors[0], messages
        return errors[0]["error"], ws.close_code

    async def check():
        async with serving(bidirectional) as (client, url):
            error, code = await first_error(client, url)
            assert code == 1008 and "cannot stream" in error and "--unidirectional" in error
            r = await client.post(url("/recognize?name=one.wav"), data=wavs["one"].read_bytes())
            assert r.status == 200  # files are fine
        async with serving(model, idle_timeout=0.3, max_seconds=1.0) as (client, url):
            error, code = await first_error(client, url)
            assert code == 1008 and "no message for 0.3 s" in error
            error, code = await first_error(client, url, "not json")
            assert code == 1008 and "JSON" in error
            error, code = await first_error(client, url, b"\0\0" * 100, json.dumps({"sample_rate": 16000}))
            assert code == 1008 and "before the first audio" in error
            error, code = await first_error(client, url, json.dumps({"sample_rate": 16001}))
            assert code == 1008 and "16001" in error
            error, code = await first_error(client, url, json.dumps({"max_utterance": 60}))
            assert code == 1008 and "at most" in error
            error, code = await first_error(client, url, b"\0\0" * (2 * SR))  # 2 s, over --max-seconds 1
            assert code == 1008 and "--max-seconds" in error

    asyncio.run(check())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_command_serves_files_and_streams(model, ckpt, wavs):
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", CRNN_SERVE_TOKEN="t0ken")
    proc = subprocess.Popen([sys.executable, "-m", "crnn", "serve", "-c", str(ckpt), "--port", str(port),
                             "--device", "cpu", "--trailing-silence", "0.6"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        async def check():
            url = lambda path: f"http://127.0.0.1:{port}{path}"  # noqa: E731
            auth = {"Authorization": "Bearer t0ken"}
            async with aiohttp.ClientSession() as client:
                for _ in range(600):  # up to 60 s for the interpreter and the model to load
                    try:
                        async with client.get(url("/health")) as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        assert proc.poll() is None, proc.communicate()
                        await asyncio.sleep(0.1)
                r = await client.post(url("/recognize?name=one.wav"), data=wavs["one"].read_bytes())
                assert r.status == 401
                r = await client.post(url("/recognize?name=one.wav"), data=wavs["one"].read_bytes(), headers=auth)
                assert r.status == 200 and await r.json() == {**offline(model, wavs["one"]), "path": "one.wav"}
                messages, code = await stream_file(client, url, wavs["two"], headers=auth)
                assert code == 1000 and [m["text"] for m in messages if m["type"] == "final"] == ["3690", "*58"]

        asyncio.run(check())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert f"on http://127.0.0.1:{port}" in err and "streaming: yes" in err and "token required" in err
    assert "stopped" in err and "Traceback" not in err
