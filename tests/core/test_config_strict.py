"""Strict validation of every part of recipes.toml and of ``--set`` (issue 14, holes 3, 8 and 9).

Every bad file, override or run config is exit 2 and one sentence on stderr naming the file, the line
and the key path; never a traceback, never exit 1. The CLI runs in this process.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import typing
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recipe_tui.core.config import (CHECK_IDS, SECTIONS, ConfigError, apply_overrides, experiment_from_dict,
                                    load_recipes, shipped_recipes_path)
from recipe_tui.tui.cli import main
from test_config import GOOD  # lines 2–6: [recipe.small], task, data, model, train

# Stage 1 of a checklist: lines 1–12, a blank line 13; a second [[stage]] added by a case starts on line 14.
S1 = """[[stage]]
title = "Inspect the data"

[[stage.item]]
id = "data-stats"
title = "Per-split statistics"
check = "data-stats"

[[stage.item]]
id = "notes"
title = "Look at the data"
guidance = "By eye."

"""


def case(text: str, line: int | None, fragment: str, name: str) -> typing.Any:
    return pytest.param(text, line, fragment, id=name)


CHECKLIST_CASES = [
    case(S1 + '[[stage]]\ntitle = "Skeleton"\nitem = 5\n', 16,
         "stage[2].item: expected [[stage.item]] tables, got int 5", "item-is-an-int"),
    case(S1 + '[[stage]]\ntitle = "Skeleton"\n[stage.item]\nid = "x"\ntitle = "X"\n', 16,
         "stage[2].item: expected [[stage.item]] tables, got a table", "item-is-one-table"),
    case(S1 + '[[stage]]\ntitle = "Skeleton"\nitem = [1, 2]\n', 16,
         "stage[2].item: expected [[stage.item]] tables, got an array [1, 2]", "item-array-of-ints"),
    case(S1 + '[[stage]]\ntitel = "Skeleton"\n', 15, "stage[2].titel: unknown key; did you mean 'title'?", "stage-key-typo"),
    case(S1.replace('check = "data-stats"', 'chek = "data-stats"'), 7,
         "stage[1].item[1].chek: unknown key; did you mean 'check'?", "item-key-typo"),
    case(S1.replace('check = "data-stats"', 'check = "data-stat"'), 7,
         "stage[1].item[1].check: unknown check 'data-stat'; did you mean 'data-stats'?", "unknown-check-id"),
    case(S1.replace('check = "data-stats"', 'check = 5'), 7,
         "stage[1].item[1].check: expected a string, got int 5", "check-is-an-int"),
    case(S1.replace('id = "notes"', 'id = "data-stats"'), 10,
         "stage[1].item[2].id: duplicate item id 'data-stats' (also in stage 1)", "duplicate-id"),
    case(S1 + '[[stage]]\ntitle = "Skeleton"\n\n[[stage.item]]\nid = "notes"\ntitle = "Again"\n', 18,
         "stage[2].item[1].id: duplicate item id 'notes' (also in stage 1)", "duplicate-id-across-stages"),
    case(S1 + '[[stage]]\n\n[[stage.item]]\nid = "x"\ntitle = "X"\n', 14,
         "stage[2]: missing required key 'title'", "stage-without-title"),
    case(S1.replace('id = "notes"\n', ""), 9, "stage[1].item[2]: missing required key 'id'", "item-without-id"),
    case(S1.replace('title = "Look at the data"\n', ""), 9, "stage[1].item[2]: missing required key 'title'",
         "item-without-title"),
    case(S1.replace('title = "Inspect the data"', "title = 5"), 2, "stage[1].title: expected a string, got int 5",
         "stage-title-is-an-int"),
    case(S1.replace('id = "notes"', 'id = " "'), 10, "stage[1].item[2].id: must not be empty", "blank-id"),
    case(S1.replace('guidance = "By eye."', 'guidance = ["By eye."]'), 12,
         "stage[1].item[2].guidance: expected a string, got an array", "guidance-is-an-array"),
    case("stage = [1, 2]\n" + GOOD, 1, "stage: expected [[stage]] tables, got an array [1, 2]", "stage-array-of-ints"),
    case('[stage]\ntitle = "x"\n' + GOOD, 1, "stage: expected [[stage]] tables, got a table", "stage-is-one-table"),
    case("stage = 5\n" + GOOD, 1, "stage: expected [[stage]] tables, got int 5", "stage-is-an-int"),
    case("stages = []\n" + GOOD, 1, "stages: unknown key; did you mean 'stage'?", "top-level-typo"),
    case("recipe = 5\n", 1, "recipe: expected tables [recipe.NAME], got int 5", "recipe-is-an-int"),
]

EXPERIMENT_CASES = [
    case(GOOD.replace("train = { lr = 1e-3, steps = 5 }", "train = 5"), 6,
         "recipe.small.train: expected a table, got int 5", "section-is-an-int"),
    case(GOOD.replace("task =", "description = 5\ntask ="), 3, "recipe.small.description: expected a string, got int 5",
         "description-is-an-int"),
    case(GOOD + "[recipe.small.checks]\nbatch_size = -1\n", 8, "recipe.small.checks.batch_size: must be in 2…4,096, got -1",
         "checks-batch-size-negative"),
    case(GOOD.replace("lr = 1e-3", "lr = nan"), 6, "recipe.small.train.lr: must be a finite number in (0, 10], got nan",
         "lr-nan"),
    case(GOOD.replace("lr = 1e-3", "lr = -inf"), 6, "recipe.small.train.lr: must be a finite number", "lr-minus-inf"),
    case(GOOD.replace("lr = 1e-3", "lr = 0"), 6, "recipe.small.train.lr: must be in (0, 10], got 0", "lr-zero"),
    case(GOOD.replace("lr = 1e-3", "lr = 1" + "0" * 400), 6, "train.lr: must be in (0, 10], got a 401-digit integer",
         "lr-beyond-any-float"),
    case(GOOD.replace("width = 32", "width = 32, dropout = 5.0"), 5, "recipe.small.model.dropout: must be in [0, 1), got 5.0",
         "dropout-5"),
    case(GOOD.replace('source = "digits"', 'source = "digits", val_fraction = inf'), 4,
         "recipe.small.data.val_fraction: must be a finite number in [0, 1), got inf", "val-fraction-inf"),
    case(GOOD.replace('source = "digits"', 'source = "digits", val_fraction = 0.6, test_fraction = 0.4'), 4,
         "data.test_fraction: val_fraction + test_fraction must be below 1, got 0.6 + 0.4", "fractions-sum-to-1"),
    case(GOOD.replace("width = 32", "width = 18446744073709551616"), 5,
         "recipe.small.model.width: must be in 1…65,536, got 18,446,744,073,709,551,616", "width-2-64"),
    case(GOOD.replace("width = 32", "depth = 2147483648"), 5, "recipe.small.model.depth: must be in 1…1,000, got 2,147,483,648",
         "depth-2-31"),
    case(GOOD.replace('name = "mlp", width = 32', 'name = "char-transformer", width = 30, heads = 4'), 5,
         "recipe.small.model.heads: 4 heads do not divide model.width 30", "heads-do-not-divide-width"),
    case(GOOD.replace("steps = 5", "steps = 5, seed = -1"), 6, "recipe.small.train.seed: must be in 0…2^63-1, got -1",
         "seed-negative"),
    case(GOOD.replace("steps = 5", "steps = 5, batch_size = 0"), 6, "recipe.small.train.batch_size: must be in 1…1,048,576",
         "batch-size-zero"),
    case(GOOD.replace("steps = 5", "steps = true"), 6, "recipe.small.train.steps: expected an integer, got bool True",
         "steps-is-a-bool"),
    case(GOOD + "[recipe.small.checks]\noverfit_batch_size = 20\n", 8, "checks.overfit_batch_size: must be in 2…16, got 20",
         "overfit-batch-20"),
    case(GOOD.replace('source = "digits"', 'source = "digits", limit = 0'), 4, "recipe.small.data.limit: must be in 1…2^63-1",
         "limit-zero"),
    case(GOOD.replace("{ lr = 1e-3, steps = 5 }", '{ lr = 1e-3, steps = 5, optimizer = "adan" }'), 6,
         "recipe.small.train.optimizer: 'adan' is not an optimizer; did you mean 'adam'?", "optimizer-typo"),
    case(GOOD.replace("width = 32", "width = 32, kwargs = { a = " + "[" * 40 + "]" * 40 + " }"), 5,
         "recipe.small.model.kwargs: nested more than 32 levels deep", "kwargs-nested-40-deep"),
    case(GOOD + '\n[recipe."resnet50_v1.5"]\ndata = { source = "digits" }\nmodel = { name = "mlp", widht = 8 }\n', 10,
         'recipe."resnet50_v1.5".model.widht: unknown key; did you mean \'width\'?', "quoted-recipe-name"),
]

SYNTAX_CASES = [
    case("[recipe.x\ntask = 1", 1, "TOML syntax error at column 10 of '[recipe.x': expected ']'", "unclosed-header"),
    case(GOOD.replace("lr = 1e-3", "lr = 1e-3e"), 6, "TOML syntax error at column", "bad-number"),
    case(GOOD[:GOOD.index("steps")], 6, "TOML syntax error at the end of the file (invalid initial character for a key "
         "part): the file looks truncated; the last complete table header is [recipe.small] on line 2", "truncated-table"),
    case(GOOD + '\n[recipe.other]\ndescription = "abc', 9,
         "the file looks truncated; the last complete table header is [recipe.other] on line 8", "truncated-string"),
    case('description = "a', 1, "the file looks truncated; no table header is complete before it", "truncated-no-header"),
    case(GOOD + 'task = "x"', 7, "TOML syntax error on the last line ('task = \"x\"'): cannot overwrite a value",
         "duplicate-key-on-a-last-line-without-newline"),
    case(GOOD + 'task = "x"\n', 7, "TOML syntax error at column 11 of 'task = \"x\"': cannot overwrite a value",
         "duplicate-key"),
    case("x = " + "[" * 5000 + "]" * 5000, 1, "arrays or inline tables nested too deeply for the TOML reader",
         "nested-5000-deep"),
    case(GOOD + "\nx = " + "1" * 5000 + "\n", 8, "holds a number with thousands of digits", "5000-digit-number"),
]


def error_line(capsys, argv: list[str]) -> str:
    """Run ``recipe-tui ARGV``; assert exit 2 and exactly one line on stderr, no traceback; return the line."""
    rc = main(argv)
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert rc == 2, out.err
    assert len(lines) == 1 and lines[0].startswith("recipe-tui: ") and "Traceback" not in out.err, out.err
    return lines[0].removeprefix("recipe-tui: ")


def write(tmp_path: Path, data: str | bytes, name: str = "recipes.toml") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("text, line, fragment", CHECKLIST_CASES + EXPERIMENT_CASES + SYNTAX_CASES)
def test_a_bad_file_is_one_sentence_naming_file_line_and_key(tmp_path, capsys, text, line, fragment):
    path = write(tmp_path, text)
    msg = error_line(capsys, ["list", "--file", str(path)])
    assert msg.startswith(f"{path}:{line}: "), msg
    assert fragment in msg and msg.endswith((".", "?")), msg


BYTES_CASES = [
    pytest.param(GOOD.encode("utf-16"), None, "is UTF-16 (or UTF-32) text, but TOML files are UTF-8", id="utf-16-bom"),
    pytest.param(GOOD.encode("utf-16-le"), None, "is UTF-16 (or UTF-32) text", id="utf-16-le-no-bom"),
    pytest.param(GOOD.encode("utf-32"), None, "is UTF-16 (or UTF-32) text", id="utf-32"),
    pytest.param(bytes(range(256)) * 8, 1, "is a binary file, not TOML text (it holds NUL bytes)", id="binary"),
    pytest.param(GOOD.replace("task", 'description = "café"\ntask').encode("latin-1"), 3,
                 "is not UTF-8 text (byte 0xe9 on line 3)", id="latin-1"),
]


@pytest.mark.parametrize("data, line, fragment", BYTES_CASES)
def test_files_that_are_not_utf8_text_are_named(tmp_path, capsys, data, line, fragment):
    path = write(tmp_path, data)
    msg = error_line(capsys, ["list", "--file", str(path)])
    assert msg.startswith(f"{path}:{line}: " if line else f"{path}: ") and fragment in msg, msg


def test_a_utf8_byte_order_mark_is_accepted(tmp_path, capsys):
    """A BOM is valid UTF-8 text that Windows editors write; tomllib alone refuses it."""
    plain = load_recipes(write(tmp_path, GOOD, "plain.toml")).experiment("small")
    bom = write(tmp_path, "\ufeff" + GOOD.replace("width = 32", "width = 33"), "bom.toml")
    exp = load_recipes(bom).experiment("small")
    assert exp.model.width == 33 and (exp.task, exp.data, exp.train) == (plain.task, plain.data, plain.train)
    bad = write(tmp_path, "\ufeff" + GOOD.replace("lr = 1e-3", "lrr = 1e-3"), "bom-bad.toml")
    assert error_line(capsys, ["list", "--file", str(bad)]).startswith(f"{bad}:6: recipe.small.train.lrr: unknown key")


def test_unreadable_paths_are_named(tmp_path, capsys):
    assert error_line(capsys, ["list", "--file", str(tmp_path)]) == f"{tmp_path}: is a directory, not a recipes file."
    missing = tmp_path / "nope.toml"
    assert error_line(capsys, ["list", "--file", str(missing)]) == f"{missing}: no such recipes file."
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    assert "is not a regular file" in error_line(capsys, ["list", "--file", str(fifo)])
    huge = tmp_path / "checkpoint.pt"
    with open(huge, "wb") as f:
        f.truncate(17 * 2**20)  # sparse: nothing is written
    assert "too large for a recipes file" in error_line(capsys, ["list", "--file", str(huge)])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_file_without_read_permission_is_named(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    path.chmod(0)
    assert error_line(capsys, ["list", "--file", str(path)]) == f"{path}: cannot read it: permission denied."


def test_a_read_that_fails_is_named(tmp_path, capsys, monkeypatch):
    """The permission path as root can run it: the read itself raising (EACCES, EIO …)."""
    path = write(tmp_path, GOOD)

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert error_line(capsys, ["list", "--file", str(path)]) == f"{path}: cannot read it: permission denied."


def test_a_truncated_shipped_file_names_its_last_complete_table(tmp_path, capsys):
    text = shipped_recipes_path().read_text(encoding="utf-8")
    cut = text[:text.rindex("checkpoint_every")]  # mid inline table of the last experiment
    lines = cut.splitlines()
    header = max(i for i, s in enumerate(lines, 1) if s.startswith("[recipe."))
    msg = error_line(capsys, ["list", "--file", str(write(tmp_path, cut))])
    assert f":{len(lines)}: TOML syntax error at the end of the file" in msg
    assert f"the file looks truncated; the last complete table header is {lines[header - 1]} on line {header}." in msg


BAD_FILES = {
    "item-is-an-int": (S1 + '[[stage]]\ntitle = "Skeleton"\nitem = 5\n' + GOOD, "stage[2].item: expected"),
    "lr-nan": (GOOD.replace("lr = 1e-3", "lr = nan"), "train.lr: must be a finite number"),
    "truncated": (GOOD[:GOOD.index("steps")], "the file looks truncated"),
    "utf-16": (GOOD.encode("utf-16"), "is UTF-16"),
    "unknown-check": (S1.replace('check = "data-stats"', 'check = "dupes"') + GOOD, "unknown check 'dupes'"),
}
COMMANDS = {"list": ["list"], "check": ["check", "data-stats"], "train": ["train"], "app": []}


@pytest.mark.parametrize("bad", BAD_FILES)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_a_bad_file_with_exit_2(tmp_path, capsys, command, bad):
    data, fragment = BAD_FILES[bad]
    path = write(tmp_path, data)
    runs = tmp_path / "runs"
    msg = error_line(capsys, [*COMMANDS[command], "--file", str(path), "--runs", str(runs)])
    assert msg.startswith(str(path)) and fragment in msg, msg
    assert not runs.exists(), "a bad config must not start anything"


def test_watch_refuses_what_is_not_a_run_dir_with_exit_2(tmp_path, capsys):
    """watch reads no recipes file; what it is given is the run dir."""
    assert "no such run directory" in error_line(capsys, ["watch", str(tmp_path / "nope")])
    assert "no such run directory" in error_line(capsys, ["watch", str(write(tmp_path, GOOD))])


@pytest.mark.parametrize("override, fragment", [
    pytest.param("checks.batch_size=-1", "--set: checks.batch_size: must be in 2…4,096, got -1.", id="batch-size"),
    pytest.param("train.lr=nan", "--set: train.lr: must be a finite number in (0, 10], got nan.", id="lr-nan"),
    pytest.param("model.width=18446744073709551616",
                 "--set: model.width: must be in 1…65,536, got 18,446,744,073,709,551,616.", id="width-2-64"),
    pytest.param("model.depth=2147483648", "--set: model.depth: must be in 1…1,000, got 2,147,483,648.", id="depth-2-31"),
    pytest.param("model.dropout=5.0", "--set: model.dropout: must be in [0, 1), got 5.0.", id="dropout"),
    pytest.param("data.val_fraction=inf", "--set: data.val_fraction: must be a finite number in [0, 1), got inf.",
                 id="val-fraction-inf"),
    pytest.param("train.lr=" + "[" * 3000, "--set: train.lr: expected a number, got str '[[[[", id="lr-nested-3000"),
    pytest.param("model.kwargs.a.b=1", "--set model.kwargs.a.b=1: a is not a table.", id="into-a-non-table"),
])
@pytest.mark.parametrize("command", ["check", "train"])
def test_set_is_range_checked_like_the_file(tmp_path, capsys, command, override, fragment):
    path = write(tmp_path, GOOD.replace("width = 32", "width = 32, kwargs = { a = 1 }"))
    runs = tmp_path / "runs"
    argv = [command, "--file", str(path), "--runs", str(runs), "--set", override] + (["data-stats"] if command == "check" else [])
    assert fragment in error_line(capsys, argv)
    assert not runs.exists()


def test_a_run_config_out_of_range_is_refused_on_resume(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    exp = load_recipes(path).experiment("small")
    run = tmp_path / "runs" / "small" / "20250101-000000"
    run.mkdir(parents=True)
    config = exp.to_dict()
    config["train"]["lr"] = math.nan
    (run / "config.json").write_text(json.dumps(config))  # json writes NaN, and reads it back
    msg = error_line(capsys, ["train", "--file", str(path), "--resume", str(run)])
    assert msg == "a run's config.json (recipe small): train.lr: must be a finite number in (0, 10], got nan."
    with pytest.raises(ConfigError, match=r"model\.depth: must be in 1…1,000, got 2,147,483,648"):
        experiment_from_dict({**exp.to_dict(), "model": {"name": "mlp", "depth": 2**31}})


# ----------------------------------------------------------------------------- ranges are declared


def numeric_fields() -> list[tuple[str, str, typing.Any, typing.Any]]:
    """(section, key, range, type) of every int or float key of every section."""
    out = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kinds = set(typing.get_args(hints[f.name])) or {hints[f.name]}
            if kinds & {int, float}:
                out.append((section, f.name, f.metadata.get("range"), (kinds & {int, float}).pop()))
    return out


def test_every_numeric_key_declares_a_range_that_holds_its_default():
    fields = numeric_fields()
    assert len(fields) >= 41
    for section, key, allowed, _ in fields:
        assert allowed is not None, f"{section}.{key} has no range: declare one with ranged(default, lo, hi)"
        default = getattr(SECTIONS[section](), key)
        values = default if isinstance(default, list) else [default]  # a list key: each of its values
        assert all(v is None or v in allowed for v in values), f"{section}.{key}: default {default} outside {allowed}"


@pytest.mark.parametrize("section, key, allowed, kind", numeric_fields(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_range_is_enforced_at_both_ends(section, key, allowed, kind):
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp")
    if kind is int:
        inside, outside = [allowed.lo, allowed.hi], [allowed.lo - 1, allowed.hi + 1]
    else:
        lo = math.nextafter(allowed.lo, math.inf) if allowed.lo_open else allowed.lo
        hi = math.nextafter(allowed.hi, -math.inf) if allowed.hi_open else allowed.hi
        inside = [lo, hi]
        outside = [allowed.lo if allowed.lo_open else math.nextafter(allowed.lo, -math.inf),
                   allowed.hi if allowed.hi_open else math.nextafter(allowed.hi, math.inf), "nan", "inf", "-inf"]
    others = ["data.val_fraction=0.0"] if key == "test_fraction" else []  # their sum must stay below 1
    listed = isinstance(getattr(SECTIONS[section](), key), list)  # a list key: the range holds for each value

    def text(v):
        return f"[{v if isinstance(v, str) else repr(v)}]" if listed else (v if isinstance(v, str) else repr(v))
    for value in inside:
        got = getattr(getattr(apply_overrides(exp, [*others, f"{section}.{key}={text(value)}"]), section), key)
        assert got == ([value] if listed else value)
    for value in outside:
        where = rf"{section}\.{key}" + (r"\[1\]" if listed else "")
        with pytest.raises(ConfigError, match=rf"^--set: {where}: must be "):
            apply_overrides(exp, [*others, f"{section}.{key}={text(value)}"])


def test_the_readme_table_gives_every_key_its_range():
    """Each row's key cell and range cell list the same keys in the same order."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The recipes file"):readme.index("## The checklist and its checks")]
    documented: dict[str, str] = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            keys = re.findall(r"`([\w.]+)`", cells[0])
            ranges = [r.strip() for r in cells[2].split(";")]
            assert len(keys) == len(ranges), row
            documented.update(zip(keys, ranges))
    for section_name, key, allowed, _ in numeric_fields():
        assert documented.get(f"{section_name}.{key}", "").startswith(str(allowed)), f"{section_name}.{key}: {allowed}"
    numeric = {f"{s}.{k}" for s, k, _, _ in numeric_fields()}
    assert all(r == "—" for k, r in documented.items() if k not in numeric)
    assert {f"{s}.{f.name}" for s, c in SECTIONS.items() for f in dataclasses.fields(c)} <= set(documented)


