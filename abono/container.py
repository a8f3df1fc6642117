"""What the composition root builds once and the edges (channels, actions) are handed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from abono.conversation.dialogue import Dialogue
from abono.conversation.turn import Pipeline
from abono.handoff.cases import HandoffService
from abono.i18n import Catalogs
from abono.messaging.compose import Composer
from abono.messaging.outbox import OutboxWorker
from abono.outreach.campaign import CampaignConfig
from abono.ports import ConversationEngine, PaymentGateway, SavedCards
from abono.settings import Settings
from abono.webhooks.delivery import WebhookWorker


@dataclass(frozen=True)
class Container:
    settings: Settings
    sessions: sessionmaker[Session]
    catalogs: Catalogs
    engine: ConversationEngine
    dialogue: Dialogue
    pipeline: Pipeline
    composer: Composer
    outbox: OutboxWorker
    payments_gateway: PaymentGateway
    clock: Callable[[], dt.datetime]
    handoffs: HandoffService
    stage_of: Callable[[int], str]  # the collections stage for days past due (policy)
    saved_cards: SavedCards
    campaign: CampaignConfig
    webhooks: WebhookWorker  # events out to the operator's endpoints (docs/webhooks.md)
