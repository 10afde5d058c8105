"""Built-in data and models: shapes, ranges and contracts that recipes and checks rely on."""
import pytest
import torch

from recipe_tui.core.config import load_recipes, shipped_recipes_path
from recipe_tui.core.data import load_data, targets_of
from recipe_tui.core.data.names import VOCAB, decode
from recipe_tui.core.models import build_model


@pytest.fixture(scope="module")
def recipes():
    return load_recipes(shipped_recipes_path())


def test_digits_contract(recipes):
    splits = load_data(recipes.experiment("digits-mlp"))
    x, y = splits.train[0]
    assert x.dtype == torch.float32 and x.shape == (1, 8, 8) and y.dtype == torch.int64
    all_x = torch.cat([splits.train.x, splits.val.x])
    assert len(all_x) == 1797 and all_x.min() == 0 and all_x.max() == 1
    assert len(splits.val) == round(1797 * 0.2)
    assert sorted(torch.unique(targets_of(splits.train)).tolist()) == list(range(10))
    again = load_data(recipes.experiment("digits-cnn"))
    assert torch.equal(again.val.x, splits.val.x), "the split does not depend on anything but data.split_seed"


def test_names_contract(recipes):
    splits = load_data(recipes.experiment("names-lm"))
    x, y = splits.train.x, splits.train.y
    assert x.dtype == y.dtype == torch.int64 and x.shape[1] == 16 and splits.info.vocab == VOCAB
    keep = y != -1
    assert torch.equal(y[:, :-1][keep[:, :-1]], x[:, 1:][keep[:, :-1]]), "y is x shifted by one"
    assert (x[:, 0] == 0).all(), "every sequence starts with '.'"
    row = 0
    name = decode(x[row][1:keep[row].sum()])
    assert name.isalpha() and decode(y[row][keep[row]]) == name + "."


@pytest.mark.parametrize("recipe, name, shape", [
    ("digits-mlp", "linear", (5, 10)), ("digits-mlp", "mlp", (5, 10)), ("digits-cnn", "cnn", (5, 10)),
    ("names-lm", "char-mlp", (5, 16, 27)), ("names-lm", "char-transformer", (5, 16, 27)),
    ("digits-mlp", "resnet18", (5, 10)),
])
def test_builtin_models_output_shapes(recipes, recipe, name, shape):
    exp = recipes.experiment(recipe).replace("model", name=name)
    splits = load_data(exp)
    model = build_model(exp, splits.info).eval()
    x = splits.train.x[:5]
    if name == "resnet18":
        x = torch.nn.functional.interpolate(x, size=32)
    assert tuple(model(x).shape) == shape


@pytest.mark.parametrize("name", ["char-mlp", "char-transformer"])
def test_language_models_are_causal(recipes, name):
    exp = recipes.experiment("names-lm").replace("model", name=name)
    model = build_model(exp, load_data(exp).info).eval()
    x = torch.randint(0, 27, (2, 16))
    y = x.clone()
    y[:, 9:] = (y[:, 9:] + 1) % 27
    with torch.no_grad():
        assert torch.allclose(model(x)[:, :9], model(y)[:, :9], atol=1e-6)
        assert not torch.allclose(model(x)[:, 9:], model(y)[:, 9:])
