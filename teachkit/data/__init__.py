"""Data (lesson 08): from a folder of files to batches, and where the folders come from. Read in this order:

- `files`: listing image files (`get_files`) and opening them;
- `block`: the data block API: `ItemList` -> `SplitData` -> labelled (`LabeledData`, processors) -> `DataBunch`;
- `databunch`: the training and validation DataLoaders;
- `datasets`: downloading and extracting into a cache (`untar_data`, `URLs`), Imagenette's classes;
- `lookalike`: the generated Imagenette-like set used offline;
- `imagenette`: the lessons' Imagenette (`imagenette()`, real or generated) and its input pipeline (`imagenette_dls`).
"""
from .block import (CategoryProcessor, ImageList, ItemList, LabeledData, ListContainer, Processor, SplitData,
                    channel_stats, grandparent_splitter, imagenette_stats, label_by_func, norm_imagenette,
                    normalize_bytes, normalize_chan, parent_labeler, random_splitter, split_by_func)
from .databunch import (DataBunch, close_workers, databunchify, default_num_workers, get_dls, reseed_worker_tfms,
                        vocab_of)
from .files import (ImageLoadError, get_files, image_extensions, normalize_extensions, open_image, to_8bit)
from .datasets import (CacheWriteError, CorruptArchiveError, DownloadError, IMAGENETTE_CLASSES, URLs, archive_name,
                       data_dir, dataset_name, download_url, smoke_mode, untar_data, valid_folder_name)
from .lookalike import is_synthetic, make_imagenette_like

__all__ = ["DataBunch", "close_workers", "databunchify", "default_num_workers", "get_dls", "reseed_worker_tfms",
           "vocab_of", "ListContainer", "ItemList", "ImageList", "grandparent_splitter", "random_splitter",
           "split_by_func", "SplitData", "parent_labeler", "Processor", "CategoryProcessor", "LabeledData",
           "label_by_func", "normalize_chan", "normalize_bytes", "channel_stats", "imagenette_stats",
           "norm_imagenette", "image_extensions", "normalize_extensions", "get_files", "to_8bit", "ImageLoadError",
           "open_image", "URLs", "IMAGENETTE_CLASSES", "DownloadError", "CorruptArchiveError", "CacheWriteError",
           "smoke_mode", "data_dir", "valid_folder_name", "download_url", "untar_data", "archive_name",
           "dataset_name", "make_imagenette_like", "is_synthetic"]
