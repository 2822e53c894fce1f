from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest

from nlu.rules import DEFAULT_MAX_TEXT_CHARS, build_rule_extractors
from nlu.rules.numerals import parse_chinese_number

# Wednesday 2 December 2026, 10:00 in China.
REFERENCE = datetime(2026, 12, 2, 10, 0, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture(scope="module")
def rules():
    return build_rule_extractors()


def found(rules, text, reference=REFERENCE):
    """Return (type, text, value) per entity, after checking every offset."""
    entities = rules.extract(text, reference)
    for entity in entities:
        assert text[entity.start : entity.end] == entity.text, entity
        assert entity.source.startswith("rule:"), entity
        assert entity.confidence is None, entity
    return [(entity.type, entity.text, entity.value) for entity in entities]


def test_issue_sentence_unspaced_chinese(rules):
    text = "我的订单号是A12345678，明天下午三点能送到吗？退款199元"

    entities = rules.extract(text, REFERENCE)

    assert [(e.type, e.start, e.end, e.value) for e in entities] == [
        ("order_id", 6, 15, "A12345678"),
        ("datetime", 16, 22, "2026-12-03T15:00"),
        ("money", 29, 33, "199 CNY"),
    ]
    assert [e.source for e in entities] == ["rule:id", "rule:datetime", "rule:money"]


def test_mixed_chinese_and_english(rules):
    text = "Hi，我的email是Bob@Example.com，order #A12345678 明天3pm送到，电话+86 138 1234 5678"

    assert found(rules, text) == [
        ("email", "Bob@Example.com", "bob@example.com"),
        ("order_id", "A12345678", "A12345678"),
        ("datetime", "明天3pm", "2026-12-03T15:00"),
        ("phone", "+86 138 1234 5678", "+8613812345678"),
    ]


# --- e-mail -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Mail Bob.Smith+shop@Example.COM today",
            [("Bob.Smith+shop@Example.COM", "bob.smith+shop@example.com")],
        ),
        (
            "请发到zhang_san@mail.example.com.cn谢谢",
            [("zhang_san@mail.example.com.cn", "zhang_san@mail.example.com.cn")],
        ),
        (
            "邮箱：ｌｉ＠ｅｘａｍｐｌｅ．ｃｏｍ",
            [("ｌｉ＠ｅｘａｍｐｌｅ．ｃｏｍ", "li@example.com")],
        ),
        ("a@b.co and c@d.org.", [("a@b.co", "a@b.co"), ("c@d.org", "c@d.org")]),
    ],
)
def test_email_found_with_offsets(rules, text, expected):
    emails = [(t, v) for kind, t, v in found(rules, text) if kind == "email"]

    assert emails == expected


@pytest.mark.parametrize("text", ["user@localhost", "@handle", "name@", "a@b.c", "x@-bad.com"])
def test_email_rejects_incomplete_addresses(rules, text):
    assert [kind for kind, _, _ in found(rules, text) if kind == "email"] == []


# --- phone --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phone_text", "value"),
    [
        ("call +44 20 7946 0958 now", "+44 20 7946 0958", "+442079460958"),
        ("call +44 (0)20 7946 0958", "+44 (0)20 7946 0958", "+442079460958"),
        ("call (555) 123-4567", "(555) 123-4567", "5551234567"),
        ("call 555-123-4567 2 times", "555-123-4567", "5551234567"),
        ("call 555.123.4567", "555.123.4567", "5551234567"),
        ("phone: 5551234567", "5551234567", "5551234567"),
        ("我的手机是13812345678谢谢", "13812345678", "13812345678"),
        ("手机+86 138 1234 5678", "+86 138 1234 5678", "+8613812345678"),
        ("座机010-12345678", "010-12345678", "01012345678"),
        ("UK office 020 7946 0958", "020 7946 0958", "02079460958"),
        ("电话：１３８１２３４５６７８", "１３８１２３４５６７８", "13812345678"),
    ],
)
def test_phone_found_with_offsets(rules, text, phone_text, value):
    phones = [(t, v) for kind, t, v in found(rules, text) if kind == "phone"]

    assert phones == [(phone_text, value)]


