"""Command-line options generated from the config dataclasses, so that an option is defined once.

A config field becomes a flag with its ``metadata["help"]`` as help text and its default shown in
``--help``; the command then builds the config from the parsed values (:func:`config_kwargs`). The
field's type decides the conversion: ``int``/``float``/``str``, ``X | None``, an ``Enum`` or a
``Literal`` (choices), ``bool`` (``--name`` when off by default, ``--no-name`` when on), and lists,
tuples and sequences (comma-separated values, e.g. ``--k 1,5``). Like transformers'
``HfArgumentParser`` (which ``procure train`` uses through TRL), but it adds the flags to an existing
parser or argument group, and it imports neither torch nor transformers, so ``procure perturb --help``
stays instant.

Optional field metadata read here:

``off_help``
    for a ``bool`` that is on by default (its flag turns it off): what giving the flag does. Required there.
``flags``
    the flag names, e.g. ``("--output", "-o")`` (default: ``--field-name``). ``--field_name`` is
    always accepted too, unlisted, as in ``HfArgumentParser``.
``metavar``
    the placeholder shown in ``--help``.
``parse``
    a function ``str -> value`` for values the type alone cannot convert; a ``ValueError`` it raises
    becomes argparse's one-line error naming the flag.
``default_text``
    what ``--help`` shows as the default when the value itself would mislead (computed defaults).
``positional``
    ``True`` for an input named without a flag (``procure perturb INPUT.jsonl``, ``procure compare RUN RUN``): one
    value, optional when the field has a default; a list field takes one or more values (any number with a default).
``repeat``
    ``True`` for a list field whose flag may be given several times, one value each (``--price A --price B``),
    for values that may contain commas themselves.
``cli``
    ``False`` for fields that are not command-line options (secrets, nested configs, dicts).

Every flag ``--x-y`` is also accepted as ``--x_y`` (and the other way round for flags spelled with
underscores), as ``HfArgumentParser`` does: :func:`flag_spellings` gives both.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Union

__all__ = ["CommandParser", "add_options", "config_kwargs", "cli_fields", "flag_spellings", "format_default",
           "option_flags"]

_SEQUENCE_ORIGINS = (list, tuple, Sequence, typing.Sequence, Iterable, frozenset, set)


def cli_fields(
    config_cls: type, *, only: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> list[dataclasses.Field]:
    """The fields of ``config_cls`` that are command-line options, in declaration (or ``only``) order."""
    by_name = {f.name: f for f in dataclasses.fields(config_cls) if f.init}
    exclude = set(exclude)
    unknown = (set(only or ()) | exclude) - set(by_name)
    if unknown:
        raise ValueError(f"{config_cls.__name__} has no field(s) {sorted(unknown)}")
    names = list(only) if only is not None else list(by_name)
    return [by_name[n] for n in names if n not in exclude and by_name[n].metadata.get("cli", True)]


def option_flags(field: dataclasses.Field, rename: Mapping[str, str | Sequence[str]] | None = None) -> list[str]:
    """The visible flag names of ``field``: ``rename`` wins over ``metadata["flags"]`` over ``--field-name``."""
    flags = (rename or {}).get(field.name) or field.metadata.get("flags") or "--" + field.name.replace("_", "-")
    return [flags] if isinstance(flags, str) else list(flags)


def field_default(field: dataclasses.Field) -> Any:
    """The default value of ``field`` (``default_factory`` called), or ``dataclasses.MISSING``."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def format_default(value: Any) -> str:
    """A default as a user types it: ``1,5`` for sequences, the value of an Enum, ``0.8`` for floats."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(format_default(v) for v in value)
    return str(value)


def _strip_optional(hint: Any) -> Any:
    """``X | None`` -> ``X``; other unions are left as they are (the caller decides)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _scalar_parser(hint: Any, name: str) -> tuple[Callable[[str], Any], list[str] | None]:
    """``(str -> value, choices)`` for a scalar type hint."""
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        members = {str(m.value): m for m in hint}
        return _choice_parser(members, name), list(members)
    if typing.get_origin(hint) is Literal:
        members = {str(v): v for v in typing.get_args(hint)}
        return _choice_parser(members, name), list(members)
    if hint in (int, float, str):
        return hint, None
    raise TypeError(
        f"field {name!r} has type {hint!r}, which has no command-line form; give it metadata "
        "{'parse': function} or {'cli': False}"
    )