# ----------------------------------------------------------------------------- check ids


def test_check_ids_are_one_list_the_registry_and_the_shipped_file_agree_with():
    from recipe_tui.core.checks import registry

    assert len(CHECK_IDS) == len(set(CHECK_IDS)) == 24
    assert set(registry()) == set(CHECK_IDS), "every check id has its check (stages 1–6)"
    shipped = load_recipes(shipped_recipes_path())
    assert {i.check for i in shipped.items() if i.check} == set(CHECK_IDS)
    later = {i.id for s in shipped.stages if s.number >= 3 for i in s.items} - {"train"}
    assert later == set(CHECK_IDS[17:]), "stage 3–6 item ids are their check ids"


# ----------------------------------------------------------------------------- mutated shipped files

SHIPPED_LINES = shipped_recipes_path().read_text(encoding="utf-8").splitlines()
KEY_VALUE = re.compile(r'([A-Za-z_][\w-]*)(\s*=\s*)("[^"]*"|[^,}\s]+)')
NUMBER = re.compile(r'(?<![\w."-])-?\d[\d_]*(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w"])')
ODD_VALUES = ["5", "-1", "0", '"x"', '""', "true", "[]", "{}", "[1, 2]", "{ a = 1 }", "nan", "inf", "-inf", "1e309",
              "18446744073709551616", "2147483648", "0.5", "1979-05-27", '"digits"', '"data-stat"', "[{ title = 1 }]"]
