"""Character spans -> per-token perturbation masks, aligned with what the trainer tokenizes.

A counterfactual program records *which characters* a perturbation changed, as ``[start, end)``
offsets into its code. Training needs the same information per *token*: a 0/1 list aligned with
``input_ids``. The bridge is the offset mapping of a fast tokenizer: token ``i`` covers the
characters ``[a, b)`` of the text, and it is perturbed when that range overlaps a changed span.

* :func:`spans_to_token_mask` is the pure core (no tokenizer involved), easy to test exhaustively.
* :func:`perturbation_mask` tokenizes one text and returns ``(input_ids, mask)``.
* :func:`prompt_completion_mask` tokenizes a prompt/completion row exactly the way TRL 1.16's
  ``SFTTrainer`` does (with or without a chat template) so that the mask lines up with the
  ``input_ids`` the trainer will train on.
* :func:`conversation_mask` does the same for a conversation (``messages``, or a conversational
  prompt/completion row) with the spans in one message's content.
* :func:`check_mask_alignment` is the guard used wherever a mask meets a token sequence.

This module imports neither ``transformers`` nor ``trl``: tokenizers are used through duck typing.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from procure_trl.analysis.spans import validate_spans
from procure_trl.dataset.prompt_format import segment_texts
from procure_trl.errors import UserError

__all__ = [
    "spans_to_token_mask",
    "perturbation_mask",
    "prompt_completion_mask",
    "conversation_mask",
    "check_mask_alignment",
    "validate_spans",
]

_FAST_TOKENIZER_HINT = (
    "needs a fast tokenizer (one backed by the `tokenizers` library) because per-token masks come from "
    "its offset mapping"
)
#: What to do about a slow tokenizer: AutoTokenizer already returns the fast one whenever it can.
_SLOW_TOKENIZER_FIX = (
    "AutoTokenizer.from_pretrained gives the fast tokenizer whenever the model ships one (tokenizer.json) or its "
    "slow one can be converted (pip install tokenizers sentencepiece); a model with no fast tokenizer at all "
    "(e.g. ByT5) can still be trained on pre-tokenized rows: compute each token's character offsets yourself, "
    "turn the changed spans into a mask with procure_trl.dataset.masks.spans_to_token_mask(offsets, spans), and give "
    "the dataset input_ids and perturbation_mask columns"
)


def spans_to_token_mask(
    offsets: Sequence[tuple[int, int]],
    spans: Sequence[Sequence[int]],
    text_length: int | None = None,
) -> list[int]:
    """Mark the tokens whose characters overlap a changed span.

    Args:
        offsets: one ``(a, b)`` character range per token, as returned by a fast tokenizer with
            ``return_offsets_mapping=True``.
        spans: changed character ranges ``[s, e)`` in the same text, in any order, may overlap.
        text_length: length of the text; when given, spans reaching past it raise ``ValueError``.

    Returns:
        ``mask`` with ``mask[i] == 1`` iff ``a_i < e and s < b_i`` for some span. A token without
        characters (``a == b``, e.g. a BOS/EOS added by the post-processor with offset ``(0, 0)``)
        covers nothing and is always 0.
    """
    checked = validate_spans(spans, text_length)
    if not checked:
        return [0] * len(offsets)
    limit = max(text_length or 0, max(e for _, e in checked), max((b for _, b in offsets), default=0))
    # changed[c] = 1 when character c is inside some span; a prefix sum answers "any changed
    # character in [a, b)?" in O(1) per token, whatever the number and order of spans.
    changed = [0] * (limit + 1)
    for s, e in checked:
        changed[s] += 1
        changed[e] -= 1
    inside = [1 if depth > 0 else 0 for depth in accumulate(changed)]
    prefix = [0, *accumulate(inside)]
    mask = []
    for a, b in offsets:
        mask.append(1 if b > a and prefix[b] - prefix[a] > 0 else 0)
    return mask


def _require_fast(tokenizer: Any, caller: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(
            f"{caller} {_FAST_TOKENIZER_HINT}; got {type(tokenizer).__name__}, which has no offset mapping. "
            f"{_SLOW_TOKENIZER_FIX}"
        )


def _encode_with_offsets(
    tokenizer: Any, text: str, add_special_tokens: bool
) -> tuple[list[int], list[tuple[int, int]]]:
    encoding = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    return list(encoding["input_ids"]), [tuple(o) for o in encoding["offset_mapping"]]


def perturbation_mask(
    text: str,
    spans: Sequence[Sequence[int]],
    tokenizer: Any,
    *,
    add_special_tokens: bool = True,
) -> tuple[list[int], list[int]]:
    """Tokenize ``text`` and return ``(input_ids, mask)`` where ``mask`` marks tokens overlapping ``spans``.

    ``spans`` are ``[start, end)`` character offsets into ``text``. Requires a fast tokenizer.
    """
    _require_fast(tokenizer, "perturbation_mask")
    validate_spans(spans, len(text))
    input_ids, offsets = _encode_with_offsets(tokenizer, text, add_special_tokens)
    return input_ids, spans_to_token_mask(offsets, spans, len(text))


def _common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def prompt_completion_mask(
    prompt: str,
    completion: str,
    completion_spans: Sequence[Sequence[int]],
    tokenizer: Any,
    *,
    chat_template: bool = False,
    add_eos: bool = True,
) -> dict[str, list[int]]:
    """Tokenize a prompt/completion row as TRL 1.16's ``SFTTrainer`` does, with a perturbation mask, except that
    the prompt's tokens are always the prompt tokenized alone.

    Without a chat template (``chat_template=False``) the EOS token is appended to the completion
    (unless it already ends with it), as TRL does; the prompt is tokenized with the tokenizer's special
    tokens and the completion after it without them (:func:`procure_trl.dataset.prompt_format.segment_texts`).
    Where no token spans the boundary this is TRL's tokenization; where one would (byte-level BPE merges
    a line break with the indentation after it), TRL trains on a prompt the model never reads at
    inference, and this keeps the prompt the model reads. With ``chat_template=True`` the row is the
    conversation ``[{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]``
    rendered by ``tokenizer.apply_chat_template`` (no EOS appended: the template decides how a turn ends).

    Args:
        prompt: the instruction / problem statement.
        completion: the program; ``completion_spans`` are ``[start, end)`` offsets into it.
        completion_spans: changed character spans of ``completion`` (empty for an original).
        tokenizer: a fast tokenizer (and with ``chat_template=True``, one with a chat template).
        chat_template: render the row as a conversation, as TRL does for conversational datasets.
        add_eos: append EOS to a non-conversational completion, as TRL does; set ``False`` only to
            mirror a pipeline that does not.

    Returns:
        ``{"input_ids", "completion_mask", "perturbation_mask"}``, three lists of equal length;
        ``completion_mask`` is TRL's (1 from the first completion token on).
    """
    _require_fast(tokenizer, "prompt_completion_mask")
    validate_spans(completion_spans, len(completion), where="completion_spans")
    if chat_template:
        return _chat_prompt_completion_mask(prompt, completion, completion_spans, tokenizer)

    # The prompt and the completion are tokenized apart (procure_trl.dataset.prompt_format.segment_texts): the prompt's
    # tokens are then exactly what the model reads at evaluation, even where a tokenizer would merge the prompt's
    # last characters with the completion's first ones (TRL then starts the completion where the two diverge and
    # warns that the model trains on another context than it reads).
    prompt_text, completion_text, _ = segment_texts({"prompt": prompt, "completion": completion}, tokenizer,
                                                    add_eos=add_eos)
    prompt_ids = list(tokenizer(prompt_text)["input_ids"])
    completion_ids, offsets = _encode_with_offsets(tokenizer, completion_text, add_special_tokens=False)
    pert = [0] * len(prompt_ids) + spans_to_token_mask(offsets, completion_spans, len(completion_text))
    input_ids = prompt_ids + completion_ids
    result = {
        "input_ids": input_ids,
        "completion_mask": [0] * len(prompt_ids) + [1] * len(completion_ids),
        "perturbation_mask": pert,
    }
    check_mask_alignment(input_ids, pert, where="prompt_completion_mask")
    return result


def _chat_prompt_completion_mask(
    prompt: str, completion: str, completion_spans: Sequence[Sequence[int]], tokenizer: Any
) -> dict[str, list[int]]:
    conversation = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    return conversation_mask(conversation, 1, completion_spans, tokenizer, prompt_messages=1)


def conversation_mask(
    messages: Sequence[dict],
    message_index: int,
    content_spans: Sequence[Sequence[int]],
    tokenizer: Any,
    *,
    prompt_messages: int | None = None,
    assistant_masks: bool = False,
) -> dict[str, list[int]]:
    """Tokenize a conversation as TRL 1.16's ``SFTTrainer`` does, with a perturbation mask on one message.

    TRL renders a conversational row with ``tokenizer.apply_chat_template``: the ``messages`` of a
    language-modeling row, or ``prompt + completion`` of a prompt/completion row (here the prompt rendered
    with ``add_generation_prompt=True`` and the rest of the conversation are tokenized apart, so the prompt's
    tokens are those the model reads at evaluation: see :mod:`procure_trl.dataset.prompt_format`). The
    rendered text is tokenized once more with offsets, and the spans, offsets into the content of
    ``messages[message_index]``, are moved to where that content sits in the rendered text.

    Parameters:
        messages (`Sequence[dict]`): ``{"role", "content"}`` messages, rendered by the tokenizer's chat template.
        message_index (`int`): the message whose content ``content_spans`` index (ignored without spans).
        content_spans (`Sequence[Sequence[int]]`): ``[start, end)`` changed characters of that content.
        tokenizer: a fast tokenizer with a chat template that inserts message content verbatim.
        prompt_messages (`int` or `None`): for a prompt/completion row, the number of prompt messages: adds
            TRL's ``completion_mask``.
        assistant_masks (`bool`): also return the template's ``assistant_masks`` (TRL's ``assistant_only_loss``;
            needs ``{% generation %}`` in the template).

    Returns:
        ``{"input_ids", "perturbation_mask"}`` (plus ``completion_mask`` and ``assistant_masks`` when asked),
        lists of equal length.
    """
    _require_fast(tokenizer, "conversation_mask")
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            "a conversational row needs a tokenizer with a chat template; set tokenizer.chat_template (a Jinja "
            "string), or use prompt/completion strings with chat_template=False"
        )
    messages = [dict(m) for m in messages]
    spans = validate_spans(content_spans, where="changed_spans")
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    # The same call TRL makes; the rendered string is then tokenized once more with offsets.
    # apply_chat_template(tokenize=True) encodes the rendered text with add_special_tokens=False.
    processed = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                              return_assistant_tokens_mask=assistant_masks)
    input_ids, offsets = _encode_with_offsets(tokenizer, rendered, add_special_tokens=False)
    if input_ids != list(processed["input_ids"]):
        raise RuntimeError(
            "conversation_mask: re-tokenizing the rendered chat did not reproduce apply_chat_template's "
            "input_ids; the tokenizer's chat path differs from its plain call, so no mask can be aligned"
        )
    joint_ids, joint_offsets = input_ids, offsets
    prompt_len = None
    if prompt_messages is not None:
        # A prompt/completion row: the prompt (rendered with its generation prompt) and the rest are tokenized apart,
        # so the prompt's tokens are what the model reads at evaluation (procure_trl.dataset.prompt_format).
        head, rest, _ = segment_texts({"prompt": messages[:prompt_messages], "completion": messages[prompt_messages:]},
                                      tokenizer)
        prompt_ids, head_offsets = _encode_with_offsets(tokenizer, head, add_special_tokens=False)
        rest_ids, rest_offsets = _encode_with_offsets(tokenizer, rest, add_special_tokens=False)
        input_ids = prompt_ids + rest_ids
        offsets = head_offsets + [(a + len(head), b + len(head)) for a, b in rest_offsets]
        prompt_len = len(prompt_ids)
    if spans:
        where = _content_offset(messages, message_index, rendered, tokenizer)
        validate_spans(spans, len(messages[message_index]["content"]), where="changed_spans")
        spans = [(s + where, e + where) for s, e in spans]
    pert = spans_to_token_mask(offsets, spans, len(rendered))
    check_mask_alignment(input_ids, pert, where="conversation_mask")
    result = {"input_ids": input_ids, "perturbation_mask": pert}
    if prompt_len is not None:
        result["completion_mask"] = [0] * prompt_len + [1] * (len(input_ids) - prompt_len)
    if assistant_masks:
        masks = list(processed["assistant_masks"])
        if input_ids != joint_ids:  # the template's mask is per joint token: carry it over by characters
            chars = [(a, b) for (a, b), m in zip(joint_offsets, masks) if m]
            masks = spans_to_token_mask(offsets, [c for c in chars if c[1] > c[0]], len(rendered))
        result["assistant_masks"] = masks
    return result


def _content_offset(messages: list[dict], index: int, rendered: str, tokenizer: Any) -> int:
    """Where the content of ``messages[index]`` starts in the rendered conversation."""
    if not 0 <= index < len(messages) or not isinstance(messages[index].get("content"), str):
        raise UserError(f"changed_message {index} is not a message with text content (the row has "
                         f"{len(messages)} messages)")
    content = messages[index]["content"]
    # Search after the rendering of the messages before it (plus the next turn's header): an earlier
    # message quoting the same code is not matched.
    start_from = 0
    if index > 0:
        before = tokenizer.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True)
        start_from = _common_prefix_length(before, rendered)  # type: ignore[arg-type]
    where = rendered.find(content, start_from)
    if where < 0:
        raise UserError(
            "the chat template changed the message text (e.g. stripped or escaped it), so the changed spans cannot "
            "be located in the rendered conversation; use a template that inserts message content verbatim"
        )
    return where


def check_mask_alignment(input_ids: Sequence[int], mask: Sequence[int], where: str = "") -> None:
    """Raise ``ValueError`` unless ``mask`` has one 0/1 entry per token of ``input_ids``.

    Use it where a stored mask meets a token sequence (after truncation, padding or loading a
    pre-tokenized dataset): a misaligned mask otherwise weights the wrong tokens without any error.
    """
    prefix = f"{where}: " if where else ""
    if len(mask) != len(input_ids):
        raise ValueError(
            f"{prefix}perturbation mask has {len(mask)} entries but there are {len(input_ids)} tokens; "
            "the mask must be built from the same tokenization (and truncated/padded together with input_ids)"
        )
    for i, value in enumerate(mask):
        if value not in (0, 1):
            raise ValueError(f"{prefix}perturbation mask entry {i} is {value!r}; masks hold only 0 and 1")
