"""Video frontends: length arithmetic against real outputs, padding invariance, gradients, options."""
import pytest
import torch

import crnn
from crnn.frontends import build_frontend, list_frontends

# (name, args, per-frame shape): torchvision backbones on tiny frames to stay fast.
CASES = [
    ("video", {}, (3, 32, 32)),
    ("video", {"temporal_pools": 1, "cnn_grid": 1}, (3, 32, 32)),
    ("video", {"backbone": "resnet18", "temporal_channels": 32}, (3, 16, 16)),
    ("video_motion", {}, (3, 32, 32)),
    ("video_motion", {"fusion": "late", "cnn_grid": 2}, (3, 32, 32)),
    ("video_motion", {"streams": "motion", "temporal_pools": 1}, (3, 32, 32)),
    ("video3d", {}, (3, 16, 16)),
    ("video3d", {"time_subsample": 1}, (3, 16, 16)),
    ("video3d", {"backbone": "r3d_18", "time_subsample": 2}, (3, 16, 16)),
    ("video3d", {"backbone": "r2plus1d_18"}, (3, 16, 16)),
    ("features", {"input_dim": 6, "temporal_pools": 2, "temporal_channels": 8}, (6,)),
    ("features", {"input_dim": 6}, (6,)),
    ("video_motion", {"cnn_stem": "stride4"}, (3, 32, 32)),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in a.items()) or 'default'}" for n, a, _ in CASES]


pytestmark = pytest.mark.usefixtures("one_thread")


