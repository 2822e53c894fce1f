"""Locating the demo's public dataset files, downloading the missing ones.

Example:
    >>> root = ensure_demo_files(None, Path("~/.local/share/supportbot/datasets").expanduser())
    >>> corpus = build_demo_corpus(root, out_dir)
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from filelock import FileLock
from tqdm import tqdm

from ui.demo.sources import DemoFile, demo_files

logger = logging.getLogger(__name__)

DATA_DIR_HINT = (
    "set SUPPORTBOT_DATA_DIR to a local copy of the datasets folder (one folder per "
    "dataset, original file names)"
)
_CHUNK_BYTES = 1 << 16


class DemoDataError(RuntimeError):
    """A demo data file is missing and could not be downloaded or verified."""


def ensure_demo_files(
    data_dir: Path | None,
    cache_dir: Path,
    *,
    base_urls: Sequence[str] | None = None,
    files: Sequence[DemoFile] | None = None,
    timeout_s: float = 30.0,
    attempts: int = 3,
    retry_delay_s: float = 1.0,
    show_progress: bool = True,
) -> Path:
    """Return a datasets folder that contains every demo file, downloading what is missing.

    If ``data_dir`` contains every file (an SGD file may be gzipped), it is returned as it
    is. Otherwise each file is looked up in ``cache_dir``, copied there from
    ``data_dir`` if only that has it, or downloaded into it, and ``cache_dir`` is
    returned. A download is written to a temporary file, checked against the size and
    SHA-256 in the registry, and only then renamed into place, so an interrupted run
    leaves no partial file behind. A lock file serialises concurrent calls on one cache.

    Args:
        data_dir: Local datasets folder, or None.
        cache_dir: Folder the missing files are downloaded into, laid out like
            ``data_dir``. Created if needed.
        base_urls: Mirror roots laid out like ``data_dir`` (a file is fetched from
            ``<root>/<dataset>/<path>``, then ``<path>.gz`` where a gzipped copy is
            accepted), tried in order. None downloads from GitHub at the pinned commits.
        files: Files to provide; None means :func:`demo_files` with its defaults.
        timeout_s: Connect and read timeout of each request, in seconds.
        attempts: Tries per URL for network errors and HTTP 5xx responses (at least 1).
        retry_delay_s: Wait before the first retry, doubled for each further retry.
        show_progress: Show a tqdm progress bar per download on stderr.

    Returns:
        ``data_dir`` if it is complete, else ``cache_dir``.

    Raises:
        ValueError: If ``attempts`` is below 1.
        DemoDataError: If a file cannot be downloaded (offline, HTTP error) or does not
            match its size or checksum.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    files = tuple(demo_files() if files is None else files)
    if data_dir is not None:
        absent = [file.relative_path for file in files if file.find_in(data_dir) is None]
        if not absent:
            logger.info("Using demo data files=%d data_dir=%s", len(files), data_dir)
            return data_dir
        logger.warning(
            "Demo data folder is incomplete data_dir=%s missing=%s; the missing files are "
            "fetched into %s. Point SUPPORTBOT_DATA_DIR at a complete copy to avoid this",
            data_dir,
            ", ".join(absent),
            cache_dir,
        )

    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(cache_dir / ".download.lock"):
        missing = [file for file in files if file.find_in(cache_dir) is None]
        if missing:
            _log_plan(missing, cache_dir, base_urls)
        with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
            downloader = _Downloader(client, attempts, retry_delay_s, show_progress)
            for file in missing:
                local_copy = file.find_in(data_dir) if data_dir is not None else None
                if local_copy is not None:
                    _copy_atomically(local_copy, cache_dir / local_copy.relative_to(data_dir))
                    continue
                downloader.download(file, cache_dir, base_urls)
    return cache_dir


def _log_plan(missing: list[DemoFile], cache_dir: Path, base_urls: Sequence[str] | None) -> None:
    total_mb = sum(file.size_bytes for file in missing) / 1e6
    source = ", ".join(base_urls) if base_urls else "GitHub (raw.githubusercontent.com)"
    logger.info(
        "Downloading demo data files=%d size_mb=%.1f from=%s into=%s",
        len(missing),
        total_mb,
        source,
        cache_dir,
    )


def _copy_atomically(source: Path, target: Path) -> None:
    logger.info("Copying demo data file from=%s to=%s", source, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".part-", delete=False) as part:
        temporary = Path(part.name)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


class _NotFoundError(Exception):
    """The server returned 404 or another 4xx status, so retrying cannot help."""