@pytest.mark.parametrize(
    "text",
    [
        "order #A12345678",  # an order id
        "ORD-2024-0001",  # an order id with a year inside
        "price $1234567.50",  # a price
        "退款13812345678元",  # an amount in yuan
        "ship on 2026-12-05",  # an ISO date
        "ship on 12-05-2026",  # a numeric date
        "version 2.0.1",  # a version number
        "server 192.168.1.100",  # an IP address
        "card 4111 1111 1111 1111",  # a card number in groups
        "card 4111111111111111",  # a card number unbroken
        "in 2024-2025",  # a year range
        "in 2026",  # a year
        "ref 5551234567",  # an unbroken run with no phone word
        "hotel room 5551234567",  # "tel" inside another word
        "12345678901234567890",  # a long digit run
    ],
)
def test_phone_not_found_in_other_numbers(rules, text):
    assert [kind for kind, _, _ in found(rules, text) if kind == "phone"] == []


# --- ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Where is order #A12345678?", [("order_id", "A12345678", "A12345678")]),
        ("Where is ord-2024-0001?", [("order_id", "ord-2024-0001", "ORD-2024-0001")]),
        ("订单号123456789还没到", [("order_id", "123456789", "123456789")]),
        ("order number: 987654", [("order_id", "987654", "987654")]),
        ("my ticket TKT-20931 is open", [("ticket_id", "TKT-20931", "TKT-20931")]),
        ("工单4821怎么样了", [("ticket_id", "4821", "4821")]),
        ("see case #99812", [("ticket_id", "99812", "99812")]),
    ],
)
def test_ids_found_with_default_patterns(rules, text, expected):
    assert found(rules, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I bought 123456 stickers",  # a bare number with no context word
        "border 123456",  # "order" inside another word
        "XA12345678",  # glued to another letter
        "A12345678B",  # glued to a letter after
        "ORD-2024-0001-7",  # glued to a hyphen and digit after
    ],
)
def test_ids_not_found_without_context_or_boundary(rules, text):
    assert [kind for kind, _, _ in found(rules, text) if kind.endswith("_id")] == []


def test_ids_context_window_is_bounded():
    text = "order placed long ago, reference 123456"

    assert found(build_rule_extractors(id_context_window_chars=40), text) == [
        ("order_id", "123456", "123456")
    ]
    assert found(build_rule_extractors(id_context_window_chars=10), text) == []


def test_ids_custom_pattern_with_id_group():
    rules = build_rule_extractors(
        {"invoice_id": r"(?i:invoice|发票)\s*(?:no\.?|号)?\s*(?P<id>INV\d{5}|\d{8})"},
        enabled_types={"invoice_id"},
    )

    assert found(rules, "invoice no. INV00042 is wrong") == [("invoice_id", "INV00042", "INV00042")]
    assert found(rules, "发票号12345678开错了") == [("invoice_id", "12345678", "12345678")]
    assert found(rules, "order #A12345678") == []


def test_ids_custom_bare_digits_need_context_words():
    pattern = {"member_id": r"\d{7}"}

    without_words = build_rule_extractors(pattern, enabled_types={"member_id"})
    with_words = build_rule_extractors(
        pattern, id_context_words={"member_id": ["member", "会员"]}, enabled_types={"member_id"}
    )

    assert found(without_words, "会员1234567") == []
    assert found(with_words, "会员1234567") == [("member_id", "1234567", "1234567")]


def test_ids_empty_patterns_find_no_ids():
    no_ids = build_rule_extractors({})

    assert found(no_ids, "order #A12345678") == []


@pytest.mark.parametrize(
    ("id_patterns", "message"),
    [
        (
            {"order_id": r"ORD-(\d+"},
            r"Invalid regular expression in id_patterns\['order_id'\]: 'ORD-\(\\\\d\+'",
        ),
        (
            {"order_id": r"\d*"},
            r"id_patterns\['order_id'\]: '\\\\d\*' matches the empty string",
        ),
        (
            {"order_id": ""},
            r"Invalid id_patterns\['order_id'\]: expected a non-empty regular expression",
        ),
        ({"Order ID": r"\d+"}, r"Invalid entity type 'Order ID' in id_patterns"),
        (
            {"phone": r"\d+"},
            r"Invalid entity type 'phone' in id_patterns: another rule extractor returns it",
        ),
    ],
)
def test_ids_bad_pattern_config_raises(id_patterns, message):
    with pytest.raises(ValueError, match=message):
        build_rule_extractors(id_patterns)


def test_ids_context_words_for_unknown_type_raise():
    with pytest.raises(
        ValueError, match="id_context_words names 'invoice_id', which has no pattern"
    ):
        build_rule_extractors(id_context_words={"invoice_id": ["invoice"]})


