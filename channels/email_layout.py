"""What an email looks like: the subject that names its purpose, the HTML layout and the text part.

Every email the product sends (a reply, a reminder, a receipt, an agent's answer) is laid out
the same way by the Jinja2 templates in ``channels/templates/email/``: a header with the
operator's name on its colour (``ABONO_COMPANY_NAME``, ``ABONO_EMAIL_BRAND_COLOR``), a greeting,
the message as the composer wrote it, a button for the payment link when the message carries
one, a sign-off, and a footer with the debt-collector disclosure (when the composer gave it)
and the one unsubscribe link. The HTML is tables with inline styles, at most 600 px wide and
fluid below (phones, 375 px), which is what email clients render alike; the text part says
the same. docs/email.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml
from markupsafe import Markup, escape

from abono.i18n import Catalogs
from abono.messaging.compose import Composer
from abono.settings import Settings

TEMPLATES = Path(__file__).resolve().parent / "templates" / "email"
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|rv|fwd?|rif)\s*:", re.I)
_URL = re.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:!?)]")

# The message (its catalog key, the outbox row's ``key``) -> the subject naming its purpose.
# A reply to the customer's own mail keeps their subject ("Re: ..."); anything not listed
# here gets ``email_subject_default``.
SUBJECTS: Mapping[str, str] = {
    "reminder_pay_by": "email_subject_reminder",
    "reminder_follow_up": "email_subject_reminder",
    "reminder_past_due_options": "email_subject_past_due",
    "reminder_plan_offer": "email_subject_plan_offer",
    "reminder_recovery": "email_subject_plan_offer",
    "utter_payment_link": "email_subject_payment_link",
    "utter_payment_received": "email_subject_receipt",
    "utter_payment_failed": "email_subject_payment_failed",
    "utter_installment_reminder": "email_subject_plan_reminder",
    "utter_installment_charge_reminder": "email_subject_plan_reminder",
    "utter_installment_missed": "email_subject_plan_missed",
    "utter_installment_charge_failed": "email_subject_plan_missed",
    "utter_plan_broken": "email_subject_plan_ended",
    "utter_plan_approved": "email_subject_plan_approved",
    "utter_plan_approved_down": "email_subject_plan_approved",
    "utter_promise_approved": "email_subject_promise_approved",
    "utter_promise_reminder": "email_subject_promise_reminder",
    "utter_promise_broken": "email_subject_promise_missed",
    "agent_reply": "email_subject_agent_reply",  # abono/handoff/cases.py: a person's answer
    "utter_csat_question": "email_subject_csat",  # abono/messaging/surveys.py
}


class EmailTexts:
    """Catalog texts for the email medium; English from messages.yml until catalogs have them."""

    def __init__(self, catalogs: Catalogs, defaults: Mapping[str, Any]) -> None:
        self._catalogs = catalogs
        self._defaults = dict(defaults)
        raw = resources.files("abono").joinpath("messages.yml").read_text(encoding="utf-8")
        responses = yaml.safe_load(raw)["responses"]
        self._english = {k: v[0]["text"] for k, v in responses.items() if k.startswith("email_")}

    def render(self, key: str, lang: str, **args: Any) -> str:
        values = {**self._defaults, **args}
        if self._catalogs.template(key, lang, "email") is not None:
            return self._catalogs.render(key, lang, "email", values)
        return str(self._english[key]).format(**values)

    def reply_subject(self, their_subject: str, lang: str) -> str:
        subject = " ".join(their_subject.split())[:150]
        if not subject:
            return self.render("email_subject_default", lang)
        if _REPLY_PREFIX.match(subject):
            return subject
        return self.render("email_subject_reply", lang, subject=subject)

    def subject(self, key: str | None, given: str | None, lang: str) -> str:
        """The row's own subject (a reply's "Re: ..."), else the one naming its purpose."""
        if given:
            return given
        return self.render(SUBJECTS.get(key or "", "email_subject_default"), lang)


@dataclass(frozen=True)
class RenderedEmail:
    html: str
    text: str


class EmailLayout:
    """Lays a composed text out as an email: both bodies, from the same parts."""

    def __init__(self, texts: EmailTexts, composer: Composer, settings: Settings) -> None:
        self._texts = texts
        self._composer = composer
        self._settings = settings
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=jinja2.select_autoescape(["html"]),
            auto_reload=False,
            keep_trailing_newline=True,
        )
        self._html = environment.get_template("message.html")
        self._text = environment.get_template("message.txt")

    @property
    def texts(self) -> EmailTexts:
        return self._texts

    def render(
        self,
        text: str,
        lang: str,
        unsubscribe_url: str,
        subject: str,
        first_name: str | None = None,
    ) -> RenderedEmail:
        """The HTML and the text part of one composed message to one address."""
        body, disclosure = self._split_disclosure(text.strip(), lang)
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
        pay_url = self._payment_url(body)
        greeting = (
            self._texts.render("email_greeting", lang, first_name=first_name)
            if first_name
            else self._texts.render("email_greeting_anonymous", lang)
        )
        parts: dict[str, Any] = {
            "lang": lang,
            "subject": subject,
            "company": self._settings.company_name,
            "brand": self._settings.email_brand_color,
            "brand_ink": _ink_on(self._settings.email_brand_color),
            "greeting": greeting,
            "paragraphs": paragraphs,
            "pay_url": pay_url,
            "pay_label": self._texts.render("email_pay_button", lang),
            "sign_off": self._texts.render("email_sign_off", lang),
            "signature": self._texts.render("email_signature", lang),
            "disclosure": disclosure,
            "reason": self._texts.render("email_footer_reason", lang),
            "unsubscribe_url": unsubscribe_url,
            "unsubscribe_label": self._texts.render("email_footer_link", lang),
        }
        html = self._html.render(
            **parts,
            paragraphs_html=[_linked(p) for p in paragraphs],
        )
        return RenderedEmail(html=html, text=self._text.render(**parts))

    def _split_disclosure(self, text: str, lang: str) -> tuple[str, str | None]:
        """The body without the short debt-collector disclosure, and that disclosure for the
        footer, when the composer gave it (decorate puts it before the first reply)."""
        _, subsequent = self._composer.debt_disclosures("email")
        if subsequent is None:
            return text, None
        said = self._composer.render(subsequent, lang, "email")
        head, found, tail = text.partition(said)
        if not found or "\n\n" in head:  # only where decorate puts it: the first paragraph
            return text, None
        return (head.rstrip() + " " + tail.lstrip()).strip(), said

    def _payment_url(self, text: str) -> str | None:
        """The first payment link (``<public_url>/p/<token>``) the message carries."""
        prefix = self._settings.public_url.rstrip("/") + "/p/"
        for found in _URL.findall(text):
            if found.startswith(prefix):
                return str(found)
        return None


def _linked(paragraph: str) -> Markup:
    """A paragraph escaped, its line breaks kept and its links clickable (long ones wrap)."""
    pieces: list[str] = []
    at = 0
    for found in _URL.finditer(paragraph):
        pieces.append(str(escape(paragraph[at : found.start()])))
        url = escape(found.group(0))
        pieces.append(
            f'<a href="{url}" style="color:#0b5cad;word-break:break-all;'
            f'overflow-wrap:anywhere">{url}</a>'
        )
        at = found.end()
    pieces.append(str(escape(paragraph[at:])))
    return Markup("".join(pieces).replace("\n", "<br>\n"))


def _ink_on(colour: str) -> str:
    """White or near-black text, whichever contrasts more with the header's colour (WCAG)."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    on_white = 1.05 / (luminance + 0.05)
    on_black = (luminance + 0.05) / 0.05
    return "#ffffff" if on_white >= on_black else "#111827"
