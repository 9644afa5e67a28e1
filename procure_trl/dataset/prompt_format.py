"""The prompt format: what a model reads and writes, defined once for the dataset builder, the trainer and the harness.

Two formats, chosen per run and recorded with the dataset, the trained adapter and the evaluation report:

* ``completion`` (base models): a training row's ``prompt`` is the program's start that the harness gives the model
  for that task (HumanEval: imports, signature and docstring; MBPP and CodeContests: the comment block the problem
  prompt holds) and its ``completion`` is the rest of the program, so that for an original
  ``prompt + completion`` is the task's program, byte for byte (:func:`prompt_split`). The harness gives the model
  the same program start for the original task, and a cut program (reference or counterfactual) for a cut row.
* ``chat`` (instruct models): conversational prompt/completion rows. The user turn is :func:`user_message` (the
  task's statement, an instruction and the code the answer starts with); the assistant turn is the whole program.
  The harness renders the same user turn through the tokenizer's chat template: for the original task the model
  answers from an empty assistant turn (exactly the training prompt); for a cut row the cut program is the start of
  the assistant turn (``continue_final_message``), so the model continues its own answer.

**Token for token.** A row is tokenized in two segments: the rendered prompt on its own (with the tokenizer's
special tokens), then the rendered completion (:func:`segment_texts`). The model at evaluation reads the rendered
prompt tokenized on its own (:func:`model_input_ids`), so what it reads for an original task is a token prefix of
the text it was trained on, whatever the tokenizer: a tokenizer that merges a line break with the indentation after
it (byte-level BPE does) would otherwise train on one tokenization of the prompt's end and read another.

**Requests.** The harness keys completions by a *request prompt* string (:func:`request_prompt`): the program start
itself in ``completion`` format (so a :class:`~procure_trl.evaluation.sampling.ScriptedBackend` keyed by program text
keeps working), an encoded (user turn, assistant start) pair in ``chat`` format (:func:`decode_request`). The
program that is run is always ``program start + completion`` (:func:`program_prefix`).

This module imports neither ``transformers`` nor ``trl``: tokenizers are used through duck typing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from procure_trl.errors import UserError

__all__ = [
    "PromptFormat",
    "PROMPT_FORMATS",
    "PROMPT_FORMAT_CHOICES",
    "TaskText",
    "user_message",
    "prompt_split",
    "training_example",
    "row_format",
    "row_program",
    "rows_format",
    "default_format",
    "check_format",
    "request_prompt",
    "decode_request",
    "program_prefix",
    "original_prefix",
    "render_request",
    "model_input_ids",
    "aligned_input",
    "segment_texts",
]

#: The two formats (see the module docstring).
PromptFormat = Literal["completion", "chat"]
PROMPT_FORMATS: tuple[str, ...] = get_args(PromptFormat)
#: What a run may ask for: a format, or ``auto`` (the recorded one, else chat when the tokenizer has a template).
PROMPT_FORMAT_CHOICES: tuple[str, ...] = ("auto", *PROMPT_FORMATS)

#: The instruction of the chat user turn; the answer is the whole program, in plain code.
CHAT_INSTRUCTION = (
    "Write a Python program that solves this task. Answer with the complete program as plain code (no Markdown), "
    "starting with this code:"
)

# A chat request prompt: this marker, then the JSON of {"user": ..., "assistant": ...} (see request_prompt).
_CHAT_REQUEST = "<procure-chat-request>\n"


@dataclass(frozen=True)
class TaskText:
    """The texts of one task that the formats are made of.

    Attributes:
        task_id: the benchmark task.
        prompt: the problem's prompt, the start of its program (signature + docstring, or the comment block).
        statement: the task in words (:func:`procure_trl.dataset.rows.problem_statement`).
    """

    task_id: str
    prompt: str
    statement: str

    @classmethod
    def from_problem(cls, problem: Any) -> TaskText:
        """The texts of a :class:`~procure_trl.problems.Problem`."""
        from procure_trl.dataset.rows import problem_statement

        return cls(problem.task_id, problem.prompt, problem_statement(problem.prompt, problem.entry_point))


def user_message(task: TaskText) -> str:
    """The user turn of a chat row and of a chat evaluation prompt: the statement, the instruction, the code to
    start from (the same for an original, its counterfactuals and both sides of a cut row)."""
    return f"{task.statement}\n\n{CHAT_INSTRUCTION}\n{task.prompt}"


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def prompt_split(task_prompt: str, program: str, changed_spans: Sequence[Sequence[int]] = ()) -> int:
    """Where a ``completion``-format row of ``program`` splits into prompt and completion.

    An original program starts with its task prompt: the split is right after it. A counterfactual that changed
    nothing there splits at the same place (after as many lines as the task prompt has); one that changed the task
    prompt's code (a helper function given in the prompt) splits at the start of the line of its first change, so
    that every change is in the completion, where the perturbation mask can mark it.
    """
    if program.startswith(task_prompt) and task_prompt.endswith("\n"):
        split = len(task_prompt)
    else:
        lines = program.splitlines(keepends=True)[: len(task_prompt.splitlines())]
        split = sum(len(line) for line in lines)
    starts = [int(s) for s, _ in changed_spans]
    if starts and min(starts) < split:
        split = _line_start(program, min(starts))
    return split


def training_example(fmt: str, task: TaskText, program: str, changed_spans: Sequence[Sequence[int]] = ()
                     ) -> dict[str, Any]:
    """``{"prompt", "completion", "changed_spans"}`` of a training row of ``program`` in format ``fmt``.

    ``changed_spans`` are ``[start, end)`` offsets into ``program``; in the row they index the completion (the
    program's text in it: the completion string, or the assistant message's content).
    """
    fmt = _check_name(fmt)
    spans = [[int(s), int(e)] for s, e in changed_spans]
    if fmt == "chat":
        return {"prompt": [{"role": "user", "content": user_message(task)}],
                "completion": [{"role": "assistant", "content": program}], "changed_spans": spans}
    split = prompt_split(task.prompt, program, spans)
    return {"prompt": program[:split], "completion": program[split:],
            "changed_spans": [[s - split, e - split] for s, e in spans]}


def row_program(row: Mapping[str, Any]) -> tuple[str, int]:
    """The inverse of :func:`training_example`: ``(program, offset)`` of a row in either format, where ``offset``
    is added to the row's ``changed_spans`` to index the program (the completion string follows the prompt; the
    assistant message's content is the program)."""
    prompt, completion = row["prompt"], row["completion"]
    if isinstance(completion, list):
        return (completion[-1]["content"] if completion else ""), 0
    return prompt + completion, len(prompt)