# --- dates and times ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("deliver on 2026-12-05 please", [("date", "2026-12-05", "2026-12-05")]),
        ("deliver on 12/05/2026 please", [("date", "12/05/2026", "2026-12-05")]),
        ("deliver on 25/12/2026 please", [("date", "25/12/2026", "2026-12-25")]),
        ("deliver on 5 Dec 2026", [("date", "5 Dec 2026", "2026-12-05")]),
        ("deliver on 5th of December", [("date", "5th of December", "2026-12-05")]),
        ("deliver on December 5", [("date", "December 5", "2026-12-05")]),
        ("deliver on Dec. 5th, 2027", [("date", "Dec. 5th, 2027", "2027-12-05")]),
        ("deliver tomorrow", [("date", "tomorrow", "2026-12-03")]),
        ("deliver today", [("date", "today", "2026-12-02")]),
        ("the day after tomorrow", [("date", "day after tomorrow", "2026-12-04")]),
        ("deliver next Monday", [("date", "next Monday", "2026-12-07")]),
        ("deliver next Friday", [("date", "next Friday", "2026-12-11")]),
        ("deliver on Friday", [("date", "Friday", "2026-12-04")]),
        ("deliver on Wednesday", [("date", "Wednesday", "2026-12-02")]),
        ("it came last Monday", [("date", "last Monday", "2026-11-23")]),
        ("deliver in 3 days", [("date", "in 3 days", "2026-12-05")]),
        ("deliver in two weeks", [("date", "in two weeks", "2026-12-16")]),
        ("ordered a month ago", [("date", "a month ago", "2026-11-02")]),
        ("come at 3pm", [("time", "3pm", "15:00")]),
        ("come at 15:30", [("time", "15:30", "15:30")]),
        ("come at 3:30 p.m. sharp", [("time", "3:30 p.m.", "15:30")]),
        ("come at 12am", [("time", "12am", "00:00")]),
        ("come at noon", [("time", "noon", "12:00")]),
        ("come tomorrow at 3pm", [("datetime", "tomorrow at 3pm", "2026-12-03T15:00")]),
        ("come 3pm tomorrow", [("datetime", "3pm tomorrow", "2026-12-03T15:00")]),
        ("come on 2026-12-05T15:30", [("datetime", "2026-12-05T15:30", "2026-12-05T15:30")]),
        ("come 15:30 on 5 Dec", [("datetime", "15:30 on 5 Dec", "2026-12-05T15:30")]),
    ],
)
def test_dates_english(rules, text, expected):
    assert found(rules, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12月5日送到", [("date", "12月5日", "2026-12-05")]),
        ("2026年12月5日送到", [("date", "2026年12月5日", "2026-12-05")]),
        ("二〇二七年十二月五号送到", [("date", "二〇二七年十二月五号", "2027-12-05")]),
        ("明天送到", [("date", "明天", "2026-12-03")]),
        ("后天送到", [("date", "后天", "2026-12-04")]),
        ("大后天送到", [("date", "大后天", "2026-12-05")]),
        ("昨天到的", [("date", "昨天", "2026-12-01")]),
        ("下周一送到", [("date", "下周一", "2026-12-07")]),
        ("下个星期五送到", [("date", "下个星期五", "2026-12-11")]),
        ("周五送到", [("date", "周五", "2026-12-04")]),
        ("星期天送到", [("date", "星期天", "2026-12-06")]),
        ("上周一买的", [("date", "上周一", "2026-11-23")]),
        ("这周一买的", [("date", "这周一", "2026-11-30")]),
        ("3天后送到", [("date", "3天后", "2026-12-05")]),
        ("两周后送到", [("date", "两周后", "2026-12-16")]),
        ("三个月后再说", [("date", "三个月后", "2027-03-02")]),
        ("5天前买的", [("date", "5天前", "2026-11-27")]),
        ("下午三点来", [("time", "下午三点", "15:00")]),
        ("15点30分来", [("time", "15点30分", "15:30")]),
        ("三点半来", [("time", "三点半", "03:30")]),
        ("晚上8点来", [("time", "晚上8点", "20:00")]),
        ("晚上十二点来", [("time", "晚上十二点", "00:00")]),
        ("中午1点来", [("time", "中午1点", "13:00")]),
        ("十点零五分来", [("time", "十点零五分", "10:05")]),
        ("八点一刻来", [("time", "八点一刻", "08:15")]),
        ("两点钟来", [("time", "两点钟", "02:00")]),
        ("１５：３０来", [("time", "１５：３０", "15:30")]),
        ("明天下午三点送到", [("datetime", "明天下午三点", "2026-12-03T15:00")]),
        ("明天三点送到", [("datetime", "明天三点", "2026-12-03T03:00")]),
        ("12月5日 15:30送到", [("datetime", "12月5日 15:30", "2026-12-05T15:30")]),
        ("周五的下午两点", [("datetime", "周五的下午两点", "2026-12-04T14:00")]),
        ("今晚8点送到", [("datetime", "今晚8点", "2026-12-02T20:00")]),
        ("明早9点送到", [("datetime", "明早9点", "2026-12-03T09:00")]),
    ],
)
def test_dates_chinese_unspaced(rules, text, expected):
    assert found(rules, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "in 2026",  # a year alone
        "version 2.0.1",  # a version
        "version 1.2.10",  # a version that would read as a dotted date
        "有三点建议",  # 点 as "points"
        "快一点",  # 点 as "a little"
        "第3点",  # 点 as an item number
        "you may 5 times",  # the verb, not the month
        "deliver on 2026-02-30",  # an invalid date
        "score 3:1",  # not a clock time
        "room 25:30",  # no such hour
    ],
)
def test_dates_not_found(rules, text):
    assert [kind for kind, _, _ in found(rules, text) if kind in ("date", "time", "datetime")] == []