def _choice_parser(members: Mapping[str, Any], name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if text in members:
            return members[text]
        from procure_trl.errors import did_you_mean

        raise ValueError(f"invalid choice {text!r}{did_you_mean(text, members)} (choose from {', '.join(members)})")

    return parse


def _list_parser(item: Callable[[str], Any], container: type) -> Callable[[str], Any]:
    def convert(part: str) -> Any:
        try:
            return item(part)
        except ValueError as err:
            if item in (int, float):  # Python's "invalid literal for int() with base 10" says less
                raise ValueError(f"invalid {item.__name__} value {part!r} in a comma-separated list") from None
            raise err

    def parse(text: str) -> Any:
        values = [convert(part.strip()) for part in text.split(",") if part.strip()]
        return tuple(values) if container is tuple else values

    return parse


def _value_parser(field: dataclasses.Field, hint: Any) -> tuple[Callable[[str], Any], list[str] | None, bool]:
    """``(parse, choices, is_list)`` of a non-bool field."""
    if "parse" in field.metadata:
        return field.metadata["parse"], None, False
    hint = _strip_optional(hint)
    origin = typing.get_origin(hint)
    if origin in _SEQUENCE_ORIGINS:
        item_hint = (typing.get_args(hint) or (str,))[0]
        item, choices = _scalar_parser(_strip_optional(item_hint), field.name)
        return _list_parser(item, tuple if origin is tuple else list), choices, True
    parse, choices = _scalar_parser(hint, field.name)
    return parse, choices, False


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """argparse reports ``ArgumentTypeError`` messages as they are (``ValueError`` as 'invalid value')."""
    if parse in (int, float, str):
        return parse  # argparse names them itself: "invalid int value: 'x'"

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except (ValueError, TypeError) as err:
            raise argparse.ArgumentTypeError(str(err) or f"invalid value {text!r}") from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _is_bool(hint: Any) -> bool:
    return _strip_optional(hint) is bool


def _help(field: dataclasses.Field, default: Any, shown: bool, key: str = "help") -> str:
    text = field.metadata.get(key)
    if not text:
        raise ValueError(f"field {field.name!r} has no metadata[{key!r}]; every option needs help text (a bool "
                         "that is on by default needs 'off_help': what its flag does)")
    text = text.rstrip()
    shown_default = field.metadata.get("default_text", format_default(default)) if shown else ""
    if shown_default and "(default" not in text:  # an empty default (no value) is not worth showing
        text += f" (default: {shown_default})"
    return text.replace("%", "%%")  # argparse %-formats help strings


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config_cls: type,
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    rename: Mapping[str, str | Sequence[str]] | None = None,
    required: Iterable[str] = (),
    optional: Iterable[str] = (),
) -> list[str]:
    """Add one flag per command-line field of the dataclass ``config_cls`` to ``parser``.

    Args:
        parser: an ``ArgumentParser`` or one of its argument groups.
        config_cls: the config dataclass; every field added needs ``metadata["help"]``.
        only: add just these fields, in this order (default: every field with ``metadata.get("cli", True)``).
        exclude: fields to leave out (set from elsewhere, or shared with another config already added).
        rename: field name -> flag name(s) for this command, overriding ``metadata["flags"]``.
        required: fields that must be given on this command line even though the dataclass has a default.
        optional: fields without a default that this command line may leave out (``None``; the command
            checks them when it needs them, e.g. ``--model`` only for ``--generator llm``).

    Returns:
        The names of the fields added; :func:`config_kwargs` reads them back from the parsed arguments.
    """
    hints = typing.get_type_hints(config_cls)
    required, optional = set(required), set(optional)
    added = []
    for field in cli_fields(config_cls, only=only, exclude=exclude):
        if field.metadata.get("positional"):
            _add_positional(parser, field, hints[field.name])
            added.append(field.name)
            continue
        flags = option_flags(field, rename)
        default = field_default(field)
        kwargs: dict[str, Any] = {"dest": field.name}
        check_given = False
        if _is_bool(hints[field.name]) and "parse" not in field.metadata:
            on_by_default = default is True
            if on_by_default and not (rename or {}).get(field.name) and not field.metadata.get("flags"):
                flags = ["--no-" + field.name.replace("_", "-")]
            kwargs.update(action="store_false" if on_by_default else "store_true", default=bool(default))
            # A flag's help says what giving it does: a setting that is on by default is turned off by its
            # flag, so its help is the field's `off_help`, not the description of the setting.
            kwargs["help"] = _help(field, default, shown=False, key="off_help" if on_by_default else "help")
        else:
            if field.metadata.get("repeat"):  # one value per flag: `parse` (or the item type) converts each
                parse, choices = ((field.metadata["parse"], None) if "parse" in field.metadata
                                  else _scalar_parser(_item_hint(hints[field.name]), field.name))
                kwargs["action"] = "append"
            else:
                parse, choices, _ = _value_parser(field, hints[field.name])
            kwargs["type"] = _argparse_type(parse)
            kwargs["metavar"] = field.metadata.get("metavar") or (
                "{" + ",".join(choices) + "}" if choices else _metavar(flags)
            )
            if field.name in optional and default is dataclasses.MISSING:
                kwargs["default"] = default = None
            elif field.name in required or default is dataclasses.MISSING:
                if isinstance(parser, CommandParser):  # checked after parsing: --x_y must satisfy it too
                    kwargs["default"], check_given = None, True
                else:
                    kwargs["required"] = True
            else:
                kwargs["default"] = default
            if kwargs.get("action") == "append":  # argparse appends to the default itself: never share it
                kwargs["default"] = None
            shown = default is not dataclasses.MISSING and default is not None and field.name not in required
            kwargs["help"] = _help(field, default, shown=shown) + (" (required)" if check_given else "")
        action = parser.add_argument(*flags, **kwargs)
        # our mark on argparse's Action, read back in parse_known_args
        action.procure_required = check_given  # type: ignore[attr-defined]
        _add_underscore_aliases(parser, flags, kwargs)
        added.append(field.name)
    return added


