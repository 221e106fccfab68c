"""The README runs as written: its Python blocks in order in one fresh interpreter, its
``research/train_export.py`` command as shown, and its plots display in a notebook."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
# alert services the README's blocks would reach if their variables were set
ALERT_VARIABLES = ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "DISCORD_WEBHOOK",
                   "ALERT_WEBHOOK_URL")

# Runs each block with its README line numbers (so a traceback points into README.md),
# stops at the first failure and names the block.
RUNNER = textwrap.dedent("""
    import json, sys, traceback
    blocks = json.loads(sys.stdin.read())
    namespace = {"__name__": "__main__"}
    for n, (line, source) in enumerate(blocks, 1):
        code = compile("\\n" * (line - 1) + source, "README.md", "exec")
        try:
            exec(code, namespace)
        except BaseException:
            print(f"README python block {n} (line {line}) failed:", file=sys.stderr)
            traceback.print_exc()
            sys.exit(1)
        print(f"block {n} ok", flush=True)
""")


def fenced_blocks(language: str) -> list[tuple[int, str]]:
    """(first code line, code) of every fenced block in that language, in order."""
    text = README.read_text()
    return [(text.count("\n", 0, m.start(2)) + 1, m.group(2)) for m in FENCE.finditer(text)
            if m.group(1) == language]


def test_every_fence_is_closed_and_labelled():
    text = README.read_text()
    fences = re.findall(r"^```(\w*)[ \t]*$", text, re.MULTILINE)
    assert len(fences) % 2 == 0
    openings = fences[::2]
    assert all(openings), "a code block without a language would not be checked"
    assert openings.count("python") == len(fenced_blocks("python")) >= 8


@pytest.mark.slow
def test_readme_python_blocks_run_in_order(tmp_path):
    blocks = fenced_blocks("python")
    env = {k: v for k, v in os.environ.items() if k not in ALERT_VARIABLES}
    env["MPLBACKEND"] = "Agg"
    res = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(blocks),
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        pytest.fail(res.stderr[-6000:], pytrace=False)
    assert res.stdout.splitlines()[-1] == f"block {len(blocks)} ok"
    # what the blocks wrote where the README says
    assert (tmp_path / "model.atlb").is_file() and (tmp_path / "data" / "lab.duckdb").is_file()


@pytest.fixture(scope="module")
def hourly():
    bars = atl.data.load_sample(["AAA", "BBB"])
    return atl.data.resample(bars, "1h").groupby("symbol").head(700).reset_index(drop=True)


@pytest.mark.slow
def test_train_without_align_says_to_call_align(hourly):
    X = atl.features.technical(hourly)
    y = atl.models.labels(hourly, horizon=12, threshold=0.002)
    assert len(y) == len(X) - 2 * 12  # labels stop `horizon` bars before each symbol's end
    with pytest.raises(DataError, match=re.escape("atl.models.align(features, labels)")):
        atl.models.train(X, y, LogisticRegression(), progress=False)
    # same length, other rows: refused too, naming the first row that differs
    Xa, ya = atl.models.align(X, y)
    shuffled = ya.sample(frac=1.0, random_state=0).reset_index(drop=True)
    with pytest.raises(DataError, match=r"row 0 of X .* atl\.models\.align"):
        atl.models.train(Xa, shuffled, LogisticRegression(), progress=False)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    bundle = atl.models.train(Xa, ya, model, n_splits=2, progress=False)
    assert len(bundle.metrics["folds"]) == 2


@pytest.mark.slow
def test_train_export_runs_as_the_readme_shows(tmp_path):
    (command,) = [line for _, block in fenced_blocks("bash") for line in block.splitlines()
                  if "train_export.py" in line]
    argv = shlex.split(command)
    script = ROOT / argv[0]
    assert argv[0] == "research/train_export.py" and os.access(script, os.X_OK)
    assert script.read_text().startswith("#!/usr/bin/env python3\n")
    mode = subprocess.run(["git", "ls-files", "-s", argv[0]], cwd=ROOT, capture_output=True,
                          text=True).stdout.split()[0]
    assert mode == "100755"  # executable in the repository, not only in this checkout
    # `source .venv/bin/activate` puts the environment's python first on PATH
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}"
                                f"{os.environ.get('PATH', '')}")
    helped = subprocess.run([argv[0], "--help"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "--config" in helped.stdout and "walk-forward" in helped.stdout
    res = subprocess.run([*argv, "--out", str(tmp_path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = tmp_path.iterdir()
    assert "## Model: purged walk-forward validation" in (run / "report.md").read_text()
    assert atl.models.load_bundle(run / "model.atlb").label_spec["horizon"] == 4


@pytest.mark.slow
def test_plots_display_in_a_notebook_by_themselves(monkeypatch):
    import nbformat  # the notebook runners load only for this test
    from nbclient import NotebookClient

    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel picks Jupyter's default
    setup = textwrap.dedent("""
        import alphatrade_lab as atl
        close = atl.data.to_wide(atl.data.resample(atl.data.load_sample(["AAA", "BBB"]),
                                                   "1h"), "close")
        fast, slow = close.rolling(24).mean(), close.rolling(96).mean()
        pf = atl.backtest.from_signals(close, atl.signals.crossed_above(fast, slow),
                                       atl.signals.crossed_below(fast, slow))
        res = atl.backtest.sweep_ma_cross(close, fast=range(2, 8), slow=range(8, 14),
                                          progress=False)
        feats = atl.features.technical(atl.data.load_sample(["AAA"]))
        drift = atl.monitoring.rolling_drift(feats[["timestamp", "ret_1"]], reference="60D",
                                             methods=["psi"])
    """)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in (
        setup, 'pf.plot("AAA")', 'atl.backtest.heatmap(res, "sharpe")',
        'atl.data.plot_bars(atl.data.load_sample(["AAA"]))',
        'atl.monitoring.plot_rolling_drift(drift)')])
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    for cell in nb.cells[1:]:
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, (cell.source, [o.get("data", {}).keys() for o in cell.outputs])
        png = base64.b64decode(images[0]["data"]["image/png"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