def _check_name(fmt: str) -> str:
    if fmt not in PROMPT_FORMATS:
        raise UserError(f"unknown prompt format {fmt!r}; use one of {', '.join(PROMPT_FORMAT_CHOICES)}")
    return fmt


def row_format(row: Mapping[str, Any]) -> str:
    """``chat`` for a conversational row (lists of messages), ``completion`` for prompt/completion strings."""
    if "messages" in row and "prompt" not in row:
        return "chat"
    return "chat" if isinstance(row.get("prompt"), list) else "completion"


def rows_format(rows: Any) -> str | None:
    """The format of a dataset's rows (its first row), or ``None`` for no rows."""
    for row in rows:
        return row_format(row)
    return None


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def default_format(tokenizer: Any) -> PromptFormat:
    """``chat`` when the tokenizer has a chat template (an instruct model), else ``completion``."""
    return "chat" if has_chat_template(tokenizer) else "completion"


def check_format(requested: str, recorded: str | None, where: str, allow_mismatch: bool = False) -> str:
    """The format a run uses: ``requested`` (``auto`` takes ``recorded``), refused when it differs from ``recorded``.

    Args:
        requested: ``auto``, ``completion`` or ``chat``.
        recorded: the format the data or adapter was made in (``None``: unknown).
        where: what recorded it, for the message (``adapter outputs/procure-qlora (procure_training_data.json)``).
        allow_mismatch: use ``requested`` even when it differs.

    Raises:
        ValueError: one line naming both formats and the fixes.
    """
    if requested not in PROMPT_FORMAT_CHOICES:
        raise UserError(f"prompt format {requested!r}; use one of {', '.join(PROMPT_FORMAT_CHOICES)}")
    if requested == "auto":
        return recorded or "auto"
    if recorded and recorded != requested and not allow_mismatch:
        raise UserError(
            f"--prompt-format {requested}, but {where} is in the {recorded} format; evaluate with --prompt-format "
            f"{recorded} (or auto), or pass --allow-format-mismatch to use {requested} anyway"
        )
    return requested


