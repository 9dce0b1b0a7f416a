"""The README's Python API example runs as written, and `import mixnas` stays light."""
import re
import subprocess
import sys
from pathlib import Path

import mixnas

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    code = _example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "searched-mixed" in out and "embed_dim" in out
    assert (tmp_path / "runs/api-demo/report.md").is_file()
    assert (tmp_path / "runs/api-demo/found/model.pt").is_file()


def test_every_public_name_resolves_and_has_a_docstring():
    for name in mixnas.__all__:
        obj = getattr(mixnas, name)
        assert obj.__doc__, f"mixnas.{name} has no docstring"


def test_import_mixnas_does_not_import_torch():
    code = "import sys, mixnas; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
