"""A torchvision dataset that cannot download (no network) or is not there (download = false): one
sentence that names the folder data.root resolves to and the files torchvision expects, exit code 2."""
from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from recipe_tui.core.config import shipped_recipes_path
from recipe_tui.tui.cli import main

pytestmark = pytest.mark.timeout(120)

RECIPE = '''
[recipe.offline]
task = "classification"
data = {{ source = "{source}", root = "mydata", download = {download} }}
model = {{ name = "mlp", width = 16 }}
'''


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("source, download, folder, names", [
    ("mnist", "true", "MNIST/raw", ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]),
    ("mnist", "false", "MNIST/raw", ["train-images-idx3-ubyte,", "t10k-labels-idx1-ubyte (unpacked)"]),
    ("fashion-mnist", "false", "FashionMNIST/raw", ["train-labels-idx1-ubyte,"]),
    ("cifar10", "true", "", ["cifar-10-python.tar.gz", "cifar-10-batches-py/", "data_batch_1", "batches.meta"]),
    ("cifar10", "false", "", ["cifar-10-batches-py/", "test_batch", "cifar-10-python.tar.gz"]),
])
def test_offline_dataset_says_which_files_to_put_where(source, download, folder, names, tmp_path, capsys, no_network):
    shipped = shipped_recipes_path().read_text()
    recipes = tmp_path / "recipes.toml"
    recipes.write_text(shipped[: shipped.index("[recipe.")] + RECIPE.format(source=source, download=download))
    code = main(["check", "data-stats", "--file", str(recipes), "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    (sentence,) = [line for line in err.splitlines() if line.startswith("recipe-tui: ")]  # after "… data-stats"
    assert code == 2 and "Traceback" not in err
    root = (tmp_path / "mydata").resolve()
    assert f"{root / folder if folder else root}/" in sentence and "recipes.toml:" in sentence
    assert all(name in sentence for name in names), sentence
    if download == "true":
        assert "could not be downloaded" in sentence and "name resolution" in sentence
    else:
        assert "data.download = false" in sentence
