"""PII masking on realistic Chinese and English verbatims, and what must stay visible."""

from __future__ import annotations

import pytest

from nlp.pii import PiiKind, mask_pii


def _luhn_complete(prefix: str) -> str:
    """Append the Luhn check digit to ``prefix`` (a real-looking card number for tests)."""
    for check in "0123456789":
        digits = prefix + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


CARD_UNIONPAY = _luhn_complete("622202020001123456")  # 19 digits
CARD_VISA = "4111111111111111"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("骑手电话13812345678一直打不通", "骑手电话[PHONE]一直打不通"),
        ("请联系我 138 1234 5678，谢谢", "请联系我 [PHONE]，谢谢"),
        ("客服回电+86 139-1234-5678太晚了", "客服回电[PHONE]太晚了"),
        ("门店电话 010-62345678 没人接", "门店电话 [PHONE] 没人接"),
        ("Call me back at (800) 433-7300 please", "Call me back at [PHONE] please"),
        ("my UK number is +44 20 7946 0958", "my UK number is [PHONE]"),
        ("发票请发到 zhang.san@qq.com谢谢", "发票请发到 [EMAIL]谢谢"),
        ("Email me: j.doe+cem@example.co.uk", "Email me: [EMAIL]"),
        ("身份证号11010519491231002X，实名认证失败", "身份证号[ID]，实名认证失败"),
        (f"退款到卡号{CARD_UNIONPAY}了吗", "退款到卡号[CARD]了吗"),
        (f"charged twice on card {CARD_VISA}", "charged twice on card [CARD]"),
        ("charged twice on 4111 1111 1111 1111!", "charged twice on [CARD]!"),
        ("订单号 202311280001234567 三天了还没发货", "订单号 [ORDER] 三天了还没发货"),
        ("订单号：2023112800012还没退款", "订单号：[ORDER]还没退款"),
        ("顺丰运单号SF1234567890123显示已签收", "顺丰运单号[ORDER]显示已签收"),
        ("order #A123-456789 never arrived", "order #[ORDER] never arrived"),
        (
            "Order number: 114-3941689-8772232 is missing an item",
            "Order number: [ORDER] is missing an item",
        ),
        ("confirmation code K7XQ2M, seat 14C", "confirmation code [ORDER], seat 14C"),
    ],
)
def test_masks(text: str, masked: str) -> None:
    assert mask_pii(text).text == masked


@pytest.mark.parametrize(
    "text",
    [
        "29.9元买了3件，满100减20，很划算",
        "2023年11月28日下午3点下单，12:30才送到",
        "Ordered at 12:30 on 2023-11-28, arrived 45 minutes late",
        "Flight UA 123 to SFO was delayed 3 hours, CA1831 too",
        "paid $1,299.99 for 2 tickets, 10000 miles",
        "rated it 4.5/5, room 1208, gate B22",
        "my order is late again",
        "I ordered 2 pizzas and 3 cokes",
        "等了40分钟，打了3次电话",
        "身份证号110105194912310022不对",  # bad ID checksum: not an [ID]
    ],
)
def test_leaves_prices_dates_times_quantities_and_flights(text: str) -> None:
    result = mask_pii(text)
    kinds = {span.kind for span in result.spans}
    if "身份证" in text:
        assert PiiKind.id_card not in kinds
    else:
        assert result.text == text, result.spans


def test_random_card_like_number_failing_luhn_is_not_a_card() -> None:
    assert "[CARD]" not in mask_pii("call 4111 1111 1111 1112 now").text


def test_spans_and_mapping_back_to_the_input() -> None:
    text = "我的电话13812345678，邮箱a@b.cn"
    result = mask_pii(text)
    assert [(s.kind, text[s.start : s.end]) for s in result.spans] == [
        (PiiKind.phone, "13812345678"),
        (PiiKind.email, "a@b.cn"),
    ]
    start = result.text.index("[PHONE]")
    assert result.to_source(start + 1, start + 3) == (4, 15)  # inside a placeholder: whole number
    start = result.text.index("邮箱")
    a, b = result.to_source(start, start + 2)
    assert text[a:b] == "邮箱"


def test_text_without_pii_is_unchanged() -> None:
    result = mask_pii("The food was great but the delivery was late")
    assert result.text == result.source and result.spans == ()


def test_large_text_with_many_numbers_is_masked_completely() -> None:
    text = "骑手电话13812345678，订单号202311280001234567。" * 2000
    result = mask_pii(text)
    assert result.text.count("[PHONE]") == 2000
    assert result.text.count("[ORDER]") == 2000
    assert "138" not in result.text
