from collections import Counter

import pytest

from finetune.redaction import (
    ADDRESS,
    ALL_KINDS,
    CARD,
    EMAIL,
    NAME,
    NATIONAL_ID,
    PHONE,
    RedactionResult,
    Redactor,
    redact,
)

TRUE_POSITIVES = [
    # E-mail
    ("Write to jane.doe@example.com today.", "Write to [EMAIL] today.", EMAIL),
    ("邮箱是 wang_li+vip@mail.example.cn，谢谢", "邮箱是 [EMAIL]，谢谢", EMAIL),
    # Phone, international and North American
    ("Call +1 415 555 0100 now", "Call [PHONE] now", PHONE),
    ("UK office: +44 20 7946 0958.", "UK office: [PHONE].", PHONE),
    ("Call (415) 555-0100 now", "Call [PHONE] now", PHONE),
    ("Call 415-555-0100 now", "Call [PHONE] now", PHONE),
    # Phone, Chinese mobile and landline
    ("手机13800138000谢谢", "手机[PHONE]谢谢", PHONE),
    ("手机 138 0013 8000", "手机 [PHONE]", PHONE),
    ("电话 +86 138-0013-8000 ok", "电话 [PHONE] ok", PHONE),
    ("座机 010-85007938。", "座机 [PHONE]。", PHONE),
    ("座机 021-12345678", "座机 [PHONE]", PHONE),
    ("座机 0755-1234567", "座机 [PHONE]", PHONE),
    # Card, Luhn valid
    ("card 4111 1111 1111 1111 expires", "card [CARD] expires", CARD),
    ("card 5500-0000-0000-0004.", "card [CARD].", CARD),
    ("Amex 378282246310005", "Amex [CARD]", CARD),
    ("银行卡 6222020200112233446 已绑定", "银行卡 [CARD] 已绑定", CARD),
    # National ID
    ("身份证号11010519491231002X。", "身份证号[NATIONAL_ID]。", NATIONAL_ID),
    ("ID 11010519491231002x", "ID [NATIONAL_ID]", NATIONAL_ID),
    ("身份证 440308199003071235", "身份证 [NATIONAL_ID]", NATIONAL_ID),
    ("SSN 123-45-6789.", "SSN [NATIONAL_ID].", NATIONAL_ID),
    # Address, English
    ("Ship to 221B Baker Street, Apt 4 please", "Ship to [ADDRESS] please", ADDRESS),
    (
        "Send it to 1600 Pennsylvania Avenue NW, Washington",
        "Send it to [ADDRESS], Washington",
        ADDRESS,
    ),
    ("Office: 350 5th Ave, Suite 3300.", "Office: [ADDRESS].", ADDRESS),
    ("I moved to 42 Elm Rd last week", "I moved to [ADDRESS] last week", ADDRESS),
    # Address, Chinese
    ("我住在北京市朝阳区建国路88号3号楼1单元502室，谢谢", "我住在[ADDRESS]，谢谢", ADDRESS),
    ("寄到广东省深圳市南山区科技园路1号", "寄到[ADDRESS]", ADDRESS),
    ("地址：内蒙古自治区呼和浩特市新城区新华大街1号", "地址：[ADDRESS]", ADDRESS),
    ("上海市浦东新区世纪大道100号", "[ADDRESS]", ADDRESS),
]

FALSE_POSITIVES = [
    "Where is order 10023?",
    "Order #A-88231 shipped.",
    "订单号 2019123456789 已发货",
    "Delivered on 2024-03-05 at 10:30.",
    "Delivered on March 5, 2024.",
    "3月5日下午3点送达",
    "It cost $12.50, refund 60元 or ¥1,299.",
    "Since 2024 we ship in 3 days.",
    "Upgrade to version 1.2.3 or 10.4.15.",
    "ISBN 978-3-16-148410-0 and 978-0-306-40615-7",
    "Luhn fails: 4111 1111 1111 1112",
    "Luhn fails: 4111-1111-1111-1113",
    # Passes Luhn, but 1 is not a payment card prefix.
    "Tracking 1234567890123452",
    # Chinese ID shape with a wrong check digit. The second one passes the Luhn check.
    "身份证 110105194912310021",
    "身份证 440308199003071237",
    "Invalid SSNs: 000-12-3456, 666-12-3456, 900-12-3456, 123-00-4567, 123-45-0000",
    "Room 12, floor 3, gate B",
    "tracking 1Z999AA10123456784",
    "call me at 5 pm on Main Street",
]


@pytest.mark.parametrize(("text", "expected", "kind"), TRUE_POSITIVES)
def test_redact_true_positive(text, expected, kind):
    result = redact(text)

    assert result.text == expected
    assert result.counts == Counter({kind: 1})


@pytest.mark.parametrize("text", FALSE_POSITIVES)
def test_redact_false_positive_untouched(text):
    result = redact(text)

    assert result.text == text
    assert result.counts == Counter()


