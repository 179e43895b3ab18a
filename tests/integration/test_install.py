"""systemd/install.sh in a throwaway root (DESTDIR, no systemctl, no user): install, upgrade with a backup and the
previous release kept, rollback, uninstall that keeps the data, purge. And its dry run, which touches nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "systemd" / "install.sh"


def _install(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DESTDIR": str(root),
        "SKIP_SYSTEMD": "1",
        "SKIP_USER": "1",
        "PYTHON": Path(sys.base_prefix, "bin", "python3").as_posix(),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), *argv], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def test_the_dry_run_prints_what_it_would_do_and_touches_nothing(tmp_path: Path) -> None:
    done = _install(tmp_path / "root", "--dry-run", "--source", str(REPO))
    assert done.returncode == 0, done.stderr
    assert "+ " in done.stdout
    assert "-m venv" in done.stdout
    assert "pip install --quiet " + str(REPO) in done.stdout
    assert not (tmp_path / "root").exists()


@pytest.mark.timeout(900)  # two virtualenvs built from PyPI wheels: minutes on a loaded machine, not seconds
def test_install_upgrade_rollback_and_uninstall(tmp_path: Path) -> None:
    root = tmp_path / "root"
    opt, etc, state = root / "opt" / "meterd", root / "etc" / "meterd", root / "var" / "lib" / "meterd"
    first = _install(root, "--source", str(REPO))
    assert first.returncode == 0, first.stderr
    config = etc / "meterd.toml"
    assert config.stat().st_mode & 0o777 == 0o640
    assert f'state_dir = "{state}"' in config.read_text()
    assert (state / "meterd.db").is_file()  # migrated by the install
    assert (root / "etc" / "systemd" / "system" / "meterd.service").is_file()
    release = (opt / "venv").resolve()
    done = subprocess.run(
        [opt / "venv" / "bin" / "meterd", "config", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    config.write_text(config.read_text().replace('site = "', 'site = "edited-', 1))  # the operator's edit
    second = _install(root, "upgrade", "--source", str(REPO))
    assert second.returncode == 0, second.stderr
    assert 'site = "edited-' in config.read_text()  # an existing configuration is kept
    assert (opt / "previous").resolve() == release
    assert (opt / "venv").resolve() != release
    assert list((state / "backups").glob("meterd-edited-*.db"))  # a backup before the schema step

    back = _install(root, "rollback")
    assert back.returncode == 0, back.stderr
    assert (opt / "venv").resolve() == release

    kept = _install(root, "uninstall")
    assert kept.returncode == 0, kept.stderr
    assert not opt.exists()
    assert (state / "meterd.db").is_file()
    assert config.is_file()
    purged = _install(root, "uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not state.exists()
    assert not etc.exists()


def test_a_release_that_fails_to_build_leaves_nothing_behind(tmp_path: Path) -> None:
    broken = tmp_path / "broken-checkout"
    broken.mkdir()
    (broken / "pyproject.toml").write_text("[project]\nname = \n")  # pip refuses it
    root = tmp_path / "root"
    done = _install(root, "--source", str(broken))
    assert done.returncode != 0
    assert "pip could not install meterd from" in done.stderr
    assert "the running version is untouched" in done.stderr
    assert list((root / "opt" / "meterd" / "releases").iterdir()) == []
    assert not (root / "opt" / "meterd" / "venv").exists()