def _item_hint(hint: Any) -> Any:
    """The item type of a (possibly optional) sequence hint: ``list[str] | None`` -> ``str``."""
    return _strip_optional((typing.get_args(_strip_optional(hint)) or (str,))[0])


def _add_positional(parser, field: dataclasses.Field, hint: Any) -> None:
    """An input named without a flag; a list field takes one or more values."""
    default = field_default(field)
    parse, choices, is_list = _value_parser(field, hint)
    if is_list and "parse" not in field.metadata:  # one value per word, not comma-separated
        parse, choices = _scalar_parser(_item_hint(hint), field.name)
    if is_list:
        nargs: str | None = "+" if default is dataclasses.MISSING else "*"
    else:
        nargs = None if default is dataclasses.MISSING else "?"
    kwargs: dict[str, Any] = {"type": _argparse_type(parse), "help": _help(field, default, shown=False),
                              "metavar": field.metadata.get("metavar") or field.name.upper()}
    if nargs:
        kwargs["nargs"] = nargs
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    if choices and not field.metadata.get("metavar"):  # the type converts and checks them; argparse only shows them
        kwargs["metavar"] = "{" + ",".join(choices) + "}"
    parser.add_argument(field.name, **kwargs)


def _metavar(flags: Sequence[str]) -> str:
    """The placeholder follows the flag the user sees (``--output OUTPUT``), not the field name."""
    return next((f for f in flags if f.startswith("--")), flags[0]).lstrip("-").replace("-", "_").upper()


def flag_spellings(flag: str) -> list[str]:
    """``flag`` and its other spelling: ``--x-y`` and ``--x_y`` (either given), as ``HfArgumentParser`` accepts."""
    if not flag.startswith("--"):
        return [flag]
    name = flag[2:]
    other = "--" + (name.replace("-", "_") if "-" in name else name.replace("_", "-"))
    return [flag] if other == flag else [flag, other]


def _add_underscore_aliases(parser, flags: Sequence[str], kwargs: Mapping[str, Any]) -> None:
    """Accept ``--field_name`` for ``--field-name`` (HfArgumentParser's and TRL's spelling), unlisted."""
    aliases = [alias for f in flags for alias in flag_spellings(f)[1:]]
    if aliases:
        hidden = {k: v for k, v in kwargs.items() if k not in ("required", "metavar")}
        parser.add_argument(*aliases, **{**hidden, "help": argparse.SUPPRESS})


def config_kwargs(config_cls: type, args: argparse.Namespace, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The parsed values of ``config_cls``'s fields present in ``args`` (as keyword arguments of the config)."""
    names = {f.name for f in dataclasses.fields(config_cls) if f.init} - set(exclude)
    return {name: value for name, value in vars(args).items() if name in names}


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line with a "did you mean" (exit code 2, as argparse).

    argparse prints the whole usage before the error; with dozens of options that buries the one line
    that matters. A misspelled flag or choice gets the closest known one from this parser. A flag is given in
    full (either spelling): no prefix of it is taken for it, so ``--output`` never means ``--output-dir``.
    """

    chosen_subparser: argparse.ArgumentParser  # set by cli.build_parser: the subcommand being run

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):  # noqa: D102 - argparse's entry point
        namespace, extra = super().parse_known_args(args, namespace)
        # A required option is not argparse-required: its other spelling (--x_y, a second action) satisfies it too.
        missing = [a.option_strings[0] for a in self._actions
                   if getattr(a, "procure_required", False) and getattr(namespace, a.dest, None) is None]
        if missing:
            self.error(f"the following arguments are required: {', '.join(missing)}")
        return namespace, extra

    def error(self, message: str):  # noqa: D102 - argparse's hook
        from procure_trl.errors import print_error

        print_error(self.prog, f"{message}{self._suggestion(message)}; see {self.prog} --help")
        self.exit(2)

    def _suggestion(self, message: str) -> str:
        from procure_trl.errors import did_you_mean

        choice = re.search(r"invalid choice: '?([^' ]+)'?", message)
        if choice:
            known = [str(c) for a in self._actions if a.choices for c in a.choices]
            return did_you_mean(choice.group(1), known)
        if message.startswith("unrecognized arguments:"):
            known = [s for a in self._actions if a.help != argparse.SUPPRESS for s in a.option_strings]
            flags = [t.split("=")[0] for t in message.split(":", 1)[1].split() if t.startswith("-")]
            return "".join(did_you_mean(flag, known) for flag in flags)
        return ""
