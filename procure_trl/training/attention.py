"""The attention mass on perturbed tokens, from the same fused SDPA kernel that computes attention.

The attention term of the ProCURE loss needs, for every query position ``q`` of the selected decoder
layers, ``m_q = sum_k p_qk * delta_k``: the attention probability that ``q`` puts on perturbed key
positions (``delta`` is the 0/1 perturbation mask, causality keeps ``k <= q``). That is exactly the
output of scaled-dot-product attention whose value vector is ``delta``. So no attention matrix is
ever materialised: we append ``delta`` as an extra value channel and run ONE SDPA call per layer.

Why pad to a multiple of 8 and pad queries/keys too? PyTorch's fused kernels (flash attention on
CPU and CUDA) require queries, keys and values with the same head dimension (a multiple of 8 on
CUDA); with a value one channel wider SDPA silently falls back to the math kernel, which builds the
full ``L x L`` matrix (measured on CPU: 4x the memory at L=2048). Zero channels appended to the
queries and keys leave every score ``q.k`` unchanged, and the softmax scale is passed explicitly,
so the first ``head_dim`` output channels are the layer's normal attention output and channel
``head_dim`` is ``m_q``; the remaining channels are zeros. A probe with more key masks (the attention
report's control) puts each in one more channel, so one SDPA call measures them all.

How ``delta`` reaches the kernel and how ``m_q`` comes back: a :class:`ConceptAttentionProbe` is
passed as the keyword argument ``concept_probe`` to the model's forward. transformers 5 forwards
unknown keyword arguments from the model through every decoder layer to the attention function, so
nothing global is patched and each forward call carries its own probe (thread-, DDP- and
re-entrancy-safe). The attention function stores the head-averaged ``m_q`` in the probe, keyed by
layer index. Under non-reentrant gradient checkpointing the layer is recomputed during backward; the
probe keeps the first value of each layer and drops the recomputed one (holding it would keep the
recomputed layer's saved tensors alive until the end of backward).
Reentrant checkpointing runs the forward without autograd, so ``m_q`` would get no gradient: the
trainer refuses that configuration.

Registration: :func:`register_concept_attention` registers the function with transformers'
``AttentionInterface`` AND registers ``sdpa_mask`` as its mask builder in
``AttentionMaskInterface``. Without the latter, transformers hands a newly named attention function
``attention_mask=None`` and padding is silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeGuard

import torch

from procure_trl.errors import UserError

#: Name under which the concept-aware SDPA attention function is registered in transformers.
CONCEPT_ATTENTION_NAME = "procure_concept_sdpa"

#: Attention implementations the trainer can switch to :data:`CONCEPT_ATTENTION_NAME` (same kernels).
COMPATIBLE_ATTENTION = ("sdpa", CONCEPT_ATTENTION_NAME)

# Fused SDPA kernels want equal head dims that are multiples of 8 (CUDA flash / memory-efficient).
_HEAD_DIM_MULTIPLE = 8


class ConceptAttentionProbe:
    """Carries the perturbation mask into the attention function and the attention mass back out.

    Deliberately a plain class (not a tuple, list, dict or tensor): ``DistributedDataParallel``
    moves such keyword arguments to the device untouched instead of copying them, so the object the
    attention function writes to is the object the trainer reads.

    Args:
        perturbation_mask: ``(batch, seq_len)`` 0/1 tensor, 1 on perturbed key positions (0 on padding).
        layers: indices of the decoder layers whose attention mass is wanted.
        extra_masks: more ``(batch, seq_len)`` key masks whose attention mass the same forward should
            measure (``procure attention-report``'s control); each is one more value channel of the
            same SDPA call, read back with ``layer_mass(i)`` for the ``i``-th of them (from 1).
    """

    def __init__(self, perturbation_mask: torch.Tensor, layers: Iterable[int], *,
                 extra_masks: Sequence[torch.Tensor] = ()):
        if perturbation_mask.dim() != 2:
            raise ValueError(
                f"perturbation_mask must be (batch, seq_len), got shape {tuple(perturbation_mask.shape)}"
            )
        for mask in extra_masks:
            if mask.shape != perturbation_mask.shape:
                raise ValueError(f"extra_masks must have perturbation_mask's shape "
                                 f"{tuple(perturbation_mask.shape)}, got {tuple(mask.shape)}")
        self.perturbation_mask = perturbation_mask
        self.key_masks = (perturbation_mask, *extra_masks)
        self.layers = frozenset(int(i) for i in layers)
        self._mass: dict[int, torch.Tensor] = {}
        self._channels: dict[tuple, torch.Tensor] = {}

    def value_channels(self, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``(batch, 1, seq_len, width)``: the key masks in the first channels, zeros after; built once per forward."""
        key = (width, dtype, device)
        if key not in self._channels:
            delta = torch.stack(self.key_masks, dim=-1).to(device=device, dtype=dtype)
            self._channels[key] = torch.nn.functional.pad(delta[:, None], (0, width - len(self.key_masks)))
        return self._channels[key]

    def wants(self, layer_idx: int | None) -> TypeGuard[int]:
        return layer_idx is not None and layer_idx in self.layers

    def record(self, layer_idx: int, mass: torch.Tensor) -> None:
        """Store ``m_q`` of one layer, ``(batch, seq_len, key masks)``, already averaged over heads.

        The first value of a layer wins. Gradient checkpointing re-runs the layer during backward;
        keeping that recomputed value would keep the recomputed attention's saved tensors alive
        until the end of backward (measured: +75% step memory on CPU), and it is not needed: the
        loss was computed from the first value.
        """
        self._mass.setdefault(layer_idx, mass)

    @property
    def recorded_layers(self) -> list[int]:
        return sorted(self._mass)

    def attention_mass(self) -> torch.Tensor:
        """``m_q`` averaged over the selected layers, ``(batch, seq_len)``, float32.

        Raises ``RuntimeError`` naming the missing layers when the forward did not run the
        concept-aware attention for all of them (e.g. the model uses another attention function).
        """
        return torch.stack(list(self.layer_mass().values())).mean(dim=0)

    def layer_mass(self, key_mask: int = 0) -> dict[int, torch.Tensor]:
        """``m_q`` of each selected layer, ``(batch, seq_len)`` float32, by layer index in ascending order.

        ``key_mask``: whose keys: 0 the perturbation mask, ``i`` the ``i``-th of ``extra_masks``.
        Raises ``RuntimeError`` like :meth:`attention_mass` when a layer was not computed.
        """
        missing = sorted(self.layers - set(self._mass))
        if missing:
            raise RuntimeError(
                f"the attention mass of decoder layers {missing} was not computed: the model did not call the "
                f"'{CONCEPT_ATTENTION_NAME}' attention function for them. Load the model with "
                f"attn_implementation='sdpa' and let ConceptAwareSFTTrainer switch it, or call "
                f"procure_trl.training.enable_concept_attention(model)."
            )
        return {i: self._mass[i][..., key_mask].float() for i in sorted(self.layers)}

    def clear(self) -> None:
        self._mass.clear()


def concept_sdpa_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    concept_probe: ConceptAttentionProbe | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: plain SDPA, plus ``m_q`` for the layers the probe asks for.

    Shapes follow transformers' ``sdpa_attention_forward``: ``query`` is ``(batch, heads, q_len, d)``,
    ``key``/``value`` are ``(batch, kv_heads, kv_len, d)``; returns ``((batch, q_len, heads, d), None)``.
    Without a probe (generation, evaluation of originals, unselected layers) this is exactly
    ``sdpa_attention_forward``.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layer_idx = getattr(module, "layer_idx", None)
    if concept_probe is None or not concept_probe.wants(layer_idx):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )

    head_dim = query.shape[-1]
    if scaling is None:  # must be explicit: the padded head dim would change SDPA's default scale
        scaling = head_dim**-0.5
    masks = len(concept_probe.key_masks)
    padded = ((head_dim + masks + _HEAD_DIM_MULTIPLE - 1) // _HEAD_DIM_MULTIPLE) * _HEAD_DIM_MULTIPLE
    extra = padded - head_dim

    batch, kv_heads, kv_len, _ = value.shape
    if concept_probe.perturbation_mask.shape != (batch, kv_len):
        raise ValueError(
            f"layer {layer_idx}: perturbation mask has shape {tuple(concept_probe.perturbation_mask.shape)} but the "
            f"keys are (batch={batch}, kv_len={kv_len}); the mask must be padded together with input_ids"
        )
    # zeros on queries/keys leave q.k unchanged; the value gets [delta, extra masks, 0, ..., 0]
    query = torch.nn.functional.pad(query, (0, extra))
    key = torch.nn.functional.pad(key, (0, extra))
    channels = concept_probe.value_channels(extra, value.dtype, value.device)
    value = torch.cat([value, channels.expand(batch, kv_heads, kv_len, extra)], dim=-1)

    output, _ = sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
    )
    # output: (batch, q_len, heads, padded); channels head_dim, head_dim + 1, ... hold m_q per head and key mask
    concept_probe.record(layer_idx, output[..., head_dim:head_dim + masks].mean(dim=2))
    return output[..., :head_dim], None