class _Downloader:
    def __init__(
        self, client: httpx.Client, attempts: int, retry_delay_s: float, show_progress: bool
    ) -> None:
        self.client = client
        self.attempts = attempts
        self.retry_delay_s = retry_delay_s
        self.show_progress = show_progress

    def download(self, file: DemoFile, cache_dir: Path, base_urls: Sequence[str] | None) -> None:
        """Download ``file`` from the first candidate URL that has it, verified."""
        failures = []
        for url, relative_path in _candidate_urls(file, base_urls):
            target = cache_dir / relative_path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                temporary = self._download_with_retries(url, target)
            except _NotFoundError as error:
                failures.append(f"{url} ({error})")
                continue
            except httpx.HTTPError as error:
                raise DemoDataError(
                    f"failed to download {file.relative_path} from {url}: {error!r}. Check "
                    f"the network connection, or {DATA_DIR_HINT}"
                ) from error
            try:
                is_gzip_copy = relative_path != file.relative_path
                _verify(temporary, file, url, is_gzip_copy=is_gzip_copy)
                os.replace(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)
            return
        raise DemoDataError(
            f"failed to download {file.relative_path}: not found at {'; '.join(failures)}. "
            f"Check the mirror URL, or {DATA_DIR_HINT}"
        )

    def _download_with_retries(self, url: str, target: Path) -> Path:
        for attempt in range(1, self.attempts + 1):
            try:
                return self._stream_to_temporary_file(url, target)
            except (httpx.TransportError, httpx.HTTPStatusError) as error:
                if attempt == self.attempts:
                    raise
                delay_s = self.retry_delay_s * 2 ** (attempt - 1)
                logger.warning(
                    "Download failed url=%s attempt=%d/%d error=%r; retrying in %.1f s",
                    url,
                    attempt,
                    self.attempts,
                    error,
                    delay_s,
                )
                time.sleep(delay_s)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _stream_to_temporary_file(self, url: str, target: Path) -> Path:
        """Download ``url`` into a temporary file beside ``target`` and return its path."""
        logger.info("Downloading %s from %s", target.name, url)
        with self.client.stream("GET", url) as response:
            if 400 <= response.status_code < 500:
                raise _NotFoundError(f"HTTP {response.status_code}")
            response.raise_for_status()
            total = int(response.headers.get("Content-Length", 0)) or None
            return _write_temporary_file(response, target, total, self.show_progress)


def _candidate_urls(file: DemoFile, base_urls: Sequence[str] | None) -> list[tuple[str, str]]:
    """Return (URL, relative path to save as) pairs in the order they are tried."""
    if not base_urls:
        return [(file.url, file.relative_path)]
    return [
        (f"{base_url.rstrip('/')}/{relative_path}", relative_path)
        for base_url in base_urls
        for relative_path in file.accepted_paths
    ]


def _write_temporary_file(
    response: httpx.Response, target: Path, total: int | None, show_progress: bool
) -> Path:
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".part-", delete=False) as part:
        temporary = Path(part.name)
        try:
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=target.name,
                disable=not show_progress,
            ) as progress:
                for chunk in response.iter_bytes(_CHUNK_BYTES):
                    part.write(chunk)
                    progress.update(len(chunk))
        except BaseException:
            part.close()
            temporary.unlink(missing_ok=True)
            raise
    return temporary


def _verify(path: Path, file: DemoFile, url: str, *, is_gzip_copy: bool) -> None:
    """Check the size and SHA-256 of the original bytes, decompressing a gzipped copy."""
    digest = hashlib.sha256()
    size_bytes = 0
    opener = gzip.open if is_gzip_copy else open
    try:
        with opener(path, "rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                digest.update(chunk)
                size_bytes += len(chunk)
    except (OSError, EOFError) as error:
        raise DemoDataError(
            f"downloaded {file.relative_path} from {url} is not a valid gzip file ({error}). "
            f"Check the mirror, or {DATA_DIR_HINT}"
        ) from error

    if size_bytes != file.size_bytes or digest.hexdigest() != file.sha256:
        raise DemoDataError(
            f"downloaded {file.relative_path} from {url} does not match the expected file: "
            f"{size_bytes} bytes with SHA-256 {digest.hexdigest()[:12]}..., expected "
            f"{file.size_bytes} bytes with SHA-256 {file.sha256[:12]}.... The download may be "
            f"truncated or the mirror may serve another version; try again, or {DATA_DIR_HINT}"
        )
