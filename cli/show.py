"""Print readings from a JSON-lines file in a form a person reads (used by `make demo`).

python -m emolive.cli.show demo-readings.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def describe(event: dict) -> str:
    when = f"[{event['t_start']:6.2f}-{event['t_end']:6.2f} s]"
    if event.get("emotion") is None:  # schema 2.0: the reading abstained and says why
        lines = [f"{when} no label — {event.get('abstained') or 'no reason given'}"]
    else:
        lines = [
            f"{when} {event['emotion'].upper()} ({event['confidence']:.2f}), "
            f"valence {event['valence']}, arousal {event['arousal']}"
        ]
    for kind, clues in event["clues"].items():
        if clues:
            lines.append(f"    {kind:7s} " + "; ".join(clues))
    if event.get("conflict"):
        lines.append(f"    conflict: {event['conflict']['description']}")
    if event.get("explanation"):
        lines.append(f"    why: {event['explanation']}")
    for note in event.get("notes", []):
        lines.append(f"    note: {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m emolive.cli.show READINGS.jsonl", file=sys.stderr)
        return 2
    path = Path(args[0])
    expressions = 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            event = json.loads(line)
        except json.JSONDecodeError as e:
            print(f"{path}:{n}: not JSON ({e})", file=sys.stderr)
            return 1
        if event.get("type") == "reading":
            print(describe(event))
        else:
            expressions += 1
    print(f"({expressions} per-frame expression events not shown)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