NUMBERS = st.one_of(st.integers(-2**70, 2**70).map(str), st.floats().map(repr),
                    st.sampled_from(["0", "-0", "1", "-1", "2", "1e-300", "2147483648", "9223372036854775808"]))
KEYS = st.sampled_from(["id", "title", "check", "item", "stage", "recipe", "guidance", "lr", "width", "task", "data"])


def mutate_line(draw: typing.Any, kind: str, line: str) -> str:
    """One change to one line: a value of another type, another number, or a key misspelt or misplaced."""
    pattern = NUMBER if kind == "renumber" else KEY_VALUE
    spots = list(pattern.finditer(line))
    if not spots:
        return line
    m = draw(st.sampled_from(spots))
    if kind == "renumber":
        return line[:m.start()] + draw(NUMBERS) + line[m.end():]
    if kind == "retype":
        return line[:m.start(3)] + draw(st.sampled_from(ODD_VALUES)) + line[m.end(3):]
    key = m.group(1)
    typo = draw(st.one_of(st.sampled_from([key[:-1] or "k", key + "s", key[1:] or "k", key[::-1]]), KEYS))
    return line[:m.start(1)] + typo + line[m.end(1):]


@st.composite
def mutated_recipes(draw: typing.Any) -> str:
    """The shipped recipes.toml after one to three deletions, duplications, retypings, renumberings or renamings
    of a line, or cut short anywhere."""
    lines = list(SHIPPED_LINES)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "duplicate", "retype", "renumber", "rename", "truncate"]))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "truncate":
            text = "\n".join(lines)
            return text[:draw(st.integers(0, len(text)))]
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(draw(st.integers(0, len(lines))), lines[i])
        else:
            lines[i] = mutate_line(draw, kind, lines[i])
    return "\n".join(lines) + "\n"