# ------------------------------------------------------------------------------------------------ requests


def original_prefix(fmt: str, task: TaskText) -> str:
    """The program start the model gets for the original task: its prompt (``completion``), or nothing (``chat``:
    the user turn shows the code and the model writes the whole program, as in training)."""
    return "" if _check_name(fmt) == "chat" else task.prompt


def request_prompt(fmt: str, task: TaskText, prefix: str) -> str:
    """The key of a generation request for the program start ``prefix`` of ``task`` (see the module docstring)."""
    if _check_name(fmt) == "completion":
        return prefix
    return chat_request(user_message(task), prefix)


def chat_request(user: str, assistant: str) -> str:
    """The key of a chat generation request: the user turn, and the start of the assistant's answer."""
    return _CHAT_REQUEST + json.dumps({"user": user, "assistant": assistant}, ensure_ascii=False)


def decode_request(prompt: str) -> tuple[str | None, str]:
    """``(user turn or None, program start)`` of a request prompt made by :func:`request_prompt`."""
    if prompt.startswith(_CHAT_REQUEST):
        data = json.loads(prompt[len(_CHAT_REQUEST):])
        return data["user"], data["assistant"]
    return None, prompt


def program_prefix(prompt: str) -> str:
    """The program start of a request prompt: what the completion is appended to before the program runs."""
    return decode_request(prompt)[1]


def _require_template(tokenizer: Any) -> None:
    if not has_chat_template(tokenizer):
        raise UserError(
            f"the chat prompt format needs a tokenizer with a chat template, and "
            f"{getattr(tokenizer, 'name_or_path', 'this tokenizer')!r} has none; use --prompt-format completion, "
            "or give the tokenizer a chat template"
        )


def _generation_prompt(tokenizer: Any, user: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                         add_generation_prompt=True)


def render_request(tokenizer: Any, prompt: str) -> tuple[str, str]:
    """The text a model reads for a request prompt, as two segments ``(head, rest)`` tokenized apart.

    ``completion``: ``(program start, "")``. ``chat``: the user turn rendered with the generation prompt, then the
    program start that begins the assistant turn (what ``continue_final_message=True`` renders after it).
    """
    user, prefix = decode_request(prompt)
    if user is None:
        return prefix, ""
    _require_template(tokenizer)
    head = _generation_prompt(tokenizer, user)
    if not prefix:
        return head, ""
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}, {"role": "assistant", "content": prefix}], tokenize=False,
        continue_final_message=True,
    )
    if rendered.startswith(head):
        return head, rendered[len(head):]
    return rendered, ""  # a template that renders the turn's start differently: one segment


