"""recipes.toml validation: every error is one sentence naming the file, the key path and the line.

The CLI runs in-process (``main([...])``); one test runs the installed ``recipe-tui`` command.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_tui.core.config import (ConfigError, apply_overrides, experiment_from_dict, load_recipes,
                                    shipped_recipes_path)
from recipe_tui.tui.cli import main

GOOD = """
[recipe.small]
task = "classification"
data = { source = "digits" }
model = { name = "mlp", width = 32 }
train = { lr = 1e-3, steps = 5 }
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "recipes.toml"
    p.write_text(text)
    return p


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``recipe-tui ARGS`` in this process: (exit code, stdout, stderr)."""
    try:
        rc = main(list(args))
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_shipped_file_has_the_six_stages_and_public_item_ids():
    r = load_recipes(shipped_recipes_path())
    assert [s.title for s in r.stages] == ["Inspect the data", "Set up the skeleton", "Overfit", "Regularize", "Tune",
                                          "Squeeze out the juice"]
    ids = [[i.id for i in s.items] for s in r.stages]
    assert ids == [
        ["data-stats", "class-balance", "duplicates", "outliers", "label-issues"],
        ["seed", "init-loss", "init-bias", "zero-input", "overfit-batch", "batch-independence", "causality",
         "batch-view", "baselines", "eval-mode", "grad-flow", "output-range"],
        ["lr-find", "capacity", "train", "first-layer"], ["regularize"], ["tune"], ["ensemble", "distill"],
    ]
    assert all(i.guidance for i in r.items()), "every item carries the recipe's guidance"
    assert {"digits-mlp", "digits-cnn", "names-lm", "cifar10-resnet18"} <= set(r.experiments)
    assert r.default == "digits-mlp"
    cifar = r.experiment("cifar10-resnet18")
    assert cifar.data.download is True and cifar.model.name == "resnet18"


def test_defaults_are_the_recipes_safe_start(tmp_path):
    exp = load_recipes(write(tmp_path, GOOD)).experiment(None)
    assert exp.train.lr == 1e-3 and exp.train.optimizer == "adam" and exp.train.schedule == "constant"
    assert exp.base_dir == str(tmp_path.resolve())


@pytest.mark.parametrize("text, expected", [
    ("[recipe.x\ntask = 1", "TOML syntax error"),
    (GOOD.replace("lr = 1e-3", "lrr = 1e-3"), "recipe.small.train.lrr: unknown key; did you mean 'lr'?"),
    (GOOD.replace("steps = 5", "steps = \"many\""), "recipe.small.train.steps: expected an integer, got str 'many'"),
    (GOOD.replace("classification", "clasification"), "did you mean 'classification'?"),
    (GOOD.replace('model = { name = "mlp", width = 32 }', 'model = { name = "mlp", widht = 32 }'),
     "recipe.small.model.widht: unknown key; did you mean 'width'?"),
])
def test_config_errors_name_file_line_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_recipes(path)
    msg = str(err.value)
    assert str(path) in msg and expected in msg
    assert "\n" not in msg
    if "unknown key" in expected or "expected an integer" in expected:
        line = int(msg.split(":")[1])
        assert expected.split(":")[0].split(".")[-1] in path.read_text().splitlines()[line - 1]


@pytest.mark.parametrize("text, expected", [
    ("[recipe.x\ntask = 1", "TOML syntax error"),
    (GOOD.replace("lr = 1e-3", "lrr = 1e-3"), "did you mean 'lr'?"),
    (GOOD.replace("steps = 5", "steps = 5.5"), "recipe.small.train.steps: expected an integer"),
    (GOOD.replace('data = { source = "digits" }', 'data = { factory = "no_such_mod:make" }'),
     "recipe.small.data.factory: no module named 'no_such_mod'"),
])
def test_cli_exit_code_2_and_one_sentence(tmp_path, capsys, text, expected):
    path = write(tmp_path, text)
    rc, _, err = run_cli(capsys, "train", "--file", str(path), "--runs", str(tmp_path / "runs"))
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], err
    assert "Traceback" not in err


def test_the_installed_command_exits_2_with_one_sentence(tmp_path):
    """The console script itself (a real process): a bad file is exit 2 and one line, no traceback."""
    command = shutil.which("recipe-tui", path=str(Path(sys.executable).parent)) or shutil.which("recipe-tui")
    assert command, "recipe-tui is not installed in this environment"
    path = write(tmp_path, GOOD.replace("lr = 1e-3", "lr = nan"))
    out = subprocess.run([command, "list", "--file", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"recipe-tui: {path}:6: recipe.small.train.lr: must be a finite number in (0, 10], got nan."


def test_missing_factory_function_is_named(tmp_path, capsys):
    # Module names unique to this test: the CLI runs in this process, where imported modules stay cached.
    (tmp_path / "my_models_without_net.py").write_text("import torch.nn as nn\ndef other():\n    return nn.Linear(64, 10)\n")
    path = write(tmp_path, GOOD.replace('model = { name = "mlp", width = 32 }',
                                        'model = { factory = "my_models_without_net:net" }'))
    rc, _, err = run_cli(capsys, "train", "--file", str(path), "--runs", str(tmp_path / "runs"))
    assert rc == 2
    assert "recipe.small.model.factory: module 'my_models_without_net'" in err and "has no 'net'" in err


def test_factories_import_from_the_recipes_folder(tmp_path, capsys):
    (tmp_path / "core.py").write_text("raise RuntimeError('the wrong core')\n")  # ML repos often have one
    (tmp_path / "my_models_with_net.py").write_text(
        "import torch.nn as nn\ndef net(width=8):\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))\n")
    path = write(tmp_path, GOOD.replace('model = { name = "mlp", width = 32 }',
                                        'model = { factory = "my_models_with_net:net", kwargs = { width = 16 } }'))
    rc, out, err = run_cli(capsys, "train", "--file", str(path), "--runs", str(tmp_path / "runs"), "--json")
    assert rc == 0, err
    assert '"status": "completed"' in out


def test_overrides_are_type_checked():
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp")
    changed = apply_overrides(exp, ["train.lr=1e-2", "train.steps=7", "data.source=names", "model.batchnorm=true"])
    assert changed.train.lr == 0.01 and changed.train.steps == 7 and changed.data.source == "names"
    assert changed.model.batchnorm is True and changed.source == exp.source
    with pytest.raises(ConfigError, match=r"train\.steps: expected an integer, got str 'abc'"):
        apply_overrides(exp, ["train.steps=abc"])
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        apply_overrides(exp, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        apply_overrides(exp, ["trian.lr=1"])


def test_config_round_trips_through_the_run_dir_json():
    exp = load_recipes(shipped_recipes_path()).experiment("names-lm")
    assert experiment_from_dict(exp.to_dict()) == exp


def test_unknown_recipe_and_local_file_lookup(tmp_path, capsys, monkeypatch):
    write(tmp_path, GOOD)
    monkeypatch.chdir(tmp_path)
    rc, out, _ = run_cli(capsys, "list")
    assert rc == 0 and "small" in out and "digits-mlp" not in out
    rc, _, err = run_cli(capsys, "train", "--recipe", "smal")
    assert rc == 2 and "no recipe named 'smal'; did you mean 'small'?" in err


def test_bad_usage_is_exit_2(capsys):
    assert run_cli(capsys, "frobnicate")[0] == 2
    assert run_cli(capsys, "check", "--stage", "x")[0] == 2


def test_a_file_of_experiments_only_gets_the_recipes_checklist(tmp_path, capsys):
    """DESIGN's own example has no [[stage]]: such a file must still have the six stages."""
    path = write(tmp_path, GOOD)
    r = load_recipes(path)
    assert [s.title for s in r.stages] == [s.title for s in load_recipes(shipped_recipes_path()).stages]
    rc, out, err = run_cli(capsys, "check", "init-loss", "--json", "--file", str(path), "--runs", str(tmp_path / "runs"))
    assert rc == 0, err
    assert '"id": "init-loss"' in out and '"status": "pass"' in out
    with pytest.raises(ConfigError, match="stage: expected"):
        load_recipes(write(tmp_path, "stage = []\n" + GOOD))