def test_dates_day_first_order():
    day_first = build_rule_extractors(numeric_date_order="DMY")

    assert found(day_first, "on 12/05/2026") == [("date", "12/05/2026", "2026-05-12")]
    assert found(day_first, "on 05.12.2026") == [("date", "05.12.2026", "2026-12-05")]


def test_dates_bad_numeric_order_raises():
    with pytest.raises(ValueError, match="Invalid numeric_date_order 'YMD'"):
        build_rule_extractors(numeric_date_order="YMD")


def test_dates_without_datetime_type_stay_separate():
    rules = build_rule_extractors(enabled_types={"date", "time"})

    assert found(rules, "明天下午三点") == [
        ("date", "明天", "2026-12-03"),
        ("time", "下午三点", "15:00"),
    ]


def test_dates_reference_time_must_be_aware(rules):
    with pytest.raises(ValueError, match="reference_time 2026-12-02T10:00:00 has no time zone"):
        rules.extract("tomorrow", datetime(2026, 12, 2, 10, 0))


def test_dates_default_reference_time_is_now_in_zone():
    rules = build_rule_extractors(timezone=UTC)

    before = datetime.now(UTC).date().isoformat()
    values = [entity.value for entity in rules.extract("today")]
    after = datetime.now(UTC).date().isoformat()

    assert values in ([before], [after])


# --- money --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "money_text", "value"),
    [
        ("refund $12.50 please", "$12.50", "12.50 USD"),
        ("refund 12.50 USD please", "12.50 USD", "12.50 USD"),
        ("refund €30", "€30", "30 EUR"),
        ("refund £5", "£5", "5 GBP"),
        ("refund 30 euros", "30 euros", "30 EUR"),
        ("refund $1,299.9", "$1,299.9", "1299.90 USD"),
        ("refund US$5", "US$5", "5 USD"),
        ("refund RMB 200", "RMB 200", "200 CNY"),
        ("退款¥100", "¥100", "100 CNY"),
        ("退款￥100", "￥100", "100 CNY"),
        ("退款100元", "100元", "100 CNY"),
        ("退款100块", "100块", "100 CNY"),
        ("退款一百元", "一百元", "100 CNY"),
        ("退款两千五百元", "两千五百元", "2500 CNY"),
        ("退款三块钱", "三块钱", "3 CNY"),
        ("退款1.5万元", "1.5万元", "15000 CNY"),
        ("退款20美元", "20美元", "20 USD"),
        ("退款，100元", "100元", "100 CNY"),
        ("退款１００元", "１００元", "100 CNY"),
    ],
)
def test_money_found_with_offsets(rules, text, money_text, value):
    money = [(t, v) for kind, t, v in found(rules, text) if kind == "money"]

    assert money == [(money_text, value)]


