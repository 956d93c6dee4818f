"""The README's module snippet runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_module_snippet_runs():
    text = README.read_text()
    snippet = re.search(r"## Using the modules\n\n```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102
    assert set(namespace["terms"]) == {"loss_mask", "loss_dice", "loss_tmc", "loss_bound"}
    assert namespace["loss"].isfinite()
