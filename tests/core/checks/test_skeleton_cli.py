"""`recipe-tui check --json` on a user's recipes file with factories: the JSON shape and the exit codes."""
import json
import subprocess
import sys
import textwrap

import pytest

from recipe_tui.core.config import shipped_recipes_path
from recipe_tui.tui.cli import main

pytestmark = pytest.mark.timeout(120)

USER_MODELS = textwrap.dedent('''
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        def __init__(self, softmax=False):
            super().__init__()
            self.softmax = softmax
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

        def forward(self, x):
            out = self.net(x)
            return F.softmax(out, dim=-1) if self.softmax else out

    def net(softmax=False):
        return Net(softmax)
''')


@pytest.fixture
def recipes(tmp_path):
    """A user's recipes file: the shipped checklist, two experiments built by a factory beside it."""
    shipped = shipped_recipes_path().read_text()
    checklist = shipped[: shipped.index("[recipe.")]
    (tmp_path / "user_models.py").write_text(USER_MODELS)
    (tmp_path / "recipes.toml").write_text(checklist + textwrap.dedent('''
        [recipe.good]
        task = "classification"
        data = { source = "digits" }
        model = { factory = "user_models:net" }
        train = { lr = 3e-3, device = "cpu" }
        checks = { zero_input_steps = 100 }

        [recipe.softmax]
        task = "classification"
        data = { source = "digits" }
        model = { factory = "user_models:net", kwargs = { softmax = true } }
        train = { lr = 3e-3, device = "cpu" }
    '''))
    return tmp_path / "recipes.toml"


def check_json(capsys, *argv):
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def assert_shape(doc, recipe, ids):
    assert set(doc) == {"recipe", "items"} and doc["recipe"] == recipe
    assert [item["id"] for item in doc["items"]] == ids
    for item in doc["items"]:
        assert set(item) == {"id", "status", "summary", "metrics", "hint"}
        assert item["status"] in ("pass", "warn", "fail", "error", "skip")
        assert isinstance(item["summary"], str) and item["summary"]
        assert isinstance(item["metrics"], dict) and isinstance(item["hint"], str)


def test_check_json_exits_0_when_nothing_failed(recipes, capsys):
    ids = ["init-loss", "zero-input", "overfit-batch", "output-range", "grad-flow", "causality"]
    code, doc = check_json(capsys, "--file", str(recipes), "check", *ids, "--recipe", "good", "--json")
    assert_shape(doc, "good", ids)
    statuses = {item["id"]: item["status"] for item in doc["items"]}
    assert statuses == {"init-loss": "pass", "zero-input": "pass", "overfit-batch": "pass", "output-range": "pass",
                        "grad-flow": "pass", "causality": "skip"}
    assert code == 0


def test_check_json_exits_1_when_a_check_fails(recipes, capsys):
    ids = ["output-range", "overfit-batch"]
    code, doc = check_json(capsys, "--file", str(recipes), "check", *ids, "--recipe", "softmax", "--json")
    assert_shape(doc, "softmax", ids)
    by_id = {item["id"]: item for item in doc["items"]}
    assert by_id["output-range"]["status"] == "warn"
    assert by_id["overfit-batch"]["status"] == "fail"
    assert by_id["overfit-batch"]["metrics"]["cause"] == "probabilities"
    assert code == 1


def test_the_installed_command_runs_stage_2_on_a_user_recipe(recipes):
    proc = subprocess.run([sys.executable, "-m", "recipe_tui.tui.cli", "--file", str(recipes), "check",
                           "overfit-batch", "batch-independence", "--recipe", "softmax", "--json"],
                          capture_output=True, text=True, timeout=110, cwd=recipes.parent)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert_shape(doc, "softmax", ["overfit-batch", "batch-independence"])
    assert [i["status"] for i in doc["items"]] == ["fail", "pass"]
    assert "overfit-batch" in proc.stderr  # progress goes to stderr, the document alone to stdout


@pytest.mark.parametrize("tables, says", [
    ('data = { source = "digits" }\nmodel = { factory = "no_such_models:net" }', "no module named 'no_such_models'"),
    ('data = { source = "imagefolder", path = "no-such-images" }\nmodel = { name = "mlp" }', "no such folder"),
])
def test_check_on_bad_configuration_is_one_sentence_and_exit_2(recipes, capsys, tables, says):
    """A factory module that does not exist or a missing image folder is bad configuration, not a check error."""
    path = recipes.parent / "bad.toml"
    path.write_text(recipes.read_text() + f'\n[recipe.bad]\ntask = "classification"\n{tables}\n')
    code = main(["--file", str(path), "check", "data-stats", "init-loss", "overfit-batch", "--recipe", "bad", "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""  # no result document: nothing was checked
    errors = [line for line in err.splitlines() if line.startswith("recipe-tui: ")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err  # progress lines may come before it
    assert says in errors[0] and "recipe.bad" in errors[0], errors[0]
    assert "Traceback" not in err and "\n" not in errors[0]
