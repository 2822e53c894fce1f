"""Answer templates: an intent's reply in English and Chinese, with slots to fill.

A template file (YAML) maps intents to replies. Each template names the slots its text
uses; required slots must be filled before the reply can be sent, and each has a prompt
that asks the customer for it. Example::

    templates:
      - id: order_status
        intent: track_order
        required_slots: [order_id]
        optional_slots: [date]
        text:
          en: "Order {order_id} is on its way."
          zh-CN: "订单 {order_id} 正在配送中。"
        prompts:
          order_id:
            en: "What is your order number?"
            zh-CN: "请提供您的订单号。"

Every mistake is found at load time and reported with the file and line: YAML that does not
parse, a missing or unknown key, a placeholder that names no declared slot, an intent the
intent model does not know, a language without text or prompt, a required slot without a
prompt, and a repeated id or intent.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

LANGUAGES = ("en", "zh-CN")
_TEMPLATE_KEYS = {"id", "intent", "required_slots", "optional_slots", "text", "prompts"}


class TemplateError(ValueError):
    """A template file is invalid; the message names the file and line."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        location = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{location}: {message}")
        self.path = path
        self.line = line


@dataclass(frozen=True)
class AnswerTemplate:
    """One intent's reply with the slots it needs.

    Attributes:
        id: Unique name of the template, shown in a reply's explanation.
        intent: The intent it replies to.
        text: Reply text per language, with ``{slot}`` placeholders.
        required_slots: Slots that must be filled before the reply is sent.
        optional_slots: Slots the text may use; an unfilled one renders as empty text.
        prompts: Per required slot, the question that asks for it, per language.
        line: Line of the template in its file.
    """

    id: str
    intent: str
    text: Mapping[str, str]
    required_slots: tuple[str, ...] = ()
    optional_slots: tuple[str, ...] = ()
    prompts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    line: int | None = None

    def missing_slots(self, slots: Mapping[str, str]) -> list[str]:
        """Return the required slots without a value, in declared order."""
        return [name for name in self.required_slots if not slots.get(name)]

    def prompt(self, slot: str, language: str) -> str:
        """Return the prompt for ``slot`` in ``language``, or in English when it has none."""
        prompts = self.prompts[slot]
        return prompts.get(language) or prompts["en"]

    def render(self, language: str, slots: Mapping[str, str]) -> str:
        """Return the reply in ``language`` with the slot values filled in.

        Raises:
            ValueError: If a required slot has no value; ask for it with :meth:`prompt`.
        """
        missing = self.missing_slots(slots)
        if missing:
            raise ValueError(f"template {self.id!r} needs the slots {missing}: ask for them first")
        values = {name: str(slots.get(name) or "") for name in self.slot_names}
        text = self.text.get(language) or self.text["en"]
        return text.format_map(values).strip()

    @property
    def slot_names(self) -> tuple[str, ...]:
        """Every slot the template declares, required ones first."""
        return self.required_slots + self.optional_slots


@dataclass(frozen=True)
class TemplateSet:
    """The templates of one file, looked up by intent."""

    path: Path
    templates: tuple[AnswerTemplate, ...]

    def for_intent(self, intent: str | None) -> AnswerTemplate | None:
        """Return the template of ``intent``, or None when it has none."""
        if intent is None:
            return None
        for template in self.templates:
            if template.intent == intent:
                return template
        return None

    def by_id(self, template_id: str | None) -> AnswerTemplate | None:
        """Return the template called ``template_id``, or None."""
        for template in self.templates:
            if template.id == template_id:
                return template
        return None

    @property
    def intents(self) -> frozenset[str]:
        """Intents that have a template."""
        return frozenset(template.intent for template in self.templates)


def load_templates(
    path: Path | str,
    *,
    known_intents: Collection[str] | None = None,
    languages: Collection[str] = LANGUAGES,
) -> TemplateSet:
    """Read and check a template file.

    Args:
        path: The YAML file.
        known_intents: Labels of the intent model; None skips that check.
        languages: Languages every text and prompt must have.

    Raises:
        TemplateError: If the file is missing, unreadable or invalid; the message names the
            file, the line and what to change.
    """
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise TemplateError(path, None, "file not found: check the path") from error
    except UnicodeDecodeError as error:
        raise TemplateError(path, None, "not UTF-8 text: save the file as UTF-8") from error

    try:
        root = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise TemplateError(path, line, f"invalid YAML: {error}") from error

    items = _templates_node(path, root)
    templates: list[AnswerTemplate] = []
    seen_ids: dict[str, int] = {}
    seen_intents: dict[str, int] = {}
    for node in items:
        template = _parse_template(path, node, known_intents, tuple(languages))
        for value, seen, field_name in (
            (template.id, seen_ids, "id"),
            (template.intent, seen_intents, "intent"),
        ):
            if value in seen:
                raise TemplateError(
                    path,
                    template.line,
                    f"{field_name} {value!r} is used again (first on line {seen[value]}): "
                    f"give each template its own {field_name}",
                )
            seen[value] = template.line or 0
        templates.append(template)

    logger.info("Loaded %d answer templates from %s", len(templates), path)
    return TemplateSet(path, tuple(templates))


