"""What build.spec writes beside the bundle's program: the Windows version resource (from
the package's version), the Linux desktop entry and the Linux install script. Plain
Python, so the tests check it on any platform."""
from __future__ import annotations

import re

NAME = "IFLLM Lab"
DESCRIPTION = "Implicit feedback on LLM answers: webcam gaze, mouse, replay, reward models"
COMPANY = "IFLLM Lab"


def version_tuple(version: str) -> tuple[int, int, int, int]:
    """"1.2.3rc1" -> (1, 2, 3, 0), the release numbers only: Windows wants four."""
    m = re.match(r"\d+(\.\d+)*", version.strip())
    nums = [int(n) for n in m.group(0).split(".")] if m else []
    return tuple((nums + [0, 0, 0, 0])[:4])


def windows_version_info(version: str) -> str:
    """The text of a PyInstaller version resource file (``EXE(version=...)``) for ``version``."""
    v = version_tuple(version)
    strings = {
        "CompanyName": COMPANY,
        "FileDescription": DESCRIPTION,
        "FileVersion": version,
        "InternalName": "ifllm-lab",
        "LegalCopyright": "IFLLM Lab contributors; third-party notices in _internal/licenses",
        "OriginalFilename": "ifllm-lab.exe",
        "ProductName": NAME,
        "ProductVersion": version,
    }
    table = ",\n".join(f"        StringStruct({k!r}, {val!r})" for k, val in strings.items())
    return f"""VSVersionInfo(
  ffi=FixedFileInfo(filevers={v}, prodvers={v}, mask=0x3f, flags=0x0, OS=0x40004, fileType=0x1,
                    subtype=0x0, date=(0, 0)),
  kids=[
    StringFileInfo([StringTable('040904B0', [
{table}
    ])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""


def desktop_entry(exec_path: str, icon_path: str) -> str:
    """A freedesktop.org launcher for the workbench (the participant app is started from it)."""
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        f"Name={NAME}\n"
        f"Comment={DESCRIPTION}\n"
        f"Exec={exec_path} lab\n"
        f"Icon={icon_path}\n"
        "Terminal=false\n"
        "Categories=Science;Education;\n"
        "StartupWMClass=ifllm-lab\n"
    )


INSTALL_SH = r'''#!/bin/sh
# Install this IFLLM Lab bundle for the current user (or, run as root, for everyone):
#   ./install.sh             copies the bundle, links the ifllm-lab command, adds a menu entry
#   ./install.sh --user      for the current user even when run as root
#   ./install.sh --remove    takes them away again (session data is never touched)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
USER_ONLY=0
for arg in "$@"; do [ "$arg" = "--user" ] && USER_ONLY=1; done
if [ "$(id -u)" = 0 ] && [ $USER_ONLY = 0 ]; then
  DEST=/opt/ifllm-lab; BIN=/usr/local/bin; APPS=/usr/share/applications
else
  DEST="$HOME/.local/opt/ifllm-lab"; BIN="$HOME/.local/bin"; APPS="$HOME/.local/share/applications"
fi
REMOVE=0
for arg in "$@"; do [ "$arg" = "--remove" ] && REMOVE=1; done
if [ $REMOVE = 1 ]; then
  rm -rf "$DEST" "$BIN/ifllm-lab" "$APPS/ifllm-lab.desktop"
  echo "IFLLM Lab removed from $DEST (session data folders are left as they are)"
  exit 0
fi
if [ "$HERE" != "$DEST" ]; then
  rm -rf "$DEST.new"
  mkdir -p "$(dirname "$DEST")"
  cp -a "$HERE" "$DEST.new"
  rm -rf "$DEST"
  mv "$DEST.new" "$DEST"
fi
mkdir -p "$BIN" "$APPS"
ln -sf "$DEST/ifllm-lab" "$BIN/ifllm-lab"
sed -e "s|@EXEC@|$DEST/ifllm-lab|" -e "s|@ICON@|$DEST/_internal/ifllm_lab/data/icons/ifllm-lab.png|" \
  "$DEST/ifllm-lab.desktop.in" > "$APPS/ifllm-lab.desktop"
echo "IFLLM Lab installed in $DEST; command: $BIN/ifllm-lab; menu entry: $APPS/ifllm-lab.desktop"
"$DEST/ifllm-lab" --version
'''
