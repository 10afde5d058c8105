"""The one-pass scan: hashes of canonical bytes, per-sample and per-channel statistics, bad samples."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from recipe_tui.core.audit.hashing import hash_rows
from recipe_tui.core.audit.scan import in_memory_arrays, scan_split, scan_splits
from recipe_tui.core.data import DataInfo, Splits, TensorPairs

pytestmark = pytest.mark.timeout(60)


class ItemByItem(Dataset):
    """A dataset the scan cannot read as arrays; items listed in ``broken`` raise."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, broken: tuple[int, ...] = ()) -> None:
        self.x, self.y, self.broken = x, y, set(broken)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        if i in self.broken:
            raise OSError(f"cannot read image {i}")
        return self.x[i], int(self.y[i])


def test_hash_is_sha256_of_canonical_bytes_and_ignores_the_sign_of_zero():
    x = torch.tensor([[0.0, 1.5], [-0.0, 1.5], [0.0, 1.25]])
    h = hash_rows(x)
    assert h[0] == h[1] and h[0] != h[2]
    expected = hashlib.sha256(b"<f4:2:" + np.array([0.0, 1.5], np.float32).tobytes()).digest()[:16]
    assert h[0].tobytes() == expected
    # float64 inputs hash as float32: the same image stored at another precision is the same input
    assert hash_rows(x.double())[2] == h[2]
    nan_a = torch.tensor([[float("nan"), 1.0]])
    nan_b = torch.tensor([[-float("nan"), 1.0]])
    assert hash_rows(nan_a)[0] == hash_rows(nan_b)[0]


def test_per_channel_stats_match_numpy_and_skip_non_finite_samples():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 3, 5, 4, generator=g) * torch.tensor([1.0, 2.0, 5.0]).view(1, 3, 1, 1)
    y = torch.randint(0, 4, (300,), generator=g)
    x[7, 1, 2, 2] = float("nan")
    x[42, 0, 0, 0] = float("inf")
    sc = scan_split("train", TensorPairs(x, y), "image")
    assert sorted(sc.nonfinite) == [(7, "nan"), (42, "inf")]
    ok = np.ones(300, bool)
    ok[[7, 42]] = False
    ref = x.numpy()[ok].transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64)
    s = sc.channels.summary()
    np.testing.assert_allclose(s["mean"], ref.mean(1), rtol=1e-5)
    np.testing.assert_allclose(s["std"], ref.std(1), rtol=1e-4)
    np.testing.assert_allclose(s["min"], ref.min(1), atol=1e-6)  # the summary keeps 6 decimals
    np.testing.assert_allclose(s["max"], ref.max(1), atol=1e-6)
    # per-sample statistics: NaN rows for the bad samples, exact values for the others
    assert np.isnan(sc.stats[[7, 42]]).all() and sc.finite.sum() == 298
    mean_col = sc.stat_names.index("mean")
    np.testing.assert_allclose(sc.stats[3, mean_col], x[3].double().mean().item(), rtol=1e-6)
    assert sc.source == "memory" and sc.shapes == {"3x5x4": 300} and sc.dtype == "float32"


def test_item_by_item_path_agrees_with_the_array_path_and_records_failures():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(1200, 1, 6, 6, generator=g), torch.randint(0, 3, (1200,), generator=g)
    fast = scan_split("train", TensorPairs(x, y), "image")
    slow = scan_split("train", ItemByItem(x, y, broken=(5, 900)), "image")
    assert slow.source == "loaded" and [i for i, _ in slow.failed] == [5, 900]
    assert "cannot read image 5" in slow.failed[0][1]
    keep = np.setdiff1d(np.arange(1200), [5, 900])
    assert np.array_equal(slow.index, keep)
    assert np.array_equal(slow.hashes, fast.hashes[keep])
    np.testing.assert_allclose(slow.stats, fast.stats[keep], rtol=1e-6)
    np.testing.assert_allclose(slow.emb, fast.emb[keep], rtol=1e-6)
    assert np.array_equal(slow.y, y.numpy()[keep])


def test_in_memory_arrays_sees_through_subsets_and_tensor_datasets_and_torchvision_storage():
    x, y = torch.arange(40.0).view(10, 1, 2, 2), torch.arange(10)
    sub = in_memory_arrays(Subset(TensorDataset(x, y), [3, 1, 7]))
    assert sub is not None and sub[2] == "memory"
    assert torch.equal(sub[0], x[[3, 1, 7]]) and torch.equal(sub[1], y[[3, 1, 7]])

    class FakeCIFAR(Dataset):  # stands in for torchvision.datasets.CIFAR10: NHWC uint8 .data
        def __init__(self):
            self.data = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
            self.targets = [0, 1, 0, 1]

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.from_numpy(self.data[i]).permute(2, 0, 1).float() / 255, self.targets[i]

    FakeCIFAR.__module__ = "torchvision.datasets.cifar"
    arrays = in_memory_arrays(FakeCIFAR())
    assert arrays is not None and arrays[2] == "stored" and tuple(arrays[0].shape) == (4, 3, 2, 2)
    assert torch.equal(arrays[0][1, :, 0, 0], torch.tensor([12, 13, 14], dtype=torch.uint8))
    sc = scan_split("train", FakeCIFAR(), "image")
    assert sc.source == "stored" and sc.model_input is not None  # what the model sees, sampled
    np.testing.assert_allclose(sc.model_input.summary()["max"], [45 / 255, 46 / 255, 47 / 255], rtol=1e-5)


def test_sequences_get_lengths_vocabulary_coverage_and_out_of_range_tokens():
    x = torch.tensor([[0, 1, 2, 0], [0, 3, 0, 0], [0, 1, 9, 0]])
    y = torch.tensor([[1, 2, 0, -1], [3, 0, -1, -1], [1, 9, 0, -1]])
    info = DataInfo(kind="sequence", input_shape=(4,), num_classes=5, vocab=".abcd")
    scans = scan_splits(Splits(train=TensorPairs(x, y), val=TensorPairs(x[:1], y[:1]), info=info))
    sc = scans["train"]
    assert sc.lengths.tolist() == [3, 2, 3]
    assert [i for i, _ in sc.out_of_range] == [2]  # token 9 is outside a vocabulary of 5
    assert "id 9 at position 2 (a real position)" in sc.out_of_range[0][1]
    assert sc.tokens.tolist() == [3, 2, 1, 1, 0]  # counted at real (non-padding) positions only
    assert sc.emb is None  # no near-duplicate distance for token ids
    assert sc.stats[:, sc.stat_names.index("distinct")].tolist() == [3, 2, 3]


def test_pil_images_of_different_sizes_share_one_embedding_grid():
    from PIL import Image

    rng = np.random.default_rng(3)
    arrays = [rng.integers(0, 256, size=(30 + 10 * (i % 2), 40, 3), dtype=np.uint8) for i in range(6)]
    arrays[5] = arrays[3]  # an exact copy

    class Pictures(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return Image.fromarray(arrays[i]), i % 2

    sc = scan_split("train", Pictures(), "image")
    assert sc.shapes == {"3x30x40": 3, "3x40x40": 3}
    assert sc.emb.shape[0] == 6 and np.isfinite(sc.emb).all()  # every size pooled to the same grid
    assert sc.hashes[3] == sc.hashes[5] and len(set(sc.hashes.tolist())) == 5
    np.testing.assert_allclose(sc.stats[0, sc.stat_names.index("mean")], arrays[0].mean(), rtol=1e-6)
