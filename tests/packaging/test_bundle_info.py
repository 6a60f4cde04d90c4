"""What build.spec writes beside the bundle's program (packaging/bundle_info.py): the Windows
version resource from the package version, the desktop entry, and the Linux install script,
run for real on a small stand-in bundle (a shell program in place of the frozen one)."""
from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from ifllm_lab import __version__

from tests.support.repo import REPO

sys.path.insert(0, str(REPO / "packaging"))
import bundle_info  # noqa: E402


def test_windows_version_resource_carries_the_package_version():
    assert bundle_info.version_tuple("1.2.3rc1") == (1, 2, 3, 0)
    assert bundle_info.version_tuple("2.0.1.dev3+g1") == (2, 0, 1, 0)
    text = bundle_info.windows_version_info(__version__)
    tree = ast.parse(text, mode="eval")  # PyInstaller reads the file as this expression
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert calls == {"VSVersionInfo", "FixedFileInfo", "StringFileInfo", "StringTable", "StringStruct",
                     "VarFileInfo", "VarStruct"}
    strings = {n.args[0].value: n.args[1].value for n in ast.walk(tree)
               if isinstance(n, ast.Call) and n.func.id == "StringStruct"}
    assert strings["ProductVersion"] == strings["FileVersion"] == __version__
    assert strings["ProductName"] == "IFLLM Lab" and strings["OriginalFilename"] == "ifllm-lab.exe"
    ffi = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.func.id == "FixedFileInfo")
    filevers = next(k.value for k in ffi.keywords if k.arg == "filevers")
    assert ast.literal_eval(filevers) == bundle_info.version_tuple(__version__)


@pytest.mark.skipif(sys.platform == "win32", reason="the Linux install script")
def test_the_install_script_installs_and_removes_a_bundle_for_the_user(tmp_path):
    bundle = tmp_path / "dist" / "ifllm-lab"
    (bundle / "_internal" / "ifllm_lab" / "data" / "icons").mkdir(parents=True)
    (bundle / "_internal" / "ifllm_lab" / "data" / "icons" / "ifllm-lab.png").write_bytes(b"png")
    prog = bundle / "ifllm-lab"
    prog.write_text("#!/bin/sh\necho \"ifllm-lab 9.9 ($0 $*)\"\n")
    prog.chmod(0o755)
    (bundle / "install.sh").write_text(bundle_info.INSTALL_SH)
    (bundle / "ifllm-lab.desktop.in").write_text(bundle_info.desktop_entry("@EXEC@", "@ICON@"))
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["sh", str(bundle / "install.sh"), "--user"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    dest = home / ".local" / "opt" / "ifllm-lab"
    link = home / ".local" / "bin" / "ifllm-lab"
    entry = home / ".local" / "share" / "applications" / "ifllm-lab.desktop"
    assert (dest / "ifllm-lab").is_file() and os.path.realpath(link) == str(dest / "ifllm-lab")
    text = entry.read_text()
    assert f"Exec={dest}/ifllm-lab lab\n" in text
    assert f"Icon={dest}/_internal/ifllm_lab/data/icons/ifllm-lab.png\n" in text and "@" not in text
    assert "ifllm-lab 9.9" in out.stdout  # the installed program ran
    # installing again (an update) replaces the copy; removing leaves nothing behind
    assert subprocess.run(["sh", str(bundle / "install.sh"), "--user"], env=env).returncode == 0
    assert subprocess.run(["sh", str(dest / "install.sh"), "--user", "--remove"], env=env).returncode == 0
    assert not dest.exists() and not os.path.lexists(link) and not entry.exists()
    assert bundle.is_dir()  # the unpacked bundle itself stays
