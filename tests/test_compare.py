"""``crnn compare`` trains each cell on the same data and writes a table and a plot."""
import pytest

from cli_helpers import TINY, run_cli

pytestmark = pytest.mark.slow


def test_compare_two_cells(tmp_path):
    r = run_cli("compare", "--cells", "gru,mingru", "--out", tmp_path, "--train-size", "16", "--val-size", "8",
                "--epochs", "1", "--batch-size", "8", *TINY)
    assert r.returncode == 0, r.stderr
    table = (tmp_path / "compare.md").read_text().splitlines()
    assert table[0].startswith("| cell | parameters")
    rows = {line.split("|")[1].strip(): line for line in table[2:]}
    assert set(rows) == {"gru", "mingru"}
    params = {c: int(rows[c].split("|")[2].strip().replace(",", "")) for c in rows}
    assert params["gru"] != params["mingru"] and min(params.values()) > 0
    png = (tmp_path / "compare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert (tmp_path / "gru" / "best.pt").is_file() and (tmp_path / "mingru" / "best.pt").is_file()


def test_compare_rejects_unknown_cells(tmp_path):
    r = run_cli("compare", "--cells", "gru,nope", "--out", tmp_path)
    assert r.returncode == 2 and "nope" in r.stderr