def _ids(tokenizer: Any, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"]) if text else []


def model_input_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The token ids a model reads for a request prompt: :func:`render_request`'s segments tokenized apart (the
    tokenizer's special tokens on a plain program; a chat template writes its own)."""
    head, rest = render_request(tokenizer, prompt)
    chat = decode_request(prompt)[0] is not None
    return _ids(tokenizer, head, not chat) + _ids(tokenizer, rest, False)


#: What is given back to the model at the end of a cut (see aligned_input): its last word (run of non-space
#: characters) with the white space on both sides of it: only the last pieces of a text can tokenize otherwise
#: once the text goes on.
_CUT_TAIL = re.compile(r"\s*\S*\s*\Z")


def aligned_input(tokenizer: Any, prompt: str, head: int | None = None, heal: bool = True) -> tuple[list[int], str]:
    """The token ids a model reads for a request prompt, and the text it must write first.

    For an original task's prompt this is :func:`model_input_ids` and ``""``: the trained prompt segment, exactly.
    A *cut* prompt (part of a program) stops where the trained text went on, so two things would differ from
    training. (1) Segments: ``completion``-format training tokenized the task prompt apart from the rest of the
    program; ``head`` is where that split lies in the program that was cut (:func:`prompt_split`), and the two parts
    are tokenized apart here too (``None``: the whole program start is the prompt segment, as for an original task;
    a ``head`` beyond the cut: the cut lies inside the trained prompt segment). (2) The cut's end: a tokenizer that
    merges a line break with the indentation after it tokenizes the cut text's last characters otherwise than the
    whole program's. With
    ``heal`` (token healing), the tokens of the cut's tail (its last word with the white space around it,
    :data:`_CUT_TAIL`) are left out and returned as text for generation to write first, in the tokens the model
    prefers (:class:`~procure_trl.evaluation.sampling.ForcedPrefix`), so the model reads a token prefix of the
    trained text and may write the trained tokens across the cut.

    Returns:
        ``(input ids, forced text)``; the prompt's program start is the text of the ids followed by the forced text.
    """
    user, prefix = decode_request(prompt)
    if user is not None:
        head_text, rest = render_request(tokenizer, prompt)
        head_ids = _ids(tokenizer, head_text, False)
    else:
        split = len(prefix) if head is None else min(max(int(head), 0), len(prefix))
        head_text, rest = prefix[:split], prefix[split:]
        # with the special tokens even when empty (a change in the first line splits there): as training does
        head_ids = list(tokenizer(head_text, add_special_tokens=True)["input_ids"])
    rest_ids = _ids(tokenizer, rest, False)
    if heal and rest:
        kept, tail = _healed(tokenizer, rest_ids, rest)
        return head_ids + kept, tail
    if heal and user is None and head is not None and head > len(prefix):
        # the cut lies inside the trained prompt segment (a change in a helper the task prompt gives): heal it there,
        # keeping the special tokens in front
        special = set(getattr(tokenizer, "all_special_ids", ()))
        lead = next((i for i, token in enumerate(head_ids) if token not in special), len(head_ids))
        kept, tail = _healed(tokenizer, head_ids[lead:], head_text)
        return head_ids[:lead] + kept, tail
    return head_ids + rest_ids, ""


def _healed(tokenizer: Any, ids: list[int], text: str) -> tuple[list[int], str]:
    """The longest token prefix of ``ids`` (the tokens of ``text``) that spells a start of ``text`` ending before its
    tail (:data:`_CUT_TAIL`), and the rest of ``text``."""
    keep_chars = _CUT_TAIL.search(text).start()  # type: ignore[union-attr]  # (the pattern matches any text)
    for keep in range(len(ids), 0, -1):
        kept = tokenizer.decode(ids[:keep], skip_special_tokens=False)
        if len(kept) <= keep_chars and text.startswith(kept):
            return ids[:keep], text[len(kept):]
    return [], text


def segment_texts(row: Mapping[str, Any], tokenizer: Any, add_eos: bool = True) -> tuple[str, str, int]:
    """The training text of a prompt/completion row as ``(prompt text, completion text, offset)``.

    The two are tokenized apart, the prompt with the tokenizer's special tokens (for a chat row the template's text,
    without them), the completion without. ``offset`` is where the program (the completion string, or the
    assistant message's content) starts in the completion text, so spans into it can be moved there.

    ``completion`` rows: the prompt, then the completion with EOS appended (as TRL does). ``chat`` rows: the
    user turn rendered with the generation prompt, then the rest of the rendered conversation.
    """
    prompt, completion = row["prompt"], row["completion"]
    if isinstance(prompt, str):
        eos = getattr(tokenizer, "eos_token", None)
        if add_eos and eos and not completion.endswith(eos):
            completion = completion + eos
        return prompt, completion, 0
    _require_template(tokenizer)
    messages = list(prompt) + list(completion)
    head = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(head):
        raise UserError(
            "the chat template renders the prompt with its generation prompt differently from the start of the whole "
            "conversation, so the prompt the model reads at evaluation is not the start of the trained text; use a "
            "template whose generation prompt opens the assistant turn as the conversation does"
        )
    rest = full[len(head):]
    content = completion[-1]["content"] if completion else ""
    return head, rest, rest.find(content) if content else 0
