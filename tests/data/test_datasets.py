import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import SHAPE
from labelsky.data.datasets import ImageDataset
from labelsky.data.io import open_dataset


def test_length_shapes_dtypes(tiny_dataset):
    path, imgs, cols = tiny_dataset
    ds = ImageDataset(path)  # a path works as well as an opened dataset
    assert len(ds) == 12
    image, label = ds[5]
    assert image.dtype == torch.float32 and tuple(image.shape) == SHAPE
    assert label.dtype == torch.int64 and label.ndim == 0
    np.testing.assert_array_equal(image.numpy(), imgs[5])
    assert int(label) == int(cols["label"][5])


def test_split_and_indices(tiny_dataset):
    path, imgs, cols = tiny_dataset
    lds = open_dataset(path)
    splits = np.asarray(cols["split"])
    train = ImageDataset(lds, split="train")
    assert len(train) == int((splits == "train").sum()) == 3
    assert train.indices.tolist() == np.flatnonzero(splits == "train").tolist()
    both = ImageDataset(lds, split=["val", "test"])
    assert sorted(both.indices.tolist()) == np.flatnonzero(np.isin(splits, ["val", "test"])).tolist()
    sub = ImageDataset(lds, indices=[9, 2, 4, 8], split="train")  # train rows are 0, 4, 8
    assert sub.indices.tolist() == [4, 8]
    np.testing.assert_array_equal(sub[1][0].numpy(), imgs[8])
    assert len(ImageDataset(lds, split="nosuch")) == 0
    with pytest.raises(IndexError, match="indices must lie in"):
        ImageDataset(lds, indices=[0, 12])


def test_transform_and_meta(tiny_dataset):
    path, imgs, cols = tiny_dataset
    ds = ImageDataset(path, indices=[3, 7], transform=lambda x: x[:, 2:6, 2:6] * 2, return_meta=True)
    item = ds[1]
    assert set(item) == {"image", "label", "index", "id_str"}
    assert item["index"] == 7 and item["id_str"] == cols["id_str"][7]
    assert item["image"].dtype == torch.float32 and tuple(item["image"].shape) == (3, 4, 4)
    np.testing.assert_allclose(item["image"].numpy(), imgs[7][:, 2:6, 2:6] * 2)
    ds_t = ImageDataset(path, transform=lambda x: torch.from_numpy(x).double())
    assert ds_t[0][0].dtype == torch.float32


def test_dataloader_workers_match_single_process(tiny_dataset):
    path, _, _ = tiny_dataset
    ds = ImageDataset(path, split=["train", "val", "test"])
    ds.dataset.image(0)  # an open HDF5 handle in the parent must not break the workers

    def collect(num_workers):
        dl = DataLoader(ds, batch_size=4, shuffle=False, num_workers=num_workers)
        images, labels = zip(*dl)
        return torch.cat(images), torch.cat(labels)

    im0, lb0 = collect(0)
    im2, lb2 = collect(2)
    assert im0.shape == (9, *SHAPE) and lb0.dtype == torch.int64
    assert torch.equal(im0, im2) and torch.equal(lb0, lb2)
