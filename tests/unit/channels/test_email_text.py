"""Only the new text of a reply reaches the engine: quotes, attributions and signatures cut."""

from __future__ import annotations

import pytest

from channels.email_text import html_to_text, reply_text


@pytest.mark.parametrize(
    ("mail", "expected"),
    [
        pytest.param("How much do I owe?", "How much do I owe?", id="plain"),
        pytest.param(
            "I'll pay Friday\r\n\r\nOn Mon, Nov 24, 2026 at 10:00 AM Abono Telecom <\r\n"
            "reply+abc@reply.abono.example> wrote:\r\n> Your balance is $230.00",
            "I'll pay Friday",
            id="gmail-wrapped-attribution",
        ),
        pytest.param(
            "Pagaré el viernes.\n\nEl lun, 24 nov 2026 a las 10:00, Abono "
            "<billing@abono.example> escribió:\n> Su saldo",
            "Pagaré el viernes.",
            id="gmail-spanish",
        ),
        pytest.param(
            "Sounds good\n\n________________________________\nFrom: Abono <b@abono.example>\n"
            "Sent: Monday, November 24, 2026 10:00 AM\nTo: James\nSubject: Your bill\n\nold",
            "Sounds good",
            id="outlook-rule",
        ),
        pytest.param(
            "Sí, de acuerdo\n\nDe: Abono <b@abono.example>\nEnviado: lunes\nPara: Ana\n\nviejo",
            "Sí, de acuerdo",
            id="outlook-spanish",
        ),
        pytest.param("ok\n\n-----Original Message-----\nFrom: x\nold", "ok", id="original-message"),
        pytest.param("si\n\n----- Mensaje original -----\nviejo", "si", id="mensaje-original"),
        pytest.param("Call me\n-- \nJames Carter\nCEO", "Call me", id="signature"),
        pytest.param("Call me\n\nSent from my iPhone", "Call me", id="phone-signature"),
        pytest.param("Llámenme\n\nEnviado desde mi iPhone", "Llámenme", id="phone-firma"),
        pytest.param("> quoted first\nmy answer\n> more", "my answer", id="inline-quotes"),
        pytest.param("On it, paying now", "On it, paying now", id="on-is-not-attribution"),
        pytest.param("😀", "😀", id="emoji-only"),
        pytest.param("", "", id="empty"),
    ],
)
def test_reply_text_keeps_only_the_new_text(mail: str, expected: str) -> None:
    assert reply_text(mail) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        pytest.param("<p>Hola</p><p>¿Cuánto debo?</p>", "Hola\n\n¿Cuánto debo?", id="paragraphs"),
        pytest.param("line one<br>line two", "line one\nline two", id="breaks"),
        pytest.param(
            "<style>p{x:y}</style><script>alert(1)</script><div>Pay &amp; go</div>",
            "Pay & go",
            id="style-script-entities",
        ),
        pytest.param(
            '<div>yes</div><div class="gmail_quote">On Mon wrote:<div>old</div></div>',
            "yes",
            id="gmail-quote",
        ),
        pytest.param(
            "<div>ok</div><blockquote>old<blockquote>older</blockquote></blockquote>after",
            "ok\nafter",
            id="blockquote",
        ),
        pytest.param('<div>sí</div><div id="divRplyFwdMsg">De: Abono</div>', "sí", id="outlook"),
    ],
)
def test_html_becomes_text_with_its_line_breaks(html: str, expected: str) -> None:
    assert html_to_text(html) == expected
