"""Every medium speaks its own way: nothing written for a message is spoken on a call.

A call renders each reply with the ``voice`` medium (channels/voice.py and the pipeline both ask
the catalogs for ``key.voice`` first). A key said on calls whose text tells the caller to reply,
to type, to click, reads out a link or "STOP", or says "le escribe" ("is writing to you") needs
a voice variant: these tests fail when one is missing, in either language.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from abono.i18n import Catalogs

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "bot" / "domain" / "responses.yml"
APP = ROOT / "abono" / "messages.yml"

# Said on a call: every reply the dialogue names (the domain's responses and the app's own
# replies), the disclosures, handoff notices, the call's own prompts and the words put inside.
_APP_CALL_KEYS = re.compile(
    r"^(disclosure_(intro|initial|subsequent)|reply_.*|handoff_.*|voice_(?!link_sms).*"
    r"|utter_.*|word_.*|reason_.*)$"
)
# Keys that reach a customer only in writing, whatever the conversation's last medium: the
# outbox's follow-ups and approved terms go by text (docs/reminders.md), and a call never
# speaks a link line: channels/voice.py texts the link and says ``voice_link_texted`` instead.
_WRITTEN_ONLY = frozenset(
    {
        "utter_payment_link",
        "utter_installment_reminder",
        "utter_installment_missed",
        "utter_installment_charge_reminder",
        "utter_installment_charge_failed",
        "utter_plan_broken",
        "utter_promise_reminder",
        "utter_promise_broken",
        "utter_plan_approved",
        "utter_plan_approved_down",
        "utter_promise_approved",
    }
)
_WRITTEN = {
    "en": re.compile(
        r"\breply\b|\btype\b|\bwrit(e|es|ing)\b|\bclick\b|\btap\b|https?://|\{url\}|(?-i:\bSTOP\b)"
        r"|\bsend (us|me) (a )?(text|message)\b|\bthis message\b|\b(text|message) (us|me)\b",
        re.IGNORECASE,
    ),
    "es": re.compile(
        r"\bescr[ií]b|\bresponda a (este|nuestr)|\bteclee\b|\bhaga clic\b|\btoque\b"
        r"|https?://|\{url\}|(?-i:\bBAJA\b)|(?-i:\bSTOP\b)|\beste mensaje\b",
        re.IGNORECASE,
    ),
}


def _keys(path: Path) -> list[str]:
    return list((yaml.safe_load(path.read_text(encoding="utf-8")) or {})["responses"])


CALL_KEYS = sorted(
    {key for key in _keys(DOMAIN) if key not in _WRITTEN_ONLY}
    | {key for key in _keys(APP) if _APP_CALL_KEYS.match(key) and key not in _WRITTEN_ONLY}
)


@pytest.fixture(scope="module")
def catalogs() -> Catalogs:
    return Catalogs.load(ROOT / "locales")


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("key", CALL_KEYS)
def test_a_key_said_on_calls_has_wording_for_a_call(
    catalogs: Catalogs, key: str, lang: str
) -> None:
    spoken = catalogs.render(key, lang, "voice")
    found = _WRITTEN[lang].search(spoken)
    assert found is None, f"{key} needs a voice variant ({lang}: {found.group(0)!r} in {spoken!r})"


@pytest.mark.parametrize(
    ("lang", "heard"),
    [("en", "Hi, this is the billing assistant"), ("es", "Hola, habla el asistente")],
)
def test_the_introduction_on_a_call_is_spoken_not_written(
    catalogs: Catalogs, lang: str, heard: str
) -> None:
    assert catalogs.render("disclosure_intro", lang, "voice").startswith(heard)
    assert "le escribe" in catalogs.render("disclosure_intro", "es", "sms")


def test_the_check_catches_a_written_text_on_a_call(catalogs: Catalogs) -> None:
    """The check itself can fail: the SMS wording of the SMS-only keys would not pass it."""
    assert _WRITTEN["es"].search(catalogs.render("disclosure_intro", "es", "sms"))
    assert _WRITTEN["en"].search(catalogs.render("disclosure_sms_opt_out", "en", "sms"))
    assert _WRITTEN["en"].search(catalogs.render("utter_ask_zip_hint", "en", "sms"))
