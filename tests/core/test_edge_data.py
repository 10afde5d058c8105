"""Plausible user data at the edges: uint8 images, tiny splits, an empty split, a damaged history."""
import pytest
import torch
from torch.utils.data import TensorDataset

from recipe_tui.core.data import Splits
from recipe_tui.core.data.factory_data import infer_info


def test_integer_inputs_of_a_classifier_are_images_or_features_not_tokens():
    u8 = TensorDataset(torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8), torch.randint(0, 3, (10,)))
    assert infer_info(u8, "classification").kind == "image"
    table = TensorDataset(torch.randint(-50, 50, (10, 5)), torch.randn(10))
    assert infer_info(table, "regression").kind == "tabular"
    tokens = TensorDataset(torch.randint(0, 27, (10, 16)), torch.randint(0, 27, (10, 16)))
    assert infer_info(tokens, "language-model").kind == "sequence"


@pytest.mark.timeout(60)
def test_no_outliers_from_a_handful_of_samples_and_near_duplicates_with_an_empty_split():
    from recipe_tui.core.audit.duplicates import find_duplicates
    from recipe_tui.core.audit.outliers import find_outliers
    from recipe_tui.core.audit.scan import scan_splits

    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 1, 8, 8, generator=g)
    x[100] = x[5] + 1e-4
    y = torch.randint(0, 3, (200,), generator=g)
    info = infer_info(TensorDataset(x, y), "classification")
    tiny = scan_splits(Splits(TensorDataset(x[:3], y[:3]), TensorDataset(x[3:4], y[3:4]), info))
    assert find_outliers(tiny)["outliers"] == []
    splits = Splits(TensorDataset(x[:150], y[:150]), TensorDataset(x[150:], y[150:]), info,
                    test=TensorDataset(x[:0], y[:0]))
    groups = find_duplicates(scan_splits(splits))["groups"]
    assert [sorted((m["split"], m["index"]) for m in g) for g in groups] == [[("train", 5), ("train", 100)]]
