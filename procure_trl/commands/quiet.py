"""Messages of the libraries ``procure`` uses that say nothing a user can act on, silenced for the command line.

Each filter matches one known message exactly; anything else the libraries say still reaches the user.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["silence_known_library_messages"]

#: bitsandbytes (0.50, CPUs with AVX512-BF16) logs this when the optional ``kernels`` package is missing, then uses
#: its own CPU code: 4-bit loading and training work the same (checked here), so "pip install kernels" misleads.
_BNB_LOGGER = "bitsandbytes.backends.cpu.ops"
_BNB_KERNELS = "Failed to load CPU gemm_4bit_forward from kernels-community"

#: FutureWarnings transformers 5 raises when peft and TRL (not procure_trl) use the old gradient-checkpointing
#: names: ``PeftModel`` reads ``model.is_gradient_checkpointing`` and ``prepare_model_for_kbit_training`` calls
#: ``model.gradient_checkpointing_enable``. Nothing a user of ``procure`` can change; the libraries will move.
_LIBRARY_FUTURE_WARNINGS = (
    r"`is_gradient_checkpointing` is deprecated and will be removed in v6",
    r"`gradient_checkpointing_enable` is deprecated and will be removed in v6",
)


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def silence_known_library_messages() -> None:
    """Install the filters above (idempotent). Call before the libraries are imported: bitsandbytes logs at import."""
    logger = logging.getLogger(_BNB_LOGGER)
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(_BNB_KERNELS))
    for message in _LIBRARY_FUTURE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)
