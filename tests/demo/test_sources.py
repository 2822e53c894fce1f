from __future__ import annotations

import gzip
import hashlib

import pytest

from ui.demo.sources import CROSSWOZ_VAL, SGD_FILES, STACKFAQ, demo_files


def test_sgd_url_pins_commit():
    assert SGD_FILES[0].url == (
        "https://raw.githubusercontent.com/google-research-datasets/"
        "dstc8-schema-guided-dialogue/e852981ae34990f4358979625854259302feaa78/"
        "train/dialogues_001.json"
    )
    assert SGD_FILES[0].accepted_paths == (
        "sgd/train/dialogues_001.json",
        "sgd/train/dialogues_001.json.gz",
    )


def test_crosswoz_and_stackfaq_urls():
    assert CROSSWOZ_VAL.url == (
        "https://raw.githubusercontent.com/thu-coai/CrossWOZ/"
        "df82c9fdff91b9b130f2d6b89110d3870ba6260e/data/crosswoz/val.json.zip"
    )
    assert CROSSWOZ_VAL.relative_path == "crosswoz/val.json.zip"
    assert STACKFAQ.url.endswith("/data/StackFAQ/stackExchange-FAQ.json")


def test_demo_files_selects_sgd_slice():
    files = demo_files(sgd_files=1)

    paths = [file.relative_path for file in files]
    assert paths == [
        "sgd/train/dialogues_001.json",
        "crosswoz/val.json.zip",
        "crosswoz/database/attraction_db.json",
        "crosswoz/database/restaurant_db.json",
        "crosswoz/database/hotel_db.json",
        "stackfaq/stackExchange-FAQ.json",
        "abcd/guidelines.json",
    ]


def test_demo_files_rejects_too_many_sgd_files():
    with pytest.raises(ValueError, match="sgd_files must be between 0 and 3, got 4"):
        demo_files(sgd_files=4)


@pytest.mark.slow
@pytest.mark.parametrize("file", demo_files(sgd_files=3), ids=lambda file: file.relative_path)
def test_registry_matches_local_copy(shared_data_dir, file):
    path = file.find_in(shared_data_dir)
    assert path is not None, f"{file.relative_path} missing from {shared_data_dir}"

    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()

    assert len(data) == file.size_bytes
    assert hashlib.sha256(data).hexdigest() == file.sha256
