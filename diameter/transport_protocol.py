"""One asyncio protocol per Diameter transport connection (see :mod:`diameter.adapter`).

Shape of aioquic ``asyncio/protocol.py``: on every input (bytes, timer, connection loss) feed
the sans-IO :class:`~diameter.peer.PeerConnection`, drain its events, write its bytes, re-arm
its one timer.

Application requests go to one of two hooks:

- ``responder(request, peer)`` (synchronous; preferred on the hot path): it must call
  :meth:`PeerProtocol.reply` exactly once for the request, now or later (for example from a
  journal durability callback). Replies made while the received bytes are being processed
  go out with that read's one ``transport.write``; replies made later are coalesced into one
  write per connection per event-loop turn.
- ``handler(request, peer) -> answer`` (``async def``): each runs in a Task; with
  ``eager_handlers=True`` the coroutine is started with ``coro.send(None)`` instead, so an
  answer ready without suspending costs no Task, and only a handler that really suspends is
  handed to a Task, which resumes it where it stopped. Eager start runs outside any Task:
  only for handlers that do not need ``asyncio.current_task()`` (``asyncio.timeout``) before
  their first suspension.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from types import CoroutineType
from typing import Any, cast

import structlog

from cython_ext import load
from diameter import peer_receive, validate
from diameter.answers import error_answer, result_code_of, unencodable_avp
from diameter.duplicates import DuplicateCache
from diameter.eager import resume as _resume
from diameter.errors import DiameterError
from diameter.framing import FrameBuffer
from diameter.message import Message, decode_message
from diameter.peer import DISCONNECT_REBOOTING, PeerConnection
from diameter.peer_config import PeerConfig, Role
from diameter.peer_events import (
    AnswerReceived,
    CapabilitiesExchanged,
    ConnectionTerminated,
    Event,
    PeerClosing,
    ProtocolErrorEvent,
    RequestReceived,
    WatchdogStateChanged,
)
from diameter.peer_registry import PeerRegistry
from diameter.watchdog import JITTER, Watchdog, WatchdogState

__all__ = ["Handler", "Responder", "PeerProtocol", "COUNTERS"]

Handler = Callable[[Message, "PeerProtocol"], Awaitable[Message]]
# Must call peer.reply(request, answer) exactly once, now or later; must not raise for bad
# input (an exception is answered 5012 by the adapter).
Responder = Callable[[Message, "PeerProtocol"], None]

log = structlog.get_logger("icx.diameter")
# PeerConnection counters summed by DiameterServer.stats()
COUNTERS = ("duplicates_answered", "duplicates_dropped", "too_busy", "answers_dropped",
            "answers_unencodable")
_INFO = logging.INFO


def _select_lane() -> Any:
    """The compiled receive lane (cython_ext/ro_lane.pyx ``Lane``: the twin of
    ``PeerConnection.receive_data`` + the fast lane of ``peer_receive.on_frame`` +
    ``process_request`` + the loop of :meth:`PeerProtocol._handle`, which stay its spec),
    or None: only with the compiled codec (it reads the compiled Message's fields)."""
    from diameter.avp import EXT

    ext = load("ro_lane")
    if ext is None or EXT is None or getattr(ext, "ABI", None) != 1:
        return None
    return ext.Lane(
        decode=decode_message, on_frame=peer_receive.on_frame,
        process_request=peer_receive.process_request, check_request=validate.check_request,
        check_avps=validate.check_avps, diameter_error=DiameterError,
        fast_states=peer_receive._FAST, wd_okay=WatchdogState.OKAY, jitter=JITTER,
        commands=validate._COMMANDS, nesting_bytes=8 * validate.MAX_NESTING,
        request_received=RequestReceived)


_LANE = _select_lane()


class PeerProtocol(asyncio.Protocol):
    """One transport connection to one Diameter peer (also the ``peer`` a handler receives).

    Useful to a handler: :attr:`peer_host`, :attr:`applications`, :meth:`request` (send a
    server-initiated request such as RAR/ASR and await the answer), :attr:`is_open`.
    """
    # Slots: the compiled lane (cython_ext/ro_lane.pyx) reads the per-request fields at their
    # offsets (slot_layout.pxi); a field not listed here cannot be set.
    __slots__ = (
        "_closing", "_dups", "_eager", "_flush_armed", "_in_handle", "_log_requests", "_loop",
        "_now", "_on_close", "_on_open", "_peer_host", "_read_paused", "_registry", "_reopen",
        "_tasks", "_timer", "_timer_at", "_waiters", "_write_paused", "closed", "config",
        "conn", "disconnect_cause", "handler", "opened", "remote_address", "responder", "role",
        "transport",
    )


    def __init__(
        self,
        config: PeerConfig,
        role: Role,
        handler: Handler | None,
        *,
        duplicates: DuplicateCache | None = None,
        registry: PeerRegistry | None = None,
        on_open: Callable[[PeerProtocol], None] | None = None,
        on_close: Callable[[PeerProtocol], None] | None = None,
        peer_host: str | None = None,
        reopen: bool = False,
        responder: Responder | None = None,
        eager_handlers: bool = False,
    ) -> None:
        self.config = config
        self.role = role
        self.handler = handler
        self.responder = responder
        self._log_requests = config.log_requests
        # Start handler coroutines with send(None) outside a Task: only for handlers whose
        # first step never needs asyncio.current_task() (asyncio.timeout does).
        self._eager = eager_handlers
        self.conn: PeerConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.remote_address: Any = None
        self.opened: asyncio.Future[CapabilitiesExchanged] = (
            asyncio.get_running_loop().create_future()
        )
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._loop = asyncio.get_running_loop()
        self._now = self._loop.time
        self._dups = duplicates
        self._registry = registry
        self._on_open = on_open
        self._on_close = on_close
        self._peer_host = peer_host
        self._reopen = reopen
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._waiters: dict[int, asyncio.Future[Message]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._write_paused = False
        self._read_paused = False
        self._closing = False
        self._in_handle = False  # inside _handle: a reply rides on its closing _transmit
        self._flush_armed = False  # a deferred _flush is scheduled on the loop
        self.disconnect_cause: int | None = None  # set when the peer sent us a DPR

    # ------------------------------------------------------------------ properties
    @property
    def peer_host(self) -> str | None:
        return self.conn.peer_host if self.conn is not None else self._peer_host

    @property
    def applications(self) -> frozenset[int]:
        return self.conn.applications if self.conn is not None else frozenset()

    @property
    def is_open(self) -> bool:
        return self.conn is not None and self.conn.is_open

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but speak the same API
        self.transport = cast(asyncio.Transport, transport)
        self.remote_address = self.transport.get_extra_info("peername")
        self.conn = PeerConnection(
            self.config,
            self.role,
            self._loop.time(),
            duplicates=self._dups,
            registry=self._registry,
            reopen=self._reopen,
            peer_host=self._peer_host,
        )
        self.conn.wakeup = self._wakeup
        self._transmit()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        lane = _LANE
        if lane is not None and self.responder is not None and data.__class__ is bytes:
            # the compiled twin of receive_data + _handle's loop (None: it declined the read
            # before touching anything, run the Python path)
            self._in_handle = True
            try:
                terminated = lane.receive(self, conn, data, self._loop.time())
            finally:
                self._in_handle = False
            if terminated is not None:
                self._handled(terminated or None, True)
                return
        self._handle(conn.receive_data(data, self._loop.time()))

    def connection_lost(self, exc: Exception | None) -> None:
        conn = self.conn
        if conn is not None:
            self._handle(conn.connection_lost(self._loop.time()), transmit=False)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost before the answer"))
        self._waiters.clear()
        reason = conn.termination_reason if conn is not None else "connection lost"
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(reason))
            self.opened.exception()  # mark retrieved: nobody may be waiting
        if not self.closed.done():
            self.closed.set_result(reason)
        if self._on_close is not None:
            self._on_close(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    # ------------------------------------------------------------------ public
    async def request(self, message: Message, timeout: float = 10.0) -> Message:
        """Send a request on this connection and await its answer (Tx timer = *timeout*)."""
        conn = self.conn
        if conn is None or not conn.is_open:
            raise ConnectionError("peer connection is not open")
        hbh = conn.send_request(message, self._loop.time())
        fut: asyncio.Future[Message] = self._loop.create_future()
        self._waiters[hbh] = fut
        self._transmit()
        try:
            return await asyncio.wait_for(fut, timeout)
        except BaseException:
            conn.cancel_request(hbh)
            raise
        finally:
            self._waiters.pop(hbh, None)

    def reply(self, request: Message, answer: Message | bytes, t0_ns: int = 0) -> bool:
        """Send the answer to *request* (a request given to the responder/handler).

        *answer* is a Message (its Hop-by-Hop/End-to-End are set from the request, RFC 6733
        §6.2) or the encoded answer whose header already carries them. It goes into the
        duplicate cache and the request stops counting as in flight. Bytes are written at the
        end of the current read, or on the next loop turn together with every other reply of
        this turn (one ``transport.write``). *t0_ns* (``time.perf_counter_ns()`` when the
        request arrived) feeds the ``diameter.request`` log line's elapsed time.

        Returns False when *answer* (a Message) could not be encoded (a value out of range
        for its AVP type): the request got the minimal 5012 DIAMETER_UNABLE_TO_COMPLY answer
        instead (:meth:`PeerConnection.answer_unencodable`), so the caller should undo what
        its answer would have granted; True otherwise."""
        conn = self.conn
        if conn is None:
            return True
        sent = True
        if answer.__class__ is bytes:
            conn.send_answer_bytes(request.hop_by_hop, answer, self._now())  # type: ignore[arg-type]
        else:
            ans = cast(Message, answer)
            ans.hop_by_hop = request.hop_by_hop
            ans.end_to_end = request.end_to_end
            try:
                data = ans.encode()
            except Exception as exc:  # noqa: BLE001 -- whatever the codec refuses
                sent = False
                answer = self._unencodable(conn, request, ans, exc)
            else:
                conn.send_answer_bytes(request.hop_by_hop, data, self._loop.time())
        if self._log_requests and _log_enabled(_INFO):
            self._log_request(request, answer, t0_ns)
        if not self._in_handle and not self._flush_armed:
            self._flush_armed = True
            self._loop.call_soon(self._flush)
        return sent

    def _unencodable(self, conn: PeerConnection, request: Message, answer: Message,
                     exc: Exception) -> bytes:
        """The answer to *request* could not be encoded: one log line, and the minimal 5012
        answer instead (PeerConnection.answer_unencodable, counted for /metrics)."""
        log.error("diameter.answer_unencodable", peer=self.peer_host, command=request.code,
                  session=request.get("Session-Id"), error=repr(exc),
                  avp=unencodable_avp(answer.avps))
        return conn.answer_unencodable(request, self._loop.time()) or b""

    def _flush(self) -> None:
        self._flush_armed = False
        self._transmit()

    def close(self, cause: int = DISCONNECT_REBOOTING) -> None:
        """Graceful close: DPR when open (the DPA receiver closes), else close at once."""
        conn = self.conn
        if conn is None:
            return
        self._handle(conn.close(self._loop.time(), cause))

    def abort(self) -> None:
        """Drop the transport now."""
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------ internals
    def _wakeup(self) -> None:
        # another connection changed ours (election): drain on the next loop iteration
        self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        if self.conn is not None:
            self._handle(self.conn.handle_timer(self._loop.time()))

    def _handle(self, events: list[Event], transmit: bool = True) -> None:
        terminated: ConnectionTerminated | None = None
        self._in_handle = True
        responder = self.responder
        try:
            for ev in events:
                if ev.__class__ is RequestReceived:
                    if responder is None:
                        self._dispatch(ev)  # type: ignore[arg-type]
                        continue
                    # _dispatch() inlined for a responder (the per-request path)
                    request = ev.message  # type: ignore[attr-defined]
                    try:
                        responder(request, self)
                    except Exception:
                        self._handler_failed(request, time.perf_counter_ns())
                else:
                    terminated = self._other_event(ev) or terminated
        finally:
            self._in_handle = False
        self._handled(terminated, transmit)

    def _handled(self, terminated: ConnectionTerminated | None, transmit: bool) -> None:
        """After the events of one input: write, then close when the connection ended."""
        if transmit:
            self._transmit()
        if terminated is not None and self.transport is not None and not self._closing:
            self._closing = True
            log.info("diameter.peer_closed", peer=self.peer_host, reason=terminated.reason)
            # close() flushes what is buffered first: "send what can be sent, then close"
            self.transport.close()

    def _other_event(self, ev: Event) -> ConnectionTerminated | None:
        """Every event but RequestReceived; returns it when it is ConnectionTerminated."""
        terminated: ConnectionTerminated | None = None
        if isinstance(ev, AnswerReceived):
            fut = self._waiters.get(ev.message.hop_by_hop)
            if fut is not None and not fut.done():
                fut.set_result(ev.message)
        elif isinstance(ev, CapabilitiesExchanged):
            log.info(
                "diameter.peer_open",
                peer=ev.peer_host,
                realm=ev.peer_realm,
                applications=sorted(ev.applications),
                address=str(self.remote_address),
            )
            if not self.opened.done():
                self.opened.set_result(ev)
            if self._on_open is not None:
                self._on_open(self)
        elif isinstance(ev, ConnectionTerminated):
            terminated = ev
        elif isinstance(ev, WatchdogStateChanged):
            log.info(
                "diameter.watchdog", peer=self.peer_host, old=ev.old.value, new=ev.new.value
            )
        elif isinstance(ev, ProtocolErrorEvent):
            log.warning(
                "diameter.protocol_error",
                peer=self.peer_host,
                address=str(self.remote_address),
                result_code=ev.error.result_code if ev.error is not None else None,
                error=ev.description,
                answered=ev.answered,
            )
        elif isinstance(ev, PeerClosing):
            if ev.by_peer:
                self.disconnect_cause = ev.disconnect_cause
            log.info(
                "diameter.peer_closing",
                peer=self.peer_host,
                disconnect_cause=ev.disconnect_cause,
                by_peer=ev.by_peer,
            )
        return terminated

    def _transmit(self) -> None:
        conn = self.conn
        transport = self.transport
        if conn is None or transport is None:
            return
        data = conn.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        t = conn.get_timer()
        armed = self._timer_at
        # Re-arm only when the deadline moved earlier (or went away). Traffic pushes the
        # watchdog deadline later on every message; an early wake-up costs one no-op
        # handle_timer, re-arming on every request would cost a heap push each time.
        if t is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = None
        elif armed is None or t < armed:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = t
            self._timer = self._loop.call_at(t, self._on_timer)
        self._update_reading()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.conn is not None:
            self._handle(self.conn.handle_timer(self._loop.time()))

    def _update_reading(self) -> None:
        transport = self.transport
        conn = self.conn
        if transport is None or conn is None or transport.is_closing():
            return
        want_pause = self._write_paused or conn.inflight >= self.config.max_inflight
        if want_pause and not self._read_paused:
            self._read_paused = True
            transport.pause_reading()
        elif not want_pause and self._read_paused:
            self._read_paused = False
            transport.resume_reading()

    def _dispatch(self, ev: RequestReceived) -> None:
        request = ev.message
        responder = self.responder
        if responder is not None:
            try:
                responder(request, self)
            except Exception:
                self._handler_failed(request, time.perf_counter_ns())
            return
        handler = self.handler
        if handler is None:
            conn = self.conn
            assert conn is not None
            ans = error_answer(
                request, conn.me, 3001, error_message="no application handler is configured"
            )
            self.reply(request, ans, time.perf_counter_ns())
            return
        t0 = time.perf_counter_ns()
        try:
            aw = handler(request, self)
            if not self._eager or not isinstance(aw, CoroutineType):
                self._spawn(self._run_handler(request, aw, t0))
                return
            # Eager start (what 3.12's eager_task_factory does): most answers are ready
            # without suspending, and then no Task, no call_soon, no future is made.
            yielded = aw.send(None)
        except StopIteration as stop:
            self._answer(request, stop.value, t0)
        except Exception:
            self._handler_failed(request, t0)
        else:
            self._spawn(self._run_handler(request, _resume(aw, yielded), t0))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _answer(self, request: Message, answer: Message, t0: int) -> None:
        if not isinstance(answer, Message):
            log.error("diameter.handler_failed", peer=self.peer_host, command=request.code,
                      error=f"handler returned {type(answer).__name__}, not a Message")
            self._handler_failed(request, t0, logged=True)
            return
        self.reply(request, answer, t0)

    def _handler_failed(self, request: Message, t0: int, logged: bool = False) -> None:
        if not logged:
            log.exception("diameter.handler_failed", peer=self.peer_host, command=request.code)
        conn = self.conn
        assert conn is not None
        if request.hop_by_hop not in conn._inflight:
            return  # already answered (a responder that failed after its reply)
        answer = error_answer(request, conn.me, 5012, error_message="internal error", e_bit=False)
        self.reply(request, answer, t0)

    async def _run_handler(self, request: Message, aw: Awaitable[Message], t0: int) -> None:
        conn = self.conn
        assert conn is not None
        try:
            answer = await aw
        except asyncio.CancelledError:
            conn.abandon_request(request.hop_by_hop)  # never answered: not a pending duplicate
            raise
        except Exception:
            self._handler_failed(request, t0)
            return
        self._answer(request, answer, t0)

    def _log_request(self, request: Message, answer: Message | bytes, t0: int) -> None:
        if answer.__class__ is bytes:
            result_code = result_code_of(answer)  # type: ignore[arg-type]
        else:
            result_code = cast(Message, answer).get("Result-Code")
        log.info(
            "diameter.request",
            peer=self.peer_host,
            command=request.code,
            app=request.app_id,
            session=request.get("Session-Id"),
            result_code=result_code,
            elapsed_us=(time.perf_counter_ns() - t0) // 1000 if t0 else None,
        )


def _log_enabled(level: int) -> bool:
    """``log.is_enabled_for(level)``, remembered while structlog's wrapper class stays the
    same: through the lazy proxy every call costs ~8k instructions (proxy -> bind -> the
    filtering logger), paid per answer while ``request_log`` is on. A level filter from
    ``structlog.make_filtering_bound_logger`` (what icx configures) is a class per level,
    so a reconfiguration replaces the class and the cache follows it; any other wrapper
    is asked every time (its answer may change without a reconfiguration)."""
    wrapper = getattr(_SL_CONFIG, "default_wrapper_class", None)
    if wrapper is None or getattr(wrapper, "__module__", "") != "structlog._native":
        return bool(log.is_enabled_for(level))
    hit = _ENABLED.get(level)
    if hit is not None and hit[0] is wrapper:
        return hit[1]
    on = bool(log.is_enabled_for(level))
    _ENABLED[level] = (wrapper, on)
    return on


_SL_CONFIG: Any
try:  # the live configuration object (structlog.configure() sets its attributes)
    from structlog._config import _CONFIG as _SL_CONFIG
except ImportError:  # pragma: no cover - another structlog layout: ask every time
    _SL_CONFIG = None
_ENABLED: dict[int, tuple[object, bool]] = {}


if _LANE is not None:
    _LANE.use_for_replies(PeerProtocol, functools.partial(_log_enabled, _INFO), _SL_CONFIG)
    _LANE.bind_layouts(PeerConnection, PeerProtocol, DuplicateCache, Watchdog, FrameBuffer)
