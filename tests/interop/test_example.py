"""examples/saelens_eval.py, the SAELens user's path, runs end to end at its CI size."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("sae_lens", reason="sae-lens is not installed (pip install 'pft[interop]')")
pytest.importorskip("transformer_lens", reason="transformer-lens is not installed (pip install 'pft[interop]')")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_saelens_example_runs_and_agrees_with_run_evals(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "saelens_eval.py"), "--small", "--out",
                           str(tmp_path)], capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the script exits 0 only when every SAELens metric agrees to 1e-4 relative
    assert "largest relative difference" in proc.stdout and "$ pft eval --model" in proc.stdout
    assert (tmp_path / "model" / "model.safetensors").exists() and (tmp_path / "sae" / "cfg.json").exists()
