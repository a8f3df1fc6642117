"""The engine's entry point: ``python -m bot.engine run …`` is ``rasa run …`` with eight fixes.

- Rasa 3.6 checks every action-server answer with ``jsonschema.validate``, which first checks
  the schema itself against the JSON Schema meta-schema, on every call: about a third of the
  engine's CPU per turn went there (docs/performance.md). ``fast_action_validation`` builds the
  validator once and keeps the same check and the same error.
- The SQLite tracker store (the embedded default) commits in WAL mode with ``synchronous=
  NORMAL``, as the app's store does (abono/store/db.py): an fsync per tracker save was the next
  largest cost. PostgreSQL trackers are untouched.
- Rasa 3.6 finds an event's class by its type name by walking every subclass of ``Event`` (and
  asking ``inspect.isabstract`` of each) for every event it reads: each turn reads the whole
  session back from the tracker store and the action server's events, and the walk was about
  8 % of the engine's CPU. ``event_types_resolved_once`` keeps the answers; a name it does not
  know walks again (an event class imported since), and rasa answers the rest as before.
- Rasa 3.6 opens a new HTTP client session, so a new TCP connection, for every call to the action
  server (``EndpointConfig.request``): connecting and tearing down cost both processes CPU on
  every turn. ``action_calls_kept_alive`` keeps one session per endpoint and event loop, whose
  idle connections close after 2 s, before the app's server would close them (uvicorn: 5 s), so
  a connection is reused only while the server still keeps it open.
- Rasa runs the whole NLU pipeline for every message, though its answer depends on the text
  alone: replies to a reminder repeat a lot ("yes", "hi", "how much do I owe?"), and the pipeline
  (featurizers, classifier, the graph runner) was about a fifth of the engine's CPU per turn
  beyond the sentence encoder. ``parses_cached`` keeps the answers for the last
  ``PARSE_CACHE_SIZE`` texts per model and hands out copies; a model whose NLU reads the tracker
  is never cached.
- Rasa 3.6 sends the action server the whole session's events with every call (11 KB at the
  median in the bench), encoded by the engine and decoded by the app on every turn. The
  actions read only the latest message, the slots and the sender: the dialogue's state is in
  the app's store (docs/architecture.md). ``action_calls_carry_no_events`` sends the same
  tracker state with an empty event list.
- Rasa runs its graph (the NLU pipeline, then the policies, once or twice a turn) through
  dask's synchronous scheduler, which orders the graph's nodes (``dask.order.order``) on every
  run: about a tenth of the engine's CPU per turn, for the same few graphs each time.
  ``graph_order_reused`` keeps the order per graph shape (its nodes and what each needs); a
  new shape is ordered by dask as before.
- Rasa 3.6 logs a failed message (``rest.message.received.failure``, e.g. its Redis lock store
  unreachable) with the message's text and a traceback that carries every frame's local
  variables: the customer's words and, in the message's metadata, their phone number or email.
  ``engine_logs_without_personal_data`` keeps the traceback without the locals and drops the
  text and the metadata from the log line (the leak scan found them, docs/redaction.md).

The tracker store the engine uses is ``bot/tracker_store.py`` (named in ``bot/endpoints.yml``).

Nothing else in rasa changes; this module runs in the engine's environment (``.venv-engine``),
never in the app's.
"""

from __future__ import annotations

from typing import Any


def fast_action_validation() -> None:
    """The same validation of an action server's answer, with the schema checked once."""
    from jsonschema import ValidationError
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    original = RemoteAction._validate_action_result
    if getattr(original, "abono_fast", False):
        return
    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)

    def validate(self: RemoteAction, result: dict[str, Any]) -> bool:
        error: ValidationError | None = best_match(validator.iter_errors(result))
        if error is None:
            return True
        # As rasa words it (rasa/core/actions/action.py, _validate_action_result).
        error.message += (
            ". Failed to validate Action server response from API, make sure your response "
            "from the Action endpoint is valid."
        )
        raise error

    validate.abono_fast = True  # type: ignore[attr-defined]
    RemoteAction._validate_action_result = validate  # type: ignore[method-assign]