def ok_or_one_line(capsys: typing.Any, argv: list[str], path: Path) -> tuple[int, str]:
    """Exit 0, or exit 2 with one line naming the file: never a traceback, never exit 1 for the file."""
    rc = main(argv)
    out = capsys.readouterr()
    assert rc in (0, 2), f"{argv}: exit {rc}: {out.err}"
    assert "Traceback" not in out.err
    if rc == 2:
        lines = [line for line in out.err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"recipe-tui: {path}"), out.err
    return rc, out.out


def test_mutated_shipped_files_are_loaded_or_refused_in_one_line(tmp_path, capsys):
    """~100 mutations of the shipped file (RECIPE_TUI_FUZZ_EXAMPLES=N for more): ``list`` on every one,
    and ``check data-stats`` on those that still load with digits data (cheap: one cached pass)."""
    path, runs = tmp_path / "recipes.toml", tmp_path / "runs"
    seen: Counter[str] = Counter()
    examples = int(os.environ.get("RECIPE_TUI_FUZZ_EXAMPLES", "100"))

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None)
    @given(text=mutated_recipes())
    def property_holds(text: str) -> None:
        seen["tried"] += 1
        path.write_text(text, encoding="utf-8")
        capsys.readouterr()
        rc, _ = ok_or_one_line(capsys, ["list", "--file", str(path)], path)
        seen["refused" if rc else "loaded"] += 1
        exp = load_recipes(path).experiments.get("digits-mlp") if rc == 0 else None
        if exp is None or exp.data.source != "digits" or exp.data.path or exp.data.factory:
            return
        rc, out = ok_or_one_line(capsys, ["check", "--file", str(path), "--runs", str(runs), "--recipe", "digits-mlp",
                                          "--json", "data-stats"], path)
        seen["checked"] += 1
        assert rc == 2 or all(item["status"] != "error" for item in json.loads(out)["items"]), out

    property_holds()
    print(f"mutated recipes files: {seen['tried']} tried, {seen['refused']} refused (exit 2, one line), "
          f"{seen['loaded']} loaded, {seen['checked']} also ran check data-stats; 0 mishandled")
    assert seen["tried"] >= examples and seen["refused"] >= examples // 4 and seen["loaded"] >= examples // 20
