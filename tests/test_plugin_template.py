"""The plugin template works as a plugin author will use it: copied under a new name,
installed as a real distribution, found through its entry point, and its own tests pass.

The copy is installed with ``pip install --no-deps --target`` into a directory of its own and
used through ``PYTHONPATH`` in subprocesses, so this environment is never changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NEW_PLUGIN = ROOT / "plugins" / "new_plugin.py"
NAME = "zebra"

DISCOVER = (
    "import json; from acctdomain.plugins import PluginHost; "
    "host = PluginHost(); "
    "print(json.dumps({i.name: [i.source, i.status, i.version] for i in host.status()}))"
)


def run(*command: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_copy_of_the_template_installs_is_discovered_and_passes_its_tests(
    tmp_path: Path,
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "ACCTDOMAIN_PLUGINS", "ACCTDOMAIN_PLUGINS_BLOCK"}
    }
    plugin = tmp_path / f"acctdomain-{NAME}"
    made = run(sys.executable, NEW_PLUGIN, NAME, plugin, cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr

    # Renamed in paths and contents alike.
    assert (plugin / "src" / f"acctdomain_{NAME}" / "__init__.py").is_file()
    assert (plugin / "tests" / f"test_{NAME}.py").is_file()
    for path in plugin.rglob("*"):
        assert "myplugin" not in str(path.relative_to(plugin))
        if path.is_file():
            assert "myplugin" not in path.read_text(encoding="utf-8"), path

    site = tmp_path / "site"
    installed = run(
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--disable-pip-version-check",
        "--target",
        site,
        plugin,
        cwd=tmp_path,
        env=env,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    (entry_points,) = site.glob(f"acctdomain_{NAME}-*.dist-info/entry_points.txt")
    assert f"{NAME} = acctdomain_{NAME}" in entry_points.read_text()

    with_plugin = {**env, "PYTHONPATH": str(site)}
    discovered = run(sys.executable, "-c", DISCOVER, cwd=tmp_path, env=with_plugin)
    assert discovered.returncode == 0, discovered.stderr
    assert json.loads(discovered.stdout)[NAME] == ["entry_point", "loaded", "0.1.0"]

    tested = run(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=plugin, env=with_plugin
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "5 passed" in tested.stdout


def test_a_plugin_name_that_cannot_serve_everywhere_is_refused(tmp_path: Path) -> None:
    for name in ("Zebra", "my_plugin", "myplugin", "9lives"):
        refused = run(sys.executable, NEW_PLUGIN, name, tmp_path / name, cwd=tmp_path, env={})
        assert refused.returncode == 2, name
        assert refused.stderr.startswith("error:"), refused.stderr
        assert not (tmp_path / name).exists()
