"""Option values are checked by the command line: exit code 2 and the option's name, before
any model loads (the bundle in these tests does not exist, so reaching it means the value
was accepted)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from emolive.cli.main import main
from emolive.runtime.reasoning.labels import LabelSet, LabelSetError

BAD = [
    ("run", "--every", "0"),
    ("run", "--every", "-1"),
    ("run", "--every", "nan"),
    ("run", "--duration", "-5"),
    ("run", "--duration", "0"),
    ("run", "--duration", "inf"),
    ("run", "--frame-step", "0"),
    ("run", "--threads", "0"),
    ("run", "--max-faces", "0"),
    ("run", "--tiles", "3"),
    ("run", "--labels", "calm,stressed\x1b[31m"),
    ("run", "--labels", "calm,str\nessed"),
    ("run", "--labels", "calm,\x00stressed"),
    ("reason", "--labels", "calm,\u200bstressed"),
    ("reason", "--labels", "calm"),
    ("reason", "--threads", "0"),
    ("reason", "--max-context", "0"),
    ("reason", "--max-tokens", "0"),
    ("reason", "--top-p", "0"),
    ("reason", "--top-p", "1.5"),
    ("reason", "--temperature", "0"),
    ("reason", "--temperature", "nan"),
    ("reason", "--seed", "-1"),
    ("calibrate", "--percentile", "50"),
    ("calibrate", "--percentile", "101"),
    ("calibrate", "--samples", "0"),
    ("calibrate", "--every", "0"),
]


@pytest.mark.parametrize("command, option, value", BAD)
def test_a_bad_value_names_its_option(tmp_path, command, option, value):
    bundle = str(tmp_path / "no-bundle")
    where = ["--bundle", bundle] if command != "calibrate" else [bundle]
    extra = ["--visual", "smiling"] if command == "reason" else []
    r = CliRunner().invoke(main, [command, *where, *extra, option, value])
    assert r.exit_code == 2, r.output
    assert f"Invalid value for '{option}'" in r.output, r.output
    assert "no-bundle" not in r.output  # refused before the bundle was looked at
    assert "Traceback" not in r.output


GOOD = [
    ("run", ["--every", "0.5", "--duration", "2.5", "--frame-step", "2", "--threads", "1",
             "--max-faces", "1", "--tiles", "2", "--labels", "très calme,tendu 😬"]),
    ("reason", ["--visual", "smiling", "--threads", "1", "--max-context", "256",
                "--max-tokens", "1", "--top-p", "1", "--temperature", "0.1", "--seed", "0",
                "--labels", "calm,tense"]),
]  # fmt: skip


@pytest.mark.parametrize("command, args", GOOD)
def test_good_values_get_past_the_checks(tmp_path, command, args):
    r = CliRunner().invoke(main, [command, "--bundle", str(tmp_path / "no-bundle"), *args])
    # What stops these runs is the missing bundle (exit 1), not an option.
    assert r.exit_code == 1 and "no-bundle" in r.output, r.output


def test_labels_with_control_characters_are_refused_by_the_shared_rule():
    for label in ("tense\x1b[0m", "a\x00b", "zero\u200bwidth", "bell\x07", "tab\tbed"):
        with pytest.raises(LabelSetError, match="label"):
            LabelSet(("calm", label))
    assert LabelSet.parse("très calme, tendu 😬").labels == ("très calme", "tendu 😬")
