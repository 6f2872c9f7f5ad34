"""Input sizes and batch size taken from the training images: the settings a config leaves at 0.

`fill_from_data` replaces each 0 (the `images` preset's, for a folder of photos of any size and
count) from the median shorter side of the training images and their number: the crop is 0.875 of
it (the paper's 224 of 256), eval_resize and scale_min crop / 0.875, scale_max 1.25 x scale_min, and
the batch the largest power of two <= 128 giving >= 4 steps an epoch (a folder of 40 images trains
rather than failing). The same data gives the same numbers, so a resumed run matches its checkpoint.
"""

from __future__ import annotations

import copy
import statistics

from rectifiers import decode
from rectifiers.config import RunConfig
from rectifiers.data import FileDataset, ImageDataset, InMemoryDataset, open_dataset

SIZE_KEYS = ("crop", "scale_min", "scale_max", "eval_resize")
CROP_FRACTION = 0.875  # crop / shorter side: 224 / 256 in the paper
SCALE_JITTER = 1.25  # scale_max / scale_min
CROP_RANGE = (16, 64)  # small nets on a CPU: larger photos are scaled down
MAX_BATCH = 128
MIN_STEPS_PER_EPOCH = 4
_PROBED_FILES = 2000  # headers read to estimate the median of a large mixed-size folder


def fill_from_data(config: RunConfig, train_set: ImageDataset | None = None) -> RunConfig:
    """A copy of `config` whose settings left at 0 hold values measured on its training images
    (`train_set`, or the train split of `config.data.spec`)."""
    if config.train.batch_size != 0 and all(getattr(config.data, key) != 0 for key in SIZE_KEYS):
        return config  # nothing left to the data
    if train_set is None:
        train_set = open_dataset(config.data.spec, "train")
    filled = copy.deepcopy(config)
    d = filled.data
    d.crop = d.crop or suggested_crop(median_shorter_side(train_set))
    d.scale_min = d.scale_min or round(d.crop / CROP_FRACTION)
    d.scale_max = d.scale_max or round(SCALE_JITTER * d.scale_min)
    d.eval_resize = d.eval_resize or round(d.crop / CROP_FRACTION)
    if filled.train.batch_size == 0:
        filled.train.batch_size = suggested_batch(len(train_set))
    filled.validate()
    return filled


def suggested_crop(shorter_side: float) -> int:
    """The training crop for a typical shorter side of `shorter_side` px: a multiple of 8 in CROP_RANGE."""
    lo, hi = CROP_RANGE
    return min(hi, max(lo, 8 * round(CROP_FRACTION * shorter_side / 8)))


def suggested_batch(num_images: int) -> int:
    """The largest power of two <= MAX_BATCH with at least MIN_STEPS_PER_EPOCH full batches (>= 1)."""
    batch = 1
    while batch * 2 <= MAX_BATCH and batch * 2 * MIN_STEPS_PER_EPOCH <= num_images:
        batch *= 2
    return batch


def median_shorter_side(ds: ImageDataset) -> float:
    """The median shorter side of the images of `ds` (a sample of the headers of a large file set)."""
    if isinstance(ds, InMemoryDataset):
        return float(min(ds.image_size))
    if not isinstance(ds, FileDataset):
        raise ValueError(f"{ds.source}: cannot measure the image sizes of a {type(ds).__name__}")
    step = max(1, len(ds.names) // _PROBED_FILES)
    names = [ds.names[i] for i in range(0, len(ds.names), step)]
    sizes = decode.probe_names(ds.store, names, ds.max_pixels)
    sides = [min(s) for s in sizes if not isinstance(s, str)]
    if not sides:
        raise ValueError(f"{ds.source}: no readable image to measure")
    return float(statistics.median(sides))