def lighter_sqlite_commits() -> None:
    """WAL and synchronous=NORMAL on every SQLite connection the engine opens."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    if not event.contains(Engine, "connect", pragmas):
        event.listen(Engine, "connect", pragmas)


def event_types_resolved_once() -> None:
    """``Event.resolve_by_type`` with the subclasses walked once, not once per event read."""
    import rasa.shared.utils.common
    from rasa.shared.core.events import Event

    original = Event.resolve_by_type
    if getattr(original, "abono_fast", False):
        return
    known: dict[str, type[Event]] = {}

    def resolve(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
        found = known.get(type_name)
        if found is None:
            # The first class of that name in rasa's own order, as rasa's loop returns it.
            for cls in rasa.shared.utils.common.all_subclasses(Event):
                known.setdefault(cls.type_name, cls)
            found = known.get(type_name)
        # Unknown names ("topic", a default, an error) as rasa answers them.
        return found if found is not None else original(type_name, default)

    resolve.abono_fast = True  # type: ignore[attr-defined]
    Event.resolve_by_type = staticmethod(resolve)  # type: ignore[method-assign,assignment]


KEEP_ALIVE_SECONDS = 2.0  # below uvicorn's 5 s: the engine closes an idle connection first


def action_calls_kept_alive() -> None:
    """One HTTP session per endpoint and event loop, reused across calls (keep-alive)."""
    import asyncio

    import aiohttp
    from rasa.core.constants import DEFAULT_REQUEST_TIMEOUT
    from rasa.utils.endpoints import EndpointConfig

    if getattr(EndpointConfig.session, "abono_fast", False):
        return

    class Borrowed:
        """``async with endpoint.session()`` as rasa writes it, without closing the session."""

        def __init__(self, session: aiohttp.ClientSession) -> None:
            self._session = session

        async def __aenter__(self) -> aiohttp.ClientSession:
            return self._session

        async def __aexit__(self, *_exc: object) -> None:
            return None

    def session(self: EndpointConfig) -> Borrowed:
        loop = asyncio.get_running_loop()
        kept = getattr(self, "_abono_session", None)
        if kept is None or kept[0] is not loop or kept[1].closed:
            # As rasa builds it (rasa/utils/endpoints.py), with a keep-alive connector.
            auth = None
            if self.basic_auth:
                auth = aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"])
            kept = (
                loop,
                aiohttp.ClientSession(
                    headers=self.headers,
                    auth=auth,
                    timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
                    connector=aiohttp.TCPConnector(keepalive_timeout=KEEP_ALIVE_SECONDS),
                ),
            )
            self._abono_session = kept  # type: ignore[attr-defined]
        return Borrowed(kept[1])

    session.abono_fast = True  # type: ignore[attr-defined]
    EndpointConfig.session = session  # type: ignore[assignment,method-assign]


PARSE_CACHE_SIZE = 4096  # texts; each answer is a few KB


def parses_cached(size: int = PARSE_CACHE_SIZE) -> None:
    """The NLU answer for a text computed once per model, as long as only the text counts."""
    import copy
    from collections import OrderedDict

    from rasa.core.processor import MessageProcessor
    from rasa.engine.constants import PLACEHOLDER_TRACKER

    original = MessageProcessor._parse_message_with_graph
    if getattr(original, "abono_fast", False):
        return
    answers: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
    text_only: dict[str, bool] = {}

    def reads_text_only(processor: MessageProcessor) -> bool:
        """No node the NLU target needs reads the tracker (it is the same for any text)."""
        schema = processor.model_metadata.predict_schema
        todo, seen = [processor.model_metadata.nlu_target], set()
        while todo:
            name = todo.pop()
            if name == PLACEHOLDER_TRACKER:
                return False
            if name in seen or name not in schema.nodes:
                continue
            seen.add(name)
            todo.extend(schema.nodes[name].needs.values())
        return True

    def parse(
        self: MessageProcessor, message: Any, tracker: Any, only_output_properties: bool = True
    ) -> dict[str, Any]:
        model = self.model_metadata.model_id
        if model not in text_only:
            text_only[model] = reads_text_only(self)
        if not (only_output_properties and text_only[model] and isinstance(message.text, str)):
            return original(self, message, tracker, only_output_properties)  # message id etc.
        key = (model, message.text)
        kept = answers.get(key)
        if kept is not None:
            answers.move_to_end(key)
            return copy.deepcopy(kept)  # the caller may change its answer
        answer = original(self, message, tracker, only_output_properties)
        answers[key] = copy.deepcopy(answer)
        while len(answers) > size:
            answers.popitem(last=False)
        return answer

    parse.abono_fast = True  # type: ignore[attr-defined]
    MessageProcessor._parse_message_with_graph = parse  # type: ignore[method-assign]


def action_calls_carry_no_events() -> None:
    """The tracker state an action receives, without the session's events."""
    import rasa
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.core.trackers import EventVerbosity

    if getattr(RemoteAction._action_call_format, "abono_fast", False):
        return

    def call_format(self: RemoteAction, tracker: Any, domain: Any) -> dict[str, Any]:
        # As rasa builds it (rasa/core/actions/action.py, _action_call_format), events aside.
        state = tracker.current_state(EventVerbosity.NONE)
        state["events"] = []
        result: dict[str, Any] = {
            "next_action": self._name,
            "sender_id": tracker.sender_id,
            "tracker": state,
            "version": rasa.__version__,
        }
        if (
            not self._is_selective_domain_enabled()
            or domain.does_custom_action_explicitly_need_domain(self.name())
        ):
            result["domain"] = domain.as_dict()
        return result

    call_format.abono_fast = True  # type: ignore[attr-defined]
    RemoteAction._action_call_format = call_format  # type: ignore[method-assign]


