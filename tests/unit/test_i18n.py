"""What customers read in each language: formatted money and dates, complete catalogs."""

from __future__ import annotations

import datetime as dt
import string
from pathlib import Path

import pytest
import yaml
from babel.messages.pofile import read_po

from abono.i18n import MEDIA, Catalogs, format_day, format_money

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "locales"
RESPONSE_FILES = [ROOT / "bot" / "domain" / "responses.yml", ROOT / "abono" / "messages.yml"]


@pytest.fixture(scope="module")
def catalogs() -> Catalogs:
    return Catalogs.load(LOCALES)


def read_catalog(lang: str) -> dict[str, tuple[str, str]]:
    """context -> (msgid, msgstr), straight from the .po file."""
    with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    return {m.context: (m.id, m.string) for m in catalog if m.id and m.context}


def response_contexts() -> list[str]:
    """Every key (and key.medium variant) the bot or the app may ask to render."""
    contexts: list[str] = []
    for path in RESPONSE_FILES:
        for key, variants in yaml.safe_load(path.read_text(encoding="utf-8"))["responses"].items():
            for variant in variants:
                contexts.append(f"{key}.{variant['channel']}" if "channel" in variant else key)
    return contexts


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize(
    ("cents", "lang", "expected"),
    [
        (123456, "en", "$1,234.56"),
        (123456, "es", "$1,234.56"),
        (8450, "en", "$84.50"),
        (8450, "es", "$84.50"),
        (0, "en", "$0.00"),
        (245000, "es", "$2,450.00"),
    ],
    ids=["en-thousands", "es-thousands", "en-cents", "es-cents", "en-zero", "es-round"],
)
def test_money_formatted_per_language(cents: int, lang: str, expected: str) -> None:
    assert format_money(cents, "USD", lang) == expected


@pytest.mark.parametrize(
    ("day", "lang", "expected"),
    [
        (dt.date(2026, 11, 20), "en", "November 20, 2026"),
        (dt.date(2026, 11, 20), "es", "20 de noviembre de 2026"),
        (dt.date(2027, 1, 5), "en", "January 5, 2027"),
        (dt.date(2027, 1, 5), "es", "5 de enero de 2027"),
    ],
    ids=["en-november", "es-november", "en-january", "es-january"],
)
def test_dates_formatted_per_language(day: dt.date, lang: str, expected: str) -> None:
    assert format_day(day, lang) == expected


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("en", "Your balance is $230.00, due on November 19, 2026."),
        ("es", "Su saldo es de $230.00 y vence el 19 de noviembre de 2026."),
    ],
    ids=["en", "es"],
)
def test_balance_reply_reads_naturally(catalogs: Catalogs, lang: str, expected: str) -> None:
    args = {"balance_cents": 23000, "currency": "USD", "due_date": "2026-11-19"}
    assert catalogs.render("utter_balance", lang, "sms", args) == expected


@pytest.mark.parametrize(
    ("lang", "medium", "expected_start"),
    [
        ("en", "sms", "You're unsubscribed from our texts"),
        ("en", "email", "You're unsubscribed from our emails"),
        ("en", "web", "You're unsubscribed. You won't get more messages"),
        ("en", "voice", "You're unsubscribed. You won't get more messages"),
        ("en", None, "You're unsubscribed. You won't get more messages"),
        ("es", "sms", "Listo, no recibirá más mensajes de texto"),
        ("es", "web", "Listo, canceló su suscripción"),
    ],
    ids=["en-sms", "en-email", "en-web", "en-voice", "en-no-medium", "es-sms", "es-web"],
)
def test_medium_variant_is_picked(
    catalogs: Catalogs, lang: str, medium: str | None, expected_start: str
) -> None:
    assert catalogs.render("utter_opt_out_confirmed", lang, medium).startswith(expected_start)


def test_sms_opt_out_confirmation_says_how_to_resubscribe(catalogs: Catalogs) -> None:
    assert "START" in catalogs.render("utter_opt_out_confirmed", "en", "sms")
    assert "START" not in catalogs.render("utter_opt_out_confirmed", "en", "web")


def test_unknown_language_falls_back_to_english(catalogs: Catalogs) -> None:
    assert catalogs.render("utter_greet", "fr") == "How can I help you today?"


def test_unknown_placeholder_stays_visible_instead_of_failing(catalogs: Catalogs) -> None:
    text = catalogs.render("utter_verified", "en")
    assert text == "Thank you, {first_name}. You're verified."


def test_unknown_key_raises_key_error(catalogs: Catalogs) -> None:
    with pytest.raises(KeyError, match="utter_no_such_thing"):
        catalogs.render("utter_no_such_thing", "en")


ENGLISH = read_catalog("en")
SPANISH = read_catalog("es")


@pytest.mark.parametrize("context", sorted(ENGLISH))
def test_spanish_catalog_translates_every_english_entry(context: str) -> None:
    assert context in SPANISH, f"{context} missing from the Spanish catalog"
    msgstr = SPANISH[context][1]
    assert isinstance(msgstr, str) and msgstr.strip()


@pytest.mark.parametrize("context", sorted(SPANISH))
def test_spanish_placeholders_exist_in_the_english_text(context: str) -> None:
    msgid, msgstr = SPANISH[context]
    assert placeholders(msgstr) <= placeholders(msgid)


@pytest.mark.parametrize("context", sorted(set(response_contexts())))
def test_every_response_key_is_in_both_catalogs(catalogs: Catalogs, context: str) -> None:
    assert context in catalogs.texts["en"]
    assert context in catalogs.texts["es"]


@pytest.mark.parametrize("medium", MEDIA)
@pytest.mark.parametrize("key", sorted({c.split(".")[0] for c in response_contexts()}))
def test_every_response_renders_in_spanish_without_english_leaking(
    catalogs: Catalogs, key: str, medium: str
) -> None:
    assert catalogs.render(key, "es", medium) != catalogs.render(key, "en", medium)