def test_redact_counts_per_kind():
    text = (
        "Jane (jane@example.com, bob@example.org) called from 415-555-0100 and "
        "+44 20 7946 0958 about card 4111 1111 1111 1111, SSN 123-45-6789."
    )

    result = redact(text)

    assert result.counts == Counter({EMAIL: 2, PHONE: 2, CARD: 1, NATIONAL_ID: 1})
    assert result.text == (
        "Jane ([EMAIL], [EMAIL]) called from [PHONE] and "
        "[PHONE] about card [CARD], SSN [NATIONAL_ID]."
    )


def test_redact_mixed_chinese_english():
    text = (
        "您好，我是客户，order 10023 还没到。请寄到上海市浦东新区世纪大道100号，"
        "电话13800138000，email li.wei@example.com，2024-03-05 付款 ¥1,299。"
    )

    result = redact(text)

    assert result.text == (
        "您好，我是客户，order 10023 还没到。请寄到[ADDRESS]，"
        "电话[PHONE]，email [EMAIL]，2024-03-05 付款 ¥1,299。"
    )
    assert result.counts == Counter({ADDRESS: 1, PHONE: 1, EMAIL: 1})


def test_redact_without_ner_keeps_names():
    result = redact("My name is Ann Lee.")

    assert result.text == "My name is Ann Lee."
    assert NAME not in result.counts


def _find_known_names(text):
    spans = []
    for name in ("Ann Lee", "王小明"):
        start = text.find(name)
        if start >= 0:
            spans.append((start, start + len(name), "PER"))
    spans.append((0, 2, "MISC"))
    return spans


def test_redactor_ner_redacts_names():
    redactor = Redactor(ner=_find_known_names)

    result = redactor.redact("Hi, Ann Lee here, 王小明 is my colleague: ann@example.com")

    assert result.text == "Hi, [NAME] here, [NAME] is my colleague: [EMAIL]"
    assert result.counts == Counter({NAME: 2, EMAIL: 1})


def test_redactor_ner_overlap_longest_wins():
    def tag_email_user(text):
        start = text.index("ann")
        return [(start, start + 3, "PERSON")]

    result = Redactor(ner=tag_email_user).redact("Mail ann@example.com now")

    assert result.text == "Mail [EMAIL] now"
    assert result.counts == Counter({EMAIL: 1})


def test_redactor_ner_invalid_span_raises():
    redactor = Redactor(ner=lambda text: [(0, len(text) + 5, "PER")])

    with pytest.raises(ValueError, match="invalid span"):
        redactor.redact("Ann Lee")


def test_redact_overlapping_matches_one_placeholder():
    # The international and the North American pattern both match; the longer span wins.
    result = redact("+1 415 555 0100 and 1234 Main Street")

    assert result.text == "[PHONE] and [ADDRESS]"
    assert result.counts == Counter({PHONE: 1, ADDRESS: 1})


def test_redact_valid_id_passing_luhn_is_national_id():
    # 440308199003071104 also passes the Luhn check and starts with a card prefix.
    result = redact("证件 440308199003071104")

    assert result.text == "证件 [NATIONAL_ID]"
    assert result.counts == Counter({NATIONAL_ID: 1})


def test_redactor_enabled_kinds_only():
    redactor = Redactor(kinds={EMAIL})

    result = redactor.redact("jane@example.com 415-555-0100")

    assert result.text == "[EMAIL] 415-555-0100"
    assert result.counts == Counter({EMAIL: 1})


def test_redactor_unknown_kind_raises():
    with pytest.raises(ValueError, match=r"unknown kinds \['IBAN'\]"):
        Redactor(kinds={EMAIL, "IBAN"})


def test_redactor_non_callable_ner_raises():
    with pytest.raises(TypeError, match="ner must be a callable"):
        Redactor(ner="spacy")


def test_redact_non_str_raises():
    with pytest.raises(TypeError, match="text must be a str"):
        redact(b"jane@example.com")


def test_redact_empty_text():
    result = redact("")

    assert result == RedactionResult(text="", counts=Counter())


def test_redact_placeholders_are_stable():
    once = redact("jane@example.com, 4111 1111 1111 1111")

    twice = redact(once.text)

    assert twice.text == once.text
    assert twice.counts == Counter()


def test_all_kinds_lists_every_placeholder():
    assert set(ALL_KINDS) == {EMAIL, PHONE, CARD, NATIONAL_ID, ADDRESS, NAME}


@pytest.mark.parametrize(
    "chunk",
    [
        "Order 10023 for jane@example.com, call 415-555-0100. ",
        "我住在北京市朝阳区建国路88号，手机13800138000。",
        "1 2 3 4 5 6 7 8 9 0 ",
        "+1-2.3 (4) 5 ",
        "北京市朝阳区路省市区县",
        "a.b.c.d@e",
    ],
)
def test_redact_huge_input_returns(chunk):
    text = (chunk * (100_000 // len(chunk) + 1))[:100_000]

    result = redact(text)

    assert isinstance(result.text, str)
