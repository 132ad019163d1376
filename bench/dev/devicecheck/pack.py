"""Stage `pack`: at most 8 files come back from the device machine, and nothing may be lost.

    python -m zhisuan.bench.dev.devicecheck.pack --out OUT --work WORK

1. Whatever sits in OUT besides the files of files.KEPT (a stray file, a folder) moves into
   WORK/out-extra/: it would count against the 8, or lie too deep to come back.
2. WORK (every stage's log, nvidia-smi -q, pip list, build.json, validate's report, ...) and the
   full combined log go into OUT/devicecheck.tar.gz.
3. The combined log in OUT is cut to its head and tail when longer than LOG_KEEP_BYTES; the
   tarball has it whole.
4. A tarball over the limit of one file back leaves out its largest members, and says which in
   its member LEFT-OUT.txt and on stdout: never silently.
"""

from __future__ import annotations

import io
import shutil
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from zhisuan.bench.dev.devicecheck import files

MAX_FILE_BYTES = 15 << 20  # a file back may be 16 MiB: a margin below it
LOG_KEEP_BYTES = 4 << 20
LOG_HEAD_BYTES = 1 << 20
EXTRA_DIR = "out-extra"
LEFT_OUT = "LEFT-OUT.txt"


@dataclass
class Packed:
    members: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # "name (bytes)"
    moved: list[str] = field(default_factory=list)


def sweep_out(out: Path, work: Path) -> list[str]:
    """Move everything in OUT that is not a kept file into WORK/out-extra/; returns what moved."""
    moved = []
    for path in sorted(out.iterdir()):
        if path.name in files.KEPT and path.is_file():
            continue
        target = work / EXTRA_DIR / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(target))
        moved.append(path.name)
    return moved


def _candidates(out: Path, work: Path) -> list[tuple[Path, str]]:
    """(file, name in the tarball): the work folder's files, then the kept files in full."""
    found = [(p, f"work/{p.relative_to(work)}") for p in sorted(work.rglob("*")) if p.is_file()]
    found += [(out / name, name) for name in files.KEPT if name != files.TARBALL and (out / name).is_file()]
    return found


def write_tarball(path: Path, members: list[tuple[Path, str]], left_out: list[str]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for source, name in members:
            tar.add(source, arcname=name)
        if left_out:
            text = (
                "Left out of this tarball (over the size of one file back):\n" + "\n".join(left_out) + "\n"
            ).encode()
            info = tarfile.TarInfo(LEFT_OUT)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))


def cut_log(log: Path) -> bool:
    """Keep the head and the tail of a long log (the tarball holds it whole); True when cut."""
    if not log.exists() or log.stat().st_size <= LOG_KEEP_BYTES:
        return False
    data = log.read_bytes()
    tail = LOG_KEEP_BYTES - LOG_HEAD_BYTES
    marker = f"\n[... {len(data) - LOG_KEEP_BYTES} bytes cut here: the whole log is {files.LOG} in {files.TARBALL} ...]\n"
    log.write_bytes(data[:LOG_HEAD_BYTES] + marker.encode() + data[-tail:])
    return True


def pack(out: Path, work: Path) -> Packed:
    work.mkdir(parents=True, exist_ok=True)
    result = Packed(moved=sweep_out(out, work))
    members = _candidates(out, work)
    tarball = out / files.TARBALL
    while True:
        write_tarball(tarball, members, result.left_out)
        if tarball.stat().st_size <= MAX_FILE_BYTES or not members:
            break
        largest = max(members, key=lambda m: m[0].stat().st_size)
        members.remove(largest)
        result.left_out.append(f"{largest[1]} ({largest[0].stat().st_size} bytes)")
    result.members = [name for _, name in members]
    cut_log(out / files.LOG)
    return result


def main(argv: list[str] | None = None) -> int:
    args = files.parse_out_and_work("at most 8 files back: pack the rest into a tar.gz", argv)
    packed = pack(args.out, args.work)
    print(
        f"pack: {len(packed.members)} files in {files.TARBALL}; moved from the output folder: {packed.moved or 'none'}"
    )
    for name in packed.left_out:
        print(f"pack: LEFT OUT (too large to come back): {name}")
    back = sorted(p.name for p in args.out.iterdir())
    print(f"pack: {len(back)} files come back: {', '.join(back)}")
    return 1 if packed.left_out or len(back) > files.MAX_FILES_BACK else 0


if __name__ == "__main__":
    sys.exit(main())
