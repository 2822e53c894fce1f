"""Answer templates: loading, the checks at load time with file and line, rendering."""

from __future__ import annotations

import textwrap

import pytest

from bot.templates import TemplateError, load_templates

VALID = """\
templates:
  - id: order_status
    intent: track_order
    required_slots: [order_id]
    optional_slots: [date]
    text:
      en: "Order {order_id} is on its way. {date}"
      zh-CN: "订单 {order_id} 正在配送中。{date}"
    prompts:
      order_id:
        en: "What is your order number?"
        zh-CN: "请提供您的订单号。"
  - id: opening_hours
    intent: hours
    text:
      en: "We are open 9:00-18:00."
      zh-CN: "营业时间为 9:00-18:00。"
"""


PROMPTS_BLOCK = VALID[VALID.index("    prompts:") : VALID.index("  - id: opening_hours")]


def _write(tmp_path, content: str | bytes):
    path = tmp_path / "templates.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(textwrap.dedent(content), encoding="utf-8")
    return path


def test_load_and_render_both_languages(tmp_path):
    templates = load_templates(_write(tmp_path, VALID), known_intents={"track_order", "hours"})

    order = templates.for_intent("track_order")
    assert order.id == "order_status"
    assert order.line == 2
    assert order.render("en", {"order_id": "A123"}) == "Order A123 is on its way."
    assert order.render("zh-CN", {"order_id": "A123", "date": "明天"}).endswith("明天")
    assert templates.for_intent("hours").render("en", {}) == "We are open 9:00-18:00."
    assert templates.for_intent("refund") is None
    assert templates.for_intent(None) is None


def test_missing_slot_gives_the_prompt(tmp_path):
    order = load_templates(_write(tmp_path, VALID)).for_intent("track_order")

    assert order.missing_slots({}) == ["order_id"]
    assert order.missing_slots({"order_id": "A1"}) == []
    assert order.prompt("order_id", "zh-CN") == "请提供您的订单号。"
    with pytest.raises(ValueError, match="needs the slots"):
        order.render("en", {})


@pytest.mark.parametrize(
    ("broken", "line", "message"),
    [
        (VALID.replace("{order_id} is", "{order_number} is"), 7, "placeholder {order_number}"),
        (VALID.replace("intent: hours", "intent: opening"), 14, "intent 'opening' is not known"),
        (
            VALID.replace('      zh-CN: "营业时间为 9:00-18:00。"\n', ""),
            16,
            "no text for ['zh-CN']",
        ),
        (VALID.replace('        zh-CN: "请提供您的订单号。"\n', ""), 11, "no text for ['zh-CN']"),
        (VALID.replace("id: opening_hours", "id: order_status"), 13, "id 'order_status' is used"),
        (
            VALID.replace(
                PROMPTS_BLOCK,
                "",
            ),
            2,
            "has no prompt",
        ),
        (
            VALID.replace("    optional_slots: [date]\n", "    colour: red\n"),
            2,
            "unknown keys ['colour']",
        ),
        ("templates: [\n", 2, "invalid YAML"),
        ("nothing: here\n", 1, "no 'templates' list"),
    ],
)
def test_invalid_file_names_line(tmp_path, broken, line, message):
    path = _write(tmp_path, broken)

    with pytest.raises(TemplateError) as caught:
        load_templates(path, known_intents={"track_order", "hours"})

    assert caught.value.line == line
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(TemplateError, match="file not found"):
        load_templates(tmp_path / "none.yaml")

    with pytest.raises(TemplateError, match="not UTF-8"):
        load_templates(_write(tmp_path, "templates: ['订单']".encode("gb18030")))
