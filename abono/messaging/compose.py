"""Composing what the customer reads or hears: the text for its medium, with its disclosures.

Every outbound text goes through here, whoever decided it (a turn's replies, a reminder, an
agent's reply, a receipt): rendered from the catalogs in the conversation's language and medium,
with the policy's disclosures before it and the opt-out line after it while the channel is open.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from abono import audit
from abono.i18n import Catalogs
from abono.store.models import Conversation
from policies.disclosures import DisclosurePolicy, TurnState, disclosures_before, notice_after

# Media whose own greeting already says who is speaking: a call opens with "Thanks for calling
# {company}" or "Hello, this is {company} calling for …" (channels/voice.py), so the written
# introduction is recorded as given there and not said a second time (one greeting per call).
GREETED_MEDIA = frozenset({"voice"})


@dataclass(frozen=True)
class ComposeConfig:
    collector_mode: str
    company_name: str
    support_phone: str


class Composer:
    def __init__(
        self,
        catalogs: Catalogs,
        disclosures: DisclosurePolicy,
        config: ComposeConfig,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._catalogs = catalogs
        self._disclosures = disclosures
        self._config = config
        self._clock = clock

    def decorate(
        self,
        session: Session,
        conversation: Conversation,
        channel: str,
        language: str,
        texts: list[str],
        closed: bool,
    ) -> list[str]:
        """Policy's disclosures before the replies; the opt-out line after, while it applies."""
        state = TurnState(
            mode=self._config.collector_mode,
            channel=channel,
            introduced=conversation.introduced_at is not None,
            verified=conversation.verified_at is not None,
            initial_disclosure_given=conversation.initial_disclosure_at is not None,
        )
        keys = disclosures_before(self._disclosures, state)
        mode = self._disclosures.modes[state.mode]
        now = self._clock()
        greeted = [k for k in keys if channel in GREETED_MEDIA and k == mode.intro]
        for key in keys:
            how = {"said_in": "call_greeting"} if key in greeted else {}
            audit.record(session, "disclosure.given", conversation, key=key, channel=channel, **how)
        if keys and conversation.introduced_at is None:
            conversation.introduced_at = now
        if mode.initial in keys:
            conversation.initial_disclosure_at = now
        said = [self.render(key, language, channel) for key in keys if key not in greeted]
        notice = None if closed else notice_after(self._disclosures, channel)
        if notice:
            texts = texts[:-1] + [f"{texts[-1]} {self.render(notice, language, channel)}"]
        if said:
            texts = [" ".join(said + [texts[0]])] + texts[1:]
        return texts

    def debt_disclosures(self, channel: str) -> tuple[str | None, str | None]:
        """The mode's (initial, subsequent) debt-collector disclosure keys on this channel.

        The email layout (channels/email_layout.py) shows the subsequent one in its footer when
        ``decorate`` gave it; either is None when the mode does not say it on this channel."""
        mode = self._disclosures.modes[self._config.collector_mode]
        subsequent = mode.subsequent if channel in mode.subsequent_channels else None
        return mode.initial, subsequent

    def render(
        self, key: str, language: str, channel: str, args: dict[str, Any] | None = None
    ) -> str:
        return self._catalogs.render(
            key,
            language,
            channel,
            {
                "company": self._config.company_name,
                "support_phone": self._config.support_phone,
                **(args or {}),
            },
        )