GRAPH_ORDERS_KEPT = 64  # graph shapes; a model has a handful (NLU, policies, per target)


def graph_order_reused(size: int = GRAPH_ORDERS_KEPT) -> None:
    """dask's order for a graph computed once per shape, not on every run of the graph."""
    from collections import OrderedDict

    import dask.local
    from dask.core import get_dependencies

    original = dask.local.order
    if getattr(original, "abono_fast", False):
        return
    orders: OrderedDict[tuple[Any, ...], dict[Any, int]] = OrderedDict()

    def order(dsk: Any, dependencies: Any = None) -> dict[Any, int]:
        if dependencies is None:
            dependencies = {key: get_dependencies(dsk, key) for key in dsk}
        # The order depends only on the nodes and their edges, never on the inputs' values.
        shape = tuple((key, frozenset(needs)) for key, needs in dependencies.items())
        kept = orders.get(shape)
        if kept is None:
            kept = orders[shape] = original(dsk, dependencies)
            while len(orders) > size:
                orders.popitem(last=False)
        else:
            orders.move_to_end(shape)
        return kept

    order.abono_fast = True  # type: ignore[attr-defined]
    dask.local.order = order


PERSONAL_LOG_KEYS = ("text", "metadata", "message")


def engine_logs_without_personal_data() -> None:
    """Rasa's JSON log lines with tracebacks but no frame locals, text or metadata."""
    import structlog.processors
    from structlog.tracebacks import ExceptionDictTransformer

    if getattr(structlog.processors.dict_tracebacks, "abono_fast", False):
        return
    render = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))

    def tracebacks(logger: Any, name: str, event: dict[str, Any]) -> Any:
        for key in PERSONAL_LOG_KEYS:
            if key in event:
                event[key] = "[removed]"
        return render(logger, name, event)

    tracebacks.abono_fast = True  # type: ignore[attr-defined]
    structlog.processors.dict_tracebacks = tracebacks  # type: ignore[assignment]


def main() -> None:
    engine_logs_without_personal_data()
    fast_action_validation()
    lighter_sqlite_commits()
    event_types_resolved_once()
    action_calls_kept_alive()
    parses_cached()
    action_calls_carry_no_events()
    graph_order_reused()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
