"""Registry of the public dataset files that ``supportbot demo`` uses.

Files are laid out as in a local datasets folder: one folder per dataset, original file
names below it, for example ``sgd/train/dialogues_001.json``. Each entry pins the
GitHub repository commit it is downloaded from and the SHA-256 of the original bytes.
A local copy may hold a gzipped SGD file (``dialogues_001.json.gz``) in place of the
original; :meth:`DemoFile.find_in` accepts both names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

GITHUB_RAW_ROOT = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class DemoFile:
    """One public file used by the demo.

    Attributes:
        dataset: Dataset folder name, for example ``"sgd"``.
        path: Original file path inside the dataset folder, with ``/`` separators.
        repository: GitHub ``owner/name`` the file is published in.
        commit: Full commit hash the download URL is pinned to.
        repository_path: Path of the file inside the repository.
        size_bytes: Size of the original file.
        sha256: SHA-256 of the original file, in hex.
        license: Licence of the dataset as its repository states it.
        gzip_accepted: Whether a gzipped copy (``path`` + ``.gz``) is accepted as well.
    """

    dataset: str
    path: str
    repository: str
    commit: str
    repository_path: str
    size_bytes: int
    sha256: str
    license: str
    gzip_accepted: bool = False

    @property
    def relative_path(self) -> str:
        """Path below the datasets folder, for example ``sgd/train/dialogues_001.json``."""
        return f"{self.dataset}/{self.path}"

    @property
    def accepted_paths(self) -> tuple[str, ...]:
        """Relative paths a local copy may use, the original name first."""
        if self.gzip_accepted:
            return (self.relative_path, f"{self.relative_path}.gz")
        return (self.relative_path,)

    @property
    def url(self) -> str:
        """Download URL on GitHub, pinned to ``commit``."""
        return f"{GITHUB_RAW_ROOT}/{self.repository}/{self.commit}/{self.repository_path}"

    def find_in(self, root: Path) -> Path | None:
        """Return the existing copy of this file under ``root``, or None."""
        for relative_path in self.accepted_paths:
            candidate = root / relative_path
            if candidate.is_file():
                return candidate
        return None


_SGD_REPOSITORY = "google-research-datasets/dstc8-schema-guided-dialogue"
_SGD_COMMIT = "e852981ae34990f4358979625854259302feaa78"
_CROSSWOZ_REPOSITORY = "thu-coai/CrossWOZ"
_CROSSWOZ_COMMIT = "df82c9fdff91b9b130f2d6b89110d3870ba6260e"


def _sgd_file(number: int, size_bytes: int, sha256: str) -> DemoFile:
    name = f"train/dialogues_{number:03d}.json"
    return DemoFile(
        dataset="sgd",
        path=name,
        repository=_SGD_REPOSITORY,
        commit=_SGD_COMMIT,
        repository_path=name,
        size_bytes=size_bytes,
        sha256=sha256,
        license="CC BY-SA 4.0",
        gzip_accepted=True,
    )


def _crosswoz_file(path: str, size_bytes: int, sha256: str) -> DemoFile:
    return DemoFile(
        dataset="crosswoz",
        path=path,
        repository=_CROSSWOZ_REPOSITORY,
        commit=_CROSSWOZ_COMMIT,
        repository_path=f"data/crosswoz/{path}",
        size_bytes=size_bytes,
        sha256=sha256,
        license="Apache-2.0",
    )


# English task-oriented dialogs (restaurants and media); see build_demo_corpus for why
# the demo imports only the first files.
SGD_FILES = (
    _sgd_file(1, 3_128_575, "5ce28a6e656bc88c1da29c983d243d5a81eb37de92698da3864d1cf02894ca24"),
    _sgd_file(2, 2_233_395, "56a06f9762593b27f5b34225de4ce37da5e83c9c5747e56bca2899f147d88b3e"),
    _sgd_file(3, 1_804_298, "aae3d8d141c8c36bc5268ca573044b4e82d4534947c169d951a1f229b9852029"),
)
CROSSWOZ_VAL = _crosswoz_file(
    "val.json.zip", 1_368_203, "b2b717990f6f0a1c98daaf5dc465e61d42f7de69c0d31e88e674275b1f34c94c"
)
CROSSWOZ_DATABASES = {
    "attraction": _crosswoz_file(
        "database/attraction_db.json",
        504_823,
        "89b0db1a11ce63233e822ead70c30522d5b7715542307b9235d8c4d69d18929d",
    ),
    "restaurant": _crosswoz_file(
        "database/restaurant_db.json",
        1_335_662,
        "df3827ac9bd0536d4c7c92aa41c7071b240a8c85d8a24fbd6b8b25753382d296",
    ),
    "hotel": _crosswoz_file(
        "database/hotel_db.json",
        1_237_003,
        "5746b3846f285c82dd7640b50d3ac21f2ae929f52fdca2b603e452585a4a694e",
    ),
}
STACKFAQ = DemoFile(
    dataset="stackfaq",
    path="stackExchange-FAQ.json",
    repository="ML-Recipes/BERT-FAQ",
    commit="3c184030c1819b462e29f665465ab4968657440e",
    repository_path="data/StackFAQ/stackExchange-FAQ.json",
    size_bytes=472_587,
    sha256="0ae2af4f8edae91f2dd37c557e2468d412b21d63f534ddc461118434f066f075",
    # The data README states no licence; the threads come from StackExchange (CC BY-SA).
    license="unstated (StackExchange content, CC BY-SA)",
)
ABCD_GUIDELINES = DemoFile(
    dataset="abcd",
    path="guidelines.json",
    repository="asappresearch/abcd",
    commit="6b8700ce67c6b37b062dd7a60abc76d7ef832a97",
    repository_path="data/guidelines.json",
    size_bytes=95_293,
    sha256="9264557941df24fe075138a632a2345172971573124a354ccb2ceee2a12e4c2a",
    license="MIT",
)


def demo_files(*, sgd_files: int = 2) -> tuple[DemoFile, ...]:
    """Return the files the demo needs when it imports the first ``sgd_files`` SGD files.

    Raises:
        ValueError: If ``sgd_files`` is outside 0 to ``len(SGD_FILES)``.
    """
    if not 0 <= sgd_files <= len(SGD_FILES):
        raise ValueError(
            f"sgd_files must be between 0 and {len(SGD_FILES)}, got {sgd_files}: the demo "
            f"registry lists {len(SGD_FILES)} SGD dialogue files"
        )
    return (
        *SGD_FILES[:sgd_files],
        CROSSWOZ_VAL,
        *CROSSWOZ_DATABASES.values(),
        STACKFAQ,
        ABCD_GUIDELINES,
    )
