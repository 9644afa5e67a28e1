"""Reaching the Hugging Face Hub: fail in seconds, with the fix, when it cannot be reached.

Without a route to the Hub, ``datasets.load_dataset`` retries for about half a minute before it raises an
error that does not say what to do instead. Every loader of this package that may go to the Hub calls
:func:`require_hub` first: when the Hub's host cannot be reached within :data:`CONNECT_TIMEOUT_S` seconds it
raises one line naming what was being loaded and how to do without the Hub. With ``HF_HUB_OFFLINE`` (or
``HF_DATASETS_OFFLINE``) set it does not probe: the libraries then read their cache and fail at once when
the data is not there, and the caller turns that error into the same kind of line.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from procure_trl.errors import UserError, first_line

__all__ = ["CONNECT_TIMEOUT_S", "hub_operation", "hub_unreachable_reason", "offline_variable", "require_hub",
           "require_hub_push", "require_local_or_hub", "in_hub_cache"]

#: How long a TCP connection to the Hub may take before it counts as unreachable.
CONNECT_TIMEOUT_S = 2.0
_TRUTHY = {"1", "true", "yes", "on"}


def offline_variable() -> str | None:
    """The name of the set variable that puts the Hugging Face libraries offline, or ``None``."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUTHY:
            return name
    return None


def hub_unreachable_reason(timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why the Hub cannot be reached now (``None`` when a TCP connection to its host succeeds).

    The endpoint is ``huggingface_hub``'s (``HF_ENDPOINT`` included), so a mirror or a test server counts.
    """
    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return None
    except OSError as err:
        return f"{url.hostname}:{port} cannot be reached ({err.strerror or type(err).__name__})"


def require_hub(what: str, fix: str) -> None:
    """Raise a one-line :class:`UserError` when the Hub cannot be reached to load ``what``.

    Parameters:
        what: what was about to be loaded, e.g. ``"MBPP ('google-research-datasets/mbpp')"``.
        fix: how to go on without the Hub, e.g. ``"set $PROCURE_MBPP_DIR to a folder holding mbpp.jsonl"``.
    """
    if offline_variable() is not None:
        return  # offline on purpose: the caller reads the cache, which fails fast
    reason = hub_unreachable_reason()
    if reason is not None:
        raise UserError(f"cannot load {what} from the Hugging Face Hub: {reason}; {fix} (or set "
                        "HF_HUB_OFFLINE=1 to use a copy in the Hugging Face cache)")


def require_hub_push(repo_id: str, later: str = "leave out --push-to-hub and push the folder later",
                     token: str | None = None) -> None:
    """Raise a one-line :class:`UserError` when a push to ``repo_id`` cannot succeed: the libraries are offline,
    no token is configured, or the Hub cannot be reached. Called before the work that ends in the push, so a
    build does not run for minutes to fail at its last step, and a push does not wait out the client's retries.
    ``later`` ends the message: how to go on without pushing now; ``token``: the one the push will use, if not
    the configured one."""
    from huggingface_hub import get_token

    variable = offline_variable()
    if variable is not None:
        raise UserError(f"cannot push to {repo_id!r}: {variable} is set (offline); unset it, or {later}")
    if (token or get_token()) is None:
        raise UserError(f"cannot push to {repo_id!r}: no Hugging Face token; run `hf auth login` or set HF_TOKEN")
    reason = hub_unreachable_reason()
    if reason is not None:
        raise UserError(f"cannot push to {repo_id!r}: {reason}; check the network (or HF_ENDPOINT), or {later}")


#: Top-level packages whose exceptions mean a request to the Hub failed (HTTP clients, huggingface_hub itself).
_NETWORK_PACKAGES = frozenset({"huggingface_hub", "httpx", "httpx2", "httpcore", "requests", "urllib3"})


def _network_or_hub_failure(err: BaseException) -> bool:
    """Whether ``err`` is a failed connection or Hub request, not a bug or a local file error."""
    if isinstance(err, (ConnectionError, TimeoutError, socket.gaierror)):
        return True
    return any(cls.__module__.split(".")[0] in _NETWORK_PACKAGES for cls in type(err).__mro__)


@contextmanager
def hub_operation(what: str, fix: str) -> Iterator[None]:
    """Turn a network or Hub failure inside the block (no route, a timeout, a refused or failed request) into one
    :class:`UserError` line: ``"<what> failed (<error>); <fix>"``. Any other error passes unchanged, so a bug keeps
    its traceback. For the work that cannot be checked before it starts, such as a push that fails half-way."""
    try:
        yield
    except UserError:
        raise
    except Exception as err:
        if not _network_or_hub_failure(err):
            raise
        raise UserError(f"{what} failed ({type(err).__name__}: {first_line(err)}); {fix}") from err


def _hub_id_shape(name: str) -> bool:
    """Whether ``name`` can be a Hub repository id (``name`` or ``namespace/name``)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.startswith((".", "/", "~")) or os.sep != "/" and os.sep in name:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def in_hub_cache(name: str, kind: str) -> bool:
    """Whether a Hugging Face cache holds a copy of the Hub ``kind`` (``model`` or ``dataset``) ``name``: the
    huggingface_hub cache, or for a dataset also the ``datasets`` cache, which ``load_dataset`` reads offline
    even when the downloaded files are gone (it names the folder ``namespace___snake_case_name``)."""
    from huggingface_hub import constants

    if os.path.isdir(os.path.join(constants.HF_HUB_CACHE, f"{kind}s--{name.replace('/', '--')}")):
        return True
    if kind != "dataset":
        return False
    import datasets
    from datasets.naming import camelcase_to_snakecase

    *namespace, dataset = name.split("/")
    return os.path.isdir(os.path.join(datasets.config.HF_DATASETS_CACHE,
                                      "___".join([*namespace, camelcase_to_snakecase(dataset)])))


def require_local_or_hub(name: str, kind: str, label: str, *, probe: bool = False) -> None:
    """Raise a one-line :class:`UserError` (``"LABEL: no such folder: /abs/path"``) when ``name`` is neither an
    existing local path nor usable as a Hub id: it has the shape of a path, or the Hub is off (``HF_HUB_OFFLINE``;
    with ``probe`` also when it cannot be reached) and the cache holds no copy. Without it transformers and peft
    answer a missing folder with "Repo id must be in the form ..." or a connection error.

    Parameters:
        name: the model, adapter or dataset as given.
        kind: ``model`` or ``dataset`` (where the cache keeps it; an adapter is a ``model``).
        label: what the user set, e.g. ``"--adapter"`` or ``"model_name_or_path"``.
        probe: also try to reach the Hub (up to :data:`CONNECT_TIMEOUT_S` seconds) when it is not off.
    """
    path = os.path.expanduser(name)
    if os.path.exists(path):
        return
    where = os.path.abspath(path)
    if not _hub_id_shape(name):
        raise UserError(f"{label}: no such folder: {where}")
    variable = offline_variable()
    reason = f"{variable} is set" if variable else (hub_unreachable_reason() if probe else None)
    if reason and not in_hub_cache(name, kind):
        raise UserError(f"{label}: no such folder: {where}, and {name!r} is not in the Hugging Face cache to load "
                        f"as a Hub id ({reason}); give a local {kind} folder, or download it once with the Hub "
                        "reachable")
