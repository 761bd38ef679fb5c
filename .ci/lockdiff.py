"""Compare two `pip freeze` listings: what `make upgrade-check` would change in the lock.

usage: python .ci/lockdiff.py LOCKED FRESH  (prints changed / added / removed packages)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return out


def main(locked: str, fresh: str) -> int:
    old, new = pins(Path(locked)), pins(Path(fresh))
    changed = sorted(n for n in old.keys() & new.keys() if old[n] != new[n])
    added, removed = sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys())
    for n in changed:
        print(f"changed  {n}: {old[n]} -> {new[n]}")
    for n in added:
        print(f"added    {n}=={new[n]}")
    for n in removed:
        print(f"removed  {n}=={old[n]}")
    print(f"{len(changed)} changed, {len(added)} added, {len(removed)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
