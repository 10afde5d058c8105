"""Security: recipe names cannot write outside the runs dir, a run dir is data and never code, checkpoints
load with weights_only, and files follow the user's umask (issue 14, hole 6)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from recipe_tui.core.config import ConfigError, experiment_from_dict, load_recipes
from recipe_tui.core.paths import inside
from recipe_tui.core.rundir import RunDir
from recipe_tui.tui.cli import main

ROOT = Path(__file__).resolve().parents[2]

BODY = 'task = "classification"\ndata = { source = "digits" }\nmodel = { name = "linear" }\ntrain = { steps = 3 }\n'


@pytest.mark.parametrize("name", ["/tmp/recipe-tui-escape", "../x", "..", ".", "a/b", ".cache", "a\\\\b", "", "x" * 101])
def test_a_recipe_name_that_is_not_one_safe_path_component_is_refused(tmp_path, capsys, name):
    (tmp_path / "recipes.toml").write_text(f'[recipe."{name}"]\n' + BODY)
    runs = tmp_path / "runs"
    code = main(["train", "--file", str(tmp_path / "recipes.toml"), "--runs", str(runs)])
    err = capsys.readouterr().err
    assert code == 2
    assert "recipes.toml:1:" in err and "is not allowed" in err and "Traceback" not in err
    assert not runs.exists() and not Path("/tmp/recipe-tui-escape").exists()


def test_names_people_use_are_accepted(tmp_path):
    (tmp_path / "recipes.toml").write_text("".join(f'[recipe.{n}]\n' + BODY for n in
                                                   ("digits-mlp", '"resnet50_v1.5"', "A1", '"2024.run"')))
    assert list(load_recipes(tmp_path / "recipes.toml").experiments) == ["digits-mlp", "resnet50_v1.5", "A1", "2024.run"]


def test_a_config_json_with_a_path_for_a_name_is_refused():
    with pytest.raises(ConfigError, match="is not allowed"):
        experiment_from_dict({"name": "../../etc", "data": {"source": "digits"}, "model": {"name": "mlp"}})


def test_writes_through_a_symlink_out_of_the_runs_dir_are_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "digits-mlp").symlink_to(outside)
    with pytest.raises(ConfigError, match="outside the runs dir"):
        RunDir.create(runs, "digits-mlp")
    assert list(outside.iterdir()) == []
    assert inside(runs, "other", "x") == runs / "other" / "x"


EVIL_FACTORY = "os:system"


def _evil_run(tmp_path: Path, marker: Path) -> Path:
    """A finished digits run whose config.json was edited to name a shell command as its model factory."""
    (tmp_path / "recipes.toml").write_text("[recipe.small]\n" + BODY)
    assert main(["train", "--file", str(tmp_path / "recipes.toml"), "--runs", str(tmp_path / "runs")]) == 0
    run = next((tmp_path / "runs" / "small").iterdir())
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"] = {**cfg["model"], "name": None, "factory": EVIL_FACTORY, "kwargs": {"command": f"touch {marker}"}}
    cfg["base_dir"] = str(tmp_path / "attacker")
    (run / "config.json").write_text(json.dumps(cfg))
    return run


def test_the_browsers_loss_pass_never_runs_code_a_run_dir_names(tmp_path):
    from recipe_tui.tui.bridge import losses_of_last_run

    marker = tmp_path / "pwned"
    _evil_run(tmp_path, marker)
    exp = load_recipes(tmp_path / "recipes.toml").experiment("small")
    with pytest.raises(ConfigError, match="a run dir is data, never code"):
        losses_of_last_run(exp, tmp_path / "runs", None, lambda *a: None)
    assert not marker.exists()


def test_resume_never_runs_code_a_run_dir_names(tmp_path, capsys):
    marker = tmp_path / "pwned"
    run = _evil_run(tmp_path, marker)
    capsys.readouterr()
    code = main(["train", "--file", str(tmp_path / "recipes.toml"), "--resume", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and "never code" in err and EVIL_FACTORY in err
    assert not marker.exists()


def test_every_torch_load_uses_weights_only():
    loads = []
    for folder in ("core", "tui", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for m in re.finditer(r"torch\.load\((.*?)\)", path.read_text(), re.S):
                loads.append((path.name, "weights_only=True" in m.group(1)))
    assert loads, "the grep found the checkpoint loader"
    assert all(ok for _, ok in loads), [name for name, ok in loads if not ok]


def test_run_dirs_and_caches_follow_the_umask(tmp_path):
    from recipe_tui.core.audit.cache import AuditCache

    old = os.umask(0o027)
    try:
        (tmp_path / "recipes.toml").write_text("[recipe.small]\n" + BODY.replace("steps = 3", "steps = 3, checkpoint_every = 1"))
        assert main(["train", "--file", str(tmp_path / "recipes.toml"), "--runs", str(tmp_path / "runs")]) == 0
        AuditCache(tmp_path / "runs" / ".cache" / "audit").put("k", {"a": 1})
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"config.json", "events.jsonl", "metrics.csv", "checkpoint.pt", "k.json"}
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o640)}
    dirs = [p for p in (tmp_path / "runs").rglob("*") if p.is_dir()]
    assert {oct(p.stat().st_mode & 0o777) for p in dirs} == {oct(0o750)}