def make_input(shape, B, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    if len(shape) == 1:
        return torch.randn(B, T, *shape, generator=g)
    return torch.randint(0, 256, (B, T, *shape), generator=g, dtype=torch.uint8)


def test_registered():
    assert {"video", "video_motion", "video3d", "features"} <= set(list_frontends())


def test_motion_stream_reads_what_changes_not_the_look():
    """Differences only: a clip whose frames are all the same frame looks like any other still clip, and a
    colour shift that leaves the motion alone changes nothing; with frames as well, the look counts."""
    motion = build_frontend("video_motion", {"streams": "motion"}).eval()
    both = build_frontend("video_motion", {}).eval()
    g = torch.Generator().manual_seed(1)
    still_a = torch.rand(1, 1, 3, 32, 32, generator=g).expand(1, 8, 3, 32, 32)
    still_b = torch.rand(1, 1, 3, 32, 32, generator=g).expand(1, 8, 3, 32, 32)
    moving = torch.rand(1, 8, 3, 32, 32, generator=g) * 0.5
    lengths = torch.tensor([8])
    with torch.no_grad():
        torch.testing.assert_close(motion(still_a, lengths)[0], motion(still_b, lengths)[0])
        torch.testing.assert_close(motion(moving, lengths)[0], motion(moving + 0.3, lengths)[0], atol=1e-5, rtol=1e-5)
        assert (motion(moving, lengths)[0] - motion(still_a, lengths)[0]).abs().max() > 1e-3
        assert (both(still_a, lengths)[0] - both(still_b, lengths)[0]).abs().max() > 1e-3


@pytest.mark.parametrize("streams", ["both", "motion"])
def test_motion_planes_of_valid_frames_are_frame_and_difference(streams):
    """The training path gathers valid frames before normalising: each clip's planes are its normalised
    frames and gain x their difference from the frame before, zero at the clip's first frame (never the
    previous clip's last frame), in the channels-last layout the CNN reads."""
    from crnn.frontends.video import _normalize_pixels

    front = build_frontend("video_motion", {"streams": streams, "motion_gain": 3.0})
    x = make_input((3, 8, 8), B=3, T=5)
    lengths = torch.tensor([5, 2, 3])
    mask = torch.arange(5)[None] < lengths[:, None]
    planes = front._valid_planes(x, mask)
    assert planes.shape == (10, 6 if streams == "both" else 3, 8, 8)
    assert planes.is_contiguous(memory_format=torch.channels_last)
    frames = _normalize_pixels(x, front.mean, front.std)
    expected = []
    for b, n in enumerate(lengths.tolist()):
        for t in range(n):
            diff = 3.0 * (frames[b, t] - frames[b, t - 1]) if t else torch.zeros_like(frames[b, t])
            expected.append(torch.cat([frames[b, t], diff]) if streams == "both" else diff)
    torch.testing.assert_close(planes, torch.stack(expected), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name,args,shape", CASES, ids=IDS)
def test_lengths_sweep_and_padding(name, args, shape, device):
    fe = build_frontend(name, args).eval().to(device)
    heavy = args.get("backbone") in ("resnet18", "r3d_18", "r2plus1d_18")
    T = 7 if heavy else 11
    x = make_input(shape, 1, T).to(device)
    with torch.no_grad():
        # Every length 1..T alone: the real output length equals output_lengths.
        singles = []
        for n in range(1, T + 1):
            y, ol = fe(x[:, :n], torch.tensor([n], device=device))
            assert int(ol[0]) == int(fe.output_lengths(torch.tensor([n]))[0]), n
            if ol[0] == 0:  # too short for one output frame: whatever is returned is padding
                assert y.abs().sum() == 0
            else:
                assert y.shape[1] == int(ol[0]), n
            assert y.shape[2] == fe.output_size
            singles.append(y[0, : int(ol[0])])
        # The same clips padded into one batch give the same valid outputs and zero padding.
        lengths = torch.tensor([T, 6, 4, 1], device=device)
        batch = x.expand(4, *x.shape[1:]).clone()
        for i, n in enumerate(lengths.tolist()):
            batch[i, n:] = 0 if batch.dtype == torch.uint8 else 123.0  # garbage in the padding
        y, ol = fe(batch, lengths)
    assert torch.equal(ol, fe.output_lengths(lengths))
    for i, n in enumerate(lengths.tolist()):
        k = int(ol[i])
        torch.testing.assert_close(y[i, :k], singles[n - 1], atol=1e-4, rtol=1e-4)
        assert y[i, k:].abs().max().item() == 0 if k < y.size(1) else True
    assert fe.frame_shift == pytest.approx(fe.time_stride / fe.cfg.fps)


GRAD = [0, 3, 4, 6, 10, 12]  # video, video_motion (early, late), video3d, features, video_motion (stride-4 stem)


@pytest.mark.parametrize("name,args,shape", [CASES[i] for i in GRAD], ids=[IDS[i] for i in GRAD])
def test_every_parameter_gets_a_gradient(name, args, shape, device):
    fe = build_frontend(name, args).train().to(device)
    x = make_input(shape, 2, 9).to(device)
    y, ol = fe(x, torch.tensor([9, 6], device=device))
    (y ** 2).sum().backward()
    missing = [n for n, p in fe.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_uint8_and_float_pixels_agree():
    fe = build_frontend("video", {}).eval()
    x = make_input((3, 32, 32), 2, 8)
    lengths = torch.tensor([8, 5])
    with torch.no_grad():
        a, _ = fe(x, lengths)
        b, _ = fe(x.float() / 255, lengths)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_resnet18_weights_from_local_file(tmp_path):
    from torchvision.models import resnet18

    ref = resnet18(weights=None)
    torch.save(ref.state_dict(), tmp_path / "r18.pt")
    fe = build_frontend("video", {"backbone": "resnet18", "backbone_weights": str(tmp_path / "r18.pt")})
    torch.testing.assert_close(fe.cnn.conv1.weight, ref.conv1.weight)
    torch.testing.assert_close(fe.cnn.layer4[1].bn2.running_var, ref.layer4[1].bn2.running_var)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        build_frontend("video", {"backbone": "resnet18", "backbone_weights": str(tmp_path / "nope.pt")})
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pt")
    with pytest.raises(RuntimeError, match="wrong.pt"):
        build_frontend("video", {"backbone": "resnet18", "backbone_weights": str(tmp_path / "wrong.pt")})


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="n_mels"):
        build_frontend("video", {"n_mels": 40})
    with pytest.raises(ValueError, match="backbone"):
        build_frontend("video3d", {"backbone": "vgg"})
    with pytest.raises(ValueError, match="streams"):
        build_frontend("video_motion", {"streams": "optical_flow"})
    with pytest.raises(ValueError, match="fusion"):
        build_frontend("video_motion", {"fusion": "middle"})
    with pytest.raises(ValueError, match="cnn_stem"):
        build_frontend("video", {"cnn_stem": "stride8"})
    fe = build_frontend("video", {})
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        fe(torch.zeros(2, 3, 32, 32), torch.tensor([3, 3]))


@pytest.mark.parametrize("preset,shape,out,shift", [("video_tiny", (3, 64, 64), [12, 8], 0.2),  # floor(n / 2)
                                                    ("video_motion_tiny", (3, 64, 64), [12, 8], 0.2),
                                                    ("video3d_tiny", (3, 64, 64), [6, 5], 0.4)])  # strided: ceil(n / 4)
def test_presets_build_models(preset, shape, out, shift):
    model = crnn.create_model(preset, vocab_size=10).eval()
    x = make_input(shape, 2, 24)
    with torch.no_grad():
        lp, ol = model(x, torch.tensor([24, 17]))
    assert lp.shape == (2, out[0], 10) and ol.tolist() == out
    assert model.frame_shift == pytest.approx(shift)
    feats = crnn.create_model("features_tiny", vocab_size=5, input_dim=12)
    lp, ol = feats(torch.randn(2, 40, 12), torch.tensor([40, 30]))
    assert lp.shape == (2, 10, 5) and ol.tolist() == [10, 7]


@pytest.mark.parametrize("name,args,shape", CASES, ids=IDS)
def test_video_frontends_on_the_device_match_the_cpu(name, args, shape, device):
    fe = build_frontend(name, args).eval()
    x = make_input(shape, 2, 9)
    lengths = torch.tensor([9, 6])
    with torch.no_grad():
        ref, ref_lengths = fe(x, lengths)
        got, got_lengths = fe.to(device)(x.to(device), lengths.to(device))
    assert got.device.type == torch.device(device).type
    assert torch.equal(got_lengths.cpu(), ref_lengths)
    torch.testing.assert_close(got.cpu(), ref, atol=1e-3, rtol=1e-3)


def test_video_tiny_model_on_the_device_matches_the_cpu(device):
    model = crnn.create_model("video_tiny", vocab_size=10).eval()
    x = make_input((3, 64, 64), 2, 24)
    lengths = torch.tensor([24, 17])
    with torch.no_grad():
        ref, ref_lengths = model(x, lengths)
        got, got_lengths = model.to(device)(x.to(device), lengths.to(device))
        model.to(memory_format=torch.channels_last)  # the layout the GPU benchmarks train in
        cl, _ = model(x.to(device), lengths.to(device))
    torch.testing.assert_close(got.cpu(), ref, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(cl.cpu(), ref, atol=1e-3, rtol=1e-3)
    assert got_lengths.tolist() == ref_lengths.tolist() == [12, 8]


def test_video_model_as_a_backbone(tmp_path):
    """A trained-style round trip: save, load, forward_features on clips, a new head on top."""
    from crnn.data.builtin.actions import actions_tokenizer
    from crnn.checkpoint import save_checkpoint

    tok = actions_tokenizer()
    model = crnn.create_model("video_tiny", vocab_size=len(tok), height=32, width=32, hidden_size=24)
    model.tokenizer = tok
    model = crnn.load_model(save_checkpoint(tmp_path / "v.pt", model, {}))
    clips = make_input((3, 32, 32), B=2, T=24)
    lengths = torch.tensor([24, 13])
    with torch.no_grad():
        feats, n = model.forward_features(clips, lengths)
    assert feats.shape == (2, 12, model.num_features) and n.tolist() == model.output_lengths(lengths).tolist()
    assert feats[1, int(n[1]):].abs().max() == 0  # frames past each length are zero
    head = torch.nn.Linear(model.num_features, 3)  # the user's own task on top of the features
    feats, n = model.forward_features(clips, lengths)
    head(feats).sum().backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert model.frame_shift == pytest.approx(0.2)  # 10 fps, x2 temporal subsampling