def _templates_node(path: Path, root: yaml.Node | None) -> list[yaml.Node]:
    if not isinstance(root, yaml.MappingNode):
        raise TemplateError(path, 1, "the file must be a mapping with a 'templates' list")
    for key, value in root.value:
        if key.value == "templates":
            if not isinstance(value, yaml.SequenceNode) or not value.value:
                raise TemplateError(
                    path, _line(value), "'templates' must be a non-empty list of templates"
                )
            return list(value.value)
    raise TemplateError(path, 1, "the file has no 'templates' list: add one")


def _parse_template(
    path: Path,
    node: yaml.Node,
    known_intents: Collection[str] | None,
    languages: tuple[str, ...],
) -> AnswerTemplate:
    line = _line(node)
    if not isinstance(node, yaml.MappingNode):
        raise TemplateError(path, line, "each template must be a mapping with id, intent, text")
    fields = {key.value: value for key, value in node.value}
    unknown = sorted(set(fields) - _TEMPLATE_KEYS)
    if unknown:
        raise TemplateError(
            path, line, f"unknown keys {unknown}: use only {sorted(_TEMPLATE_KEYS)}"
        )

    template_id = _required_string(path, fields, "id", line)
    intent = _required_string(path, fields, "intent", line)
    if known_intents is not None and intent not in known_intents:
        raise TemplateError(
            path,
            _line(fields["intent"]),
            f"intent {intent!r} is not known to the intent model: use one of its intents "
            f"({', '.join(sorted(known_intents)[:8])}...) or train a model that has it",
        )
    required = _string_list(path, fields.get("required_slots"), "required_slots", line)
    optional = _string_list(path, fields.get("optional_slots"), "optional_slots", line)
    text = _per_language(path, fields.get("text"), "text", languages, line)
    declared = set(required) | set(optional)
    for language, value in text.items():
        _check_placeholders(path, _line(fields["text"]), template_id, language, value, declared)

    prompts_node = fields.get("prompts")
    prompts: dict[str, dict[str, str]] = {}
    if prompts_node is not None:
        if not isinstance(prompts_node, yaml.MappingNode):
            raise TemplateError(path, _line(prompts_node), "'prompts' must map slots to texts")
        for key, value in prompts_node.value:
            if key.value not in declared:
                raise TemplateError(
                    path, _line(key), f"prompt for undeclared slot {key.value!r}: declare it"
                )
            prompts[key.value] = _per_language(
                path, value, f"prompt of {key.value!r}", languages, _line(key)
            )
    for slot in required:
        if slot not in prompts:
            raise TemplateError(
                path,
                line,
                f"required slot {slot!r} of template {template_id!r} has no prompt: add "
                f"prompts.{slot} with the question that asks for it",
            )

    return AnswerTemplate(
        id=template_id,
        intent=intent,
        text=text,
        required_slots=tuple(required),
        optional_slots=tuple(optional),
        prompts=prompts,
        line=line,
    )


def _check_placeholders(path, line, template_id, language, value, declared) -> None:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as error:
        raise TemplateError(
            path, line, f"text of {template_id!r} ({language}) is malformed: {error}"
        ) from error
    for name in names:
        if name not in declared:
            raise TemplateError(
                path,
                line,
                f"text of {template_id!r} ({language}) uses the placeholder {{{name}}}, "
                "which is not a declared slot: add it to required_slots or optional_slots",
            )


def _required_string(path: Path, fields: dict[str, Any], key: str, line: int | None) -> str:
    node = fields.get(key)
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise TemplateError(path, _line(node) or line, f"'{key}' is missing or empty")
    return str(node.value).strip()


def _string_list(path: Path, node: yaml.Node | None, key: str, line: int | None) -> list[str]:
    if node is None:
        return []
    if not isinstance(node, yaml.SequenceNode) or not all(
        isinstance(item, yaml.ScalarNode) and item.value.strip() for item in node.value
    ):
        raise TemplateError(path, _line(node) or line, f"'{key}' must be a list of slot names")
    return [item.value.strip() for item in node.value]


def _per_language(
    path: Path, node: yaml.Node | None, label: str, languages: tuple[str, ...], line: int | None
) -> dict[str, str]:
    if not isinstance(node, yaml.MappingNode):
        raise TemplateError(
            path, _line(node) or line, f"{label} must map each language ({languages}) to text"
        )
    values = {
        key.value: str(value.value)
        for key, value in node.value
        if isinstance(value, yaml.ScalarNode)
    }
    missing = [language for language in languages if not values.get(language, "").strip()]
    if missing:
        raise TemplateError(
            path, _line(node), f"{label} has no text for {missing}: add it for every language"
        )
    return values


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None