def register_concept_attention() -> str:
    """Register the attention function and its mask builder with transformers; return the name.

    Idempotent. The mask builder is transformers' own ``sdpa_mask``: the function runs SDPA, so it
    needs exactly the masks SDPA gets (``None`` when no padding lets the kernel use ``is_causal``).
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(CONCEPT_ATTENTION_NAME, concept_sdpa_attention_forward)
    AttentionMaskInterface.register(CONCEPT_ATTENTION_NAME, sdpa_mask)
    return CONCEPT_ATTENTION_NAME


def enable_concept_attention(model) -> None:
    """Switch a model that uses ``sdpa`` to the concept-aware SDPA function (same kernels, same outputs).

    Raises ``ValueError`` for attention implementations that cannot provide the attention mass
    without materialising the attention matrix (eager, flash attention, flex attention, ...).
    """
    register_concept_attention()
    config = model.config
    current = getattr(config, "_attn_implementation", None)
    if current == CONCEPT_ATTENTION_NAME:
        return
    if current != "sdpa":
        raise UserError(
            f"the model uses attn_implementation={current!r}, which cannot provide the attention term of the "
            "concept-aware loss from a fused kernel (eager would store batch x heads x L x L per layer; flash and "
            "flex attention cannot return attention mass). Load the model with attn_implementation='sdpa' "
            "(e.g. AutoModelForCausalLM.from_pretrained(..., attn_implementation='sdpa') or "
            "model_init_kwargs={'attn_implementation': 'sdpa'}), or set concept_loss_weight=0 to train without "
            "the attention term."
        )
    # transformers' public switch: dispatches to the sub-models (text config of multimodal models too)
    model.set_attn_implementation(CONCEPT_ATTENTION_NAME)
    if config._attn_implementation != CONCEPT_ATTENTION_NAME:
        raise UserError(
            f"{type(model).__name__} does not let transformers switch its attention function (it does not use "
            "AttentionInterface), so the attention term cannot be computed; set concept_loss_weight=0"
        )


def disable_concept_attention(model) -> None:
    """Restore ``sdpa`` on a model switched by :func:`enable_concept_attention` (e.g. before saving)."""
    if getattr(model.config, "_attn_implementation", None) == CONCEPT_ATTENTION_NAME:
        model.set_attn_implementation("sdpa")
