"""The package's layering: one package per layer, no import circle, a model built without data code, old
module paths kept, one registry implementation behind every named choice."""
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import crnn
from crnn.registry import Registry, UnknownNameError

ROOT = Path(crnn.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_level_imports(path: Path) -> set[str]:
    """crnn modules imported at module level (not inside functions: those run on first use)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        nodes = [node] + ([n for n in ast.walk(node)] if isinstance(node, (ast.If, ast.Try)) else [])
        for n in nodes:
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("crnn") and n.level == 0:
                found.add(n.module)
                found |= {f"{n.module}.{a.name}" for a in n.names}
            elif isinstance(n, ast.Import):
                found |= {a.name for a in n.names if a.name.startswith("crnn")}
    return found


def test_at_most_eight_top_level_modules_beside_the_packages():
    modules = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(modules) <= 8, modules
    for package in ("model", "cells", "frontends", "decoding", "data", "training", "evaluation", "inference",
                    "deploy", "pretrained", "cli"):
        assert (ROOT / package / "__init__.py").is_file(), package


def test_no_import_circle_between_modules():
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {m: {i for i in module_level_imports(p) if i in files and i != m} for m, p in files.items()}
    # a package's __init__ importing its own submodules is how a package exposes them, not a circle
    for m in graph:
        graph[m] = {i for i in graph[m] if not (files[m].name == "__init__.py" and i.startswith(m + "."))}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(n):] + [n]))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_building_and_loading_a_model_imports_no_reader_or_corpus_layout(tmp_path):
    code = ("import sys, crnn\n"
            "m = crnn.create_model('tiny', vocab_size=5)\n"
            "from crnn.tokenizer import Tokenizer\n"
            "m.tokenizer = Tokenizer(list('abcd'))\n"
            "from crnn.model.checkpoint import save_checkpoint\n"
            f"save_checkpoint({str(tmp_path / 'm.pt')!r}, m)\n"
            f"crnn.load_model({str(tmp_path / 'm.pt')!r})\n"
            "print(sorted(k for k in sys.modules if k.startswith(('crnn.data', 'crnn.inference', 'crnn.training'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("old, new", [
    ("crnn.config", "crnn.model.presets"), ("crnn.encoder", "crnn.model.encoder"),
    ("crnn.checkpoint", "crnn.model.checkpoint"), ("crnn.segment", "crnn.inference.segment"),
    ("crnn.streaming", "crnn.inference.streaming"), ("crnn.outputs", "crnn.inference.outputs"),
    ("crnn.export", "crnn.deploy"), ("crnn.streaming_graph", "crnn.deploy.streaming_graph"),
    ("crnn.onnx_rnn", "crnn.deploy.onnx_rnn"), ("crnn.quantize", "crnn.deploy.int8"),
    ("crnn.metrics", "crnn.evaluation.metrics"), ("crnn.video_metrics", "crnn.evaluation.frame_accuracy"),
    ("crnn.training.evaluate", "crnn.evaluation.evaluate"), ("crnn.compare", "crnn.training.compare"),
    ("crnn.data.augment", "crnn.data.audio.augment"),
])
def test_old_module_paths_are_the_new_modules(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_public_api_is_unchanged():
    for name in ("CRNN", "ModelConfig", "Hypothesis", "create_model", "list_models", "load_model", "get_cell",
                 "list_cells", "register_cell", "StepLayer", "ScanLayer", "list_frontends", "register_frontend",
                 "ctc_greedy", "ctc_beam_search", "transcribe", "FileResult", "TranscriptionError"):
        assert getattr(crnn, name) is not None, name
    from crnn.export import OnnxModel, export_onnx  # the old names of the deploy layer
    from crnn.inference import transcribe_files
    assert callable(export_onnx) and callable(transcribe_files) and isinstance(OnnxModel, type)


def test_every_registry_is_the_one_implementation():
    from crnn.cells.registry import CELLS
    from crnn.data.manifest import LAYOUTS
    from crnn.data.media import READERS
    from crnn.data.tasks import TASKS
    from crnn.frontends import FRONTENDS
    from crnn.pretrained import LANGUAGE_MODELS, MODELS

    for registry in (CELLS, FRONTENDS, READERS, LAYOUTS, TASKS, MODELS, LANGUAGE_MODELS):
        assert isinstance(registry, Registry)
    assert CELLS.names() == crnn.list_cells() and "gru" in CELLS
    assert {"audio", "video", "image", "features"} <= set(READERS.names())
    assert {"dtmf", "actions", "textlines"} <= set(TASKS.names())
    assert TASKS.get("actions").preset == "video_motion_tiny" and TASKS.get("textlines").modality == "image"


def test_an_unknown_name_gets_close_matches_and_the_list():
    reg = Registry("widget")
    reg.register("gru", 1, aliases=("cudnn_gru",))
    reg.register("lstm", 2)
    assert reg.get("cudnn_gru") == 1 and reg.names() == ["gru", "lstm"]
    with pytest.raises(UnknownNameError) as e:
        reg.get("grux")
    assert "did you mean 'gru'" in str(e.value) and "registered widgets: gru, lstm" in str(e.value)
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    with pytest.raises(KeyError, match="unknown cell 'gruu'; did you mean 'gru'"):
        crnn.get_cell("gruu")
    reg.unregister("gru")
    assert "cudnn_gru" not in reg and reg.names() == ["lstm"]


def test_builtins_load_on_first_use_only():
    loaded = []
    reg = Registry("thing", builtins=lambda: loaded.append(reg.register("a", 1)))
    assert loaded == []
    assert reg.get("a") == 1 and len(loaded) == 1
    reg.names()
    assert len(loaded) == 1