@pytest.mark.parametrize(
    "text", ["三块蛋糕", "元旦快乐", "100 items", "version 2.0.1", "12.505 USD", "v.5元", "1,00元"]
)
def test_money_not_found(rules, text):
    assert [kind for kind, _, _ in found(rules, text) if kind == "money"] == []


def test_money_currency_settings():
    rules = build_rule_extractors(dollar_currency="CAD", yen_currency="JPY")

    assert found(rules, "$5 and ¥500") == [("money", "$5", "5 CAD"), ("money", "¥500", "500 JPY")]


def test_money_bad_currency_raises():
    with pytest.raises(ValueError, match="Invalid dollar_currency 'usd'"):
        build_rule_extractors(dollar_currency="usd")


# --- duplicates and configuration ---------------------------------------------------------


def test_duplicate_phone_and_order_id_give_one_entity(rules):
    text = "订单13812345678"

    entities = rules.extract(text, REFERENCE)
    phone_only = build_rule_extractors(enabled_types={"phone"}).extract(text, REFERENCE)

    assert [(e.type, e.text) for e in entities] == [("order_id", "13812345678")]
    assert [(e.type, e.text) for e in phone_only] == [("phone", "13812345678")]


def test_duplicate_custom_id_beats_phone():
    rules = build_rule_extractors(
        {"member_id": r"\d{11}"}, id_context_words={"member_id": ["会员"]}
    )

    assert found(rules, "会员13812345678") == [("member_id", "13812345678", "13812345678")]


def test_duplicate_shapes_keep_longest(rules):
    # "¥13812345678" is money; the phone rule must not also claim the digits.
    assert found(rules, "¥13812345678") == [("money", "¥13812345678", "13812345678 CNY")]


def test_enabled_types_filter():
    only_email = build_rule_extractors(enabled_types=["email"])

    assert found(only_email, "a@b.co 明天 100元 13812345678") == [("email", "a@b.co", "a@b.co")]


def test_enabled_types_unknown_raises():
    with pytest.raises(
        ValueError, match=r"enabled_types contains unknown entity types \['zipcode'\]"
    ):
        build_rule_extractors(enabled_types={"email", "zipcode"})


def test_max_text_chars_invalid_raises():
    with pytest.raises(ValueError, match="max_text_chars must be positive"):
        build_rule_extractors(max_text_chars=0)


# --- inputs with nothing to find or too much ----------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "😀🎉👍", "？？？！！", "\n\t"])
def test_extract_empty_and_emoji_only(rules, text):
    assert rules.extract(text, REFERENCE) == []


def test_extract_offsets_after_emoji(rules):
    text = "😀😀 13812345678"

    entities = rules.extract(text, REFERENCE)

    assert [(e.start, e.end) for e in entities] == [(3, 14)]


@pytest.mark.parametrize(
    ("text", "expected_count"),
    [
        ("7" * 100_000, 0),
        ("a@" * 50_000, 0),
        ("我的订单号是明天下午三点" * 8_400, 8_400),
        ("订单号1234567" * 10_000, 10_000),
        ("1-" * 50_000, 0),
    ],
    ids=["digits", "a-at", "chinese", "chinese-ids", "digit-hyphen"],
)
def test_extract_huge_input_finishes(text, expected_count):
    unlimited = build_rule_extractors(max_text_chars=None)

    entities = unlimited.extract(text, REFERENCE)

    assert len(text) >= 100_000
    assert len(entities) == expected_count


def test_extract_huge_input_scans_prefix(rules, caplog):
    text = "a@b.co " * 20_000

    with caplog.at_level(logging.DEBUG, logger="nlu.rules.registry"):
        entities = rules.extract(text, REFERENCE)

    assert len(entities) == DEFAULT_MAX_TEXT_CHARS // len("a@b.co ")
    assert all(entity.end <= DEFAULT_MAX_TEXT_CHARS for entity in entities)
    assert "scans only the first 20000 of 140000 characters" in caplog.text


# --- Chinese numerals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("一百", 100),
        ("十二", 12),
        ("二十五", 25),
        ("一百零五", 105),
        ("两千五", 2500),
        ("三千五百", 3500),
        ("一万二千", 12_000),
        ("一万零五百", 10_500),
        ("五十万", 500_000),
        ("三亿五千万", 350_000_000),
        ("二〇二六", 2026),
        ("壹佰", 100),
        ("一二百", None),
        ("万", None),
        ("十点", None),
        ("", None),
    ],
)
def test_parse_chinese_number(text, value):
    assert parse_chinese_number(text) == value
