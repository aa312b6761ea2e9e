"""Offline (Rf) accounting sessions: ACR START/INTERIM/STOP/EVENT, rated once at STOP. Part of
:class:`charging.service.ChargingService`.

Journal before answer (invariant 3) holds for Rf as for Ro: every ACR that is not a
duplicate enqueues ONE ``acct`` record -- what it contributes (its record number, the usage it
reports) and the accounting session's state after it -- followed, in the same append, by the
rated record(s) it causes (a STOP, an EVENT, a late record, a session closed for silence).
The caller of ``decide`` answers once the journal is durable up to ``durable_mark()`` (the
agent's ``call_when_durable``, no fsync of its own), so an ACA 2001 leaves only once what its
ACR contributes can no longer be lost.

The in-memory state (open sessions, closed ones kept for duplicates and late records,
EVENT keys) changes only in the same event-loop step as the append that records it -- never
across an await -- so the state at any journal position is exactly what the ``acct`` records
before it say. After a restart (clean or ``kill -9``) :meth:`OfflineCharging.recover_offline`
rebuilds it from the newest checkpoint (charging/offline_state.py) and the ``acct`` records
after its position, and writes the rated records of an ACR whose append was cut short by the
crash (its ``acct`` record names them; they follow it, so only the journal's very end can
lack some).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charging import offline_state
from charging.journal import JournalReader, Position
from charging.money import format_amount
from charging.requests import (
    SERVICE_UNIT,
    ChargingRequest,
    ChargingResult,
    Outcome,
    ServiceKind,
    UnitKind,
    Verb,
)
from charging.service_core import ServiceCore
from charging.sessions import Grant, Session

_log = logging.getLogger("icx.rf")

_KIND = {Verb.INITIAL: "start", Verb.UPDATE: "interim", Verb.TERMINATE: "stop",
         Verb.EVENT: "event"}
# the rated records an acct record of each kind announces carry this result (the rater may
# still make it "unrated")
_RESULT = {"stop": "ok", "event": "ok", "late": "late", "timeout": "tcc_expired"}
# What recovery reads of each record: only ``acct`` records have ``rf``; ``idem`` finds the
# rated records an ``acct`` record announced.
RECOVERY_FIELDS = ("ts", "idem", "rf")

_VALUE = {k: k.value for k in ServiceKind}  # (Enum.value is a slow descriptor)
# (key, service, usage, base): one rated record an ACR causes (see _offline_rates)
_Spec = tuple[str, ServiceKind, int, int]


@dataclass(frozen=True, slots=True)
class OfflineRecovery:
    """What :meth:`OfflineCharging.recover_offline` found."""

    checkpoint: Position | None
    records: int  # journal records read after it
    applied: int  # acct records applied
    open: int
    closed: int
    rewritten: int  # rated records an ACR announced that the journal lacked (written now)
    problems: tuple[str, ...]


class OfflineCharging(ServiceCore):
    """Rf accounting sessions (and their recovery)."""

    async def _offline(self, req: ChargingRequest, key: str, now: float) -> ChargingResult:
        """ACR START/INTERIM/STOP/EVENT: accumulate usage, rate the call at STOP (one rated
        record per service it used, e.g. a rating group of time-metered data beside the
        octets).

        Postpaid / interconnect: no balance check and no balance effect; settlement reads the
        rated record from the journal. Duplicates (Session-Id + Accounting-Record-Number) are
        answered success and dropped; a new record of a session already closed is not lost
        (:meth:`_offline_late`)."""
        at = req.at or now
        used = _offline_used(req)
        if req.verb is Verb.EVENT:
            return await self._offline_event(req, key, at, used, now)
        sid, n = req.session_id, req.request_number
        closed = self._closed_offline.get(sid)
        if closed is not None:
            return await self._offline_late(sid, closed, req, key, at, used, now)
        session = self.offline.get(sid)
        if session is not None and n in session.seen:  # type: ignore[operator]
            return ChargingResult(outcome=Outcome.SUCCESS, message="duplicate")
        stop = req.verb is Verb.TERMINATE
        account = None
        if stop and (session is None or session.account is None):
            # before anything changes: over Redis this suspends (the session's turn is ours,
            # and supervise() leaves a busy session alone)
            account = await self._offline_account(req.subscriber)
            closed = self._closed_offline.get(sid)
            if closed is not None:  # (cannot happen: nothing else runs this session's turn)
                return await self._offline_late(sid, closed, req, key, at, used, now)
            session = self.offline.get(sid)
        new = session is None
        if session is None:
            session = self._offline_session(req, at, now)
        else:
            self._rf_cow(session)
        saved = _save(session)
        self._offline_advance(session, n, req.verb, at, used, octets=req.session_octets,
                              containers=_offline_containers(req),
                              session_time=req.session_time)
        specs: list[_Spec] = []
        if stop:
            if session.account is None:
                session.account = account
            specs = self._offline_close_specs(session, key)
        try:
            self._offline_journal(session, _KIND[req.verb], key, n, at, used, specs, now,
                                  octets=req.session_octets)
        except BaseException:
            # nothing was recorded (answered 4002): the CTF's retry of this ACR must count
            _restore(session, saved, n)
            raise
        if stop:
            if not new:
                self.offline.pop(sid)
            self._offline_closed(session, now)
        elif new:
            self.offline.add(session)
        else:
            self.offline.touch(session, now + self._offline_timeout())
        return ChargingResult(outcome=Outcome.SUCCESS)

    async def _offline_event(self, req: ChargingRequest, key: str, at: float,
                             used: dict[ServiceKind, int], now: float) -> ChargingResult:
        """An EVENT_RECORD: one rated record per service it names; the same record again
        (same key) within ``offline_retention`` is a duplicate, across restarts too."""
        if key in self._offline_events:
            return ChargingResult(outcome=Outcome.SUCCESS, message="duplicate")
        account = await self._offline_account(req.subscriber)
        if key in self._offline_events:  # (a twin finished while we waited: Redis)
            return ChargingResult(outcome=Outcome.SUCCESS, message="duplicate")
        session = self._offline_session(req, at, now)
        session.account = account
        # its rated record's ``request`` (and the acct record's ``last``, which the recovery
        # of a cut-off rated record reads) is its Accounting-Record-Number, as a STOP's is
        session.last_number = req.request_number
        used = {s: n for s, n in used.items() if n}
        counted = _counted_by_octets(req.service, used, _offline_octets(req))
        if counted is not None:  # its octet counters are its volume (the same rule as a call's)
            used[req.service] = counted
        used = used or {req.service: 1 if SERVICE_UNIT[req.service] is UnitKind.EVENTS else 0}
        specs = [(_offline_key(key, i, s), s, u, 0) for i, (s, u) in enumerate(used.items())]
        self._offline_journal(session, "event", key, req.request_number, at, used, specs, now,
                              octets=req.session_octets)
        self._offline_events[key] = now + self.config.offline_retention
        self._offline_forget(now)
        return ChargingResult(outcome=Outcome.SUCCESS)

    async def _offline_late(self, sid: str, closed: bytes, req: ChargingRequest, key: str,
                            at: float, used: dict[ServiceKind, int],
                            now: float) -> ChargingResult:
        """An ACR of a session already closed (by its STOP, or for silence; *closed*: its
        compact record, charging/offline_state.py). A record number seen before is a
        duplicate: answered, not recorded again (RFC 6733 §9.4). A new one -- an INTERIM
        delayed past its STOP by a failover, a STOP after the session timed out -- is not
        lost: the usage it adds is written as a ``late`` rated record priced at what it adds
        to the price of the whole call (so the call's records add up to that price,
        increments and fees counted once)."""
        n = req.request_number
        if offline_state.closed_saw(closed, n):
            return ChargingResult(outcome=Outcome.SUCCESS, message="duplicate")
        # a copy: the remembered record changes only when this one is journaled
        session = offline_state.closed_session(sid, closed, self.config.currency)
        if session.account is None and session.subscriber:
            account = await self._offline_account(session.subscriber)
            again = self._closed_offline.get(sid)
            if again is not None and again is not closed:  # (cannot happen: our turn)
                return await self._offline_late(sid, again, req, key, at, used, now)
            session.account = account
        touched = self._offline_advance(session, n, req.verb, at, used, last=False,
                                        octets=req.session_octets,
                                        containers=_offline_containers(req),
                                        session_time=req.session_time)
        specs = [(_offline_key(key, i, g.service), g.service, g.used_total - before, before)
                 for i, (g, before) in enumerate(touched) if g.used_total > before]
        self._offline_journal(session, "late", key, n, at, used, specs, now,
                              octets=req.session_octets)
        self._offline_closed(session, now)  # its numbers are remembered from its last record
        return ChargingResult(outcome=Outcome.SUCCESS)

    async def _offline_expire(self, session: Session, now: float) -> None:
        """Close an Rf session silent for ``[rf] session_timeout`` (taken out of the table by
        the caller, who holds its turn: an ACR of it arriving meanwhile waits) with the usage
        seen: its rated record(s), result ``tcc_expired``."""
        sid = session.id
        try:
            if session.account is None and session.subscriber:
                account = await self._offline_account(session.subscriber)
                self._rf_cow(session)
                session.account = account
            self._rf_cow(session)
            key = f"rf:{sid}:tcc"
            self._offline_journal(session, "timeout", key, None, now, {},
                                  self._offline_close_specs(session, key), now)
        except BaseException:
            self.offline.add(session)  # still open: the next sweep tries again
            raise
        self._offline_closed(session, now)

    # ------------------------------------------------------------------ state changes

    async def _offline_account(self, subscriber: str | None) -> str | None:
        return await self.accounts.resolve(subscriber) if subscriber else None

    def _offline_advance(self, session: Session, n: int, verb: Verb, at: float,
                         used: dict[ServiceKind, int], *, last: bool = True,
                         octets: tuple[int | None, int | None] | None = None,
                         containers: dict[ServiceKind, int] | None = None,
                         session_time: int | None = None,
                         ) -> list[tuple[Grant, int]]:
        """Count record *n* into the session: seen, each service's total, the last number.
        *octets*: the record's octet counters, input and output (:func:`_counter_volume`
        turns them into the session's volume); *containers*: the
        part of *used* its Service-Data-Containers report (:func:`_offline_containers`).
        Returns (usage counter, its total before) of each service the record touched."""
        containers = containers or {}
        # (before seen/last change: the counters' newest reading is the newest record's)
        volume = None if octets is None else _counter_volume(session, n, octets)
        session.seen.add(n)  # type: ignore[union-attr]
        touched = [(g, g.used_total) for g in self._offline_grants(session, used)]
        cumulative = self.config.offline_usage_reports == "cumulative"
        counted = _counted_by_octets(session.service, used, volume)
        for grant, before in touched:
            by_octets = counted if grant.service is session.service else None
            grant.used_total = total = self._offline_total(session, grant, verb, at, used,
                                                           cumulative=cumulative,
                                                           octets=by_octets,
                                                           containers=containers,
                                                           session_time=session_time)
            if by_octets is not None and by_octets < before and n > session.last_number:
                # a newer record whose counters add up to less than the call's volume so far
                # (the USU of earlier records counted more than the counters do): keep what
                # was counted -- a record never un-charges -- and say so.
                _log.warning("rf session %r: record %d: its octet counters make the session "
                             "%d octets, lower than the %d counted so far; keeping %d",
                             session.id, n, by_octets, before, total)
            usu = used.get(grant.service, 0) - containers.get(grant.service, 0)
            if (cumulative and n > session.last_number and total > usu > 0
                    and not containers.get(grant.service)):
                # a newer record reporting less than the call's total so far (a record older
                # than the last one may: it was overtaken): the client reset its counter, or
                # reports parts after all. Keep the higher total -- what was reported is not
                # un-charged -- and say so: the operator checks the client or the setting.
                _log.warning("rf session %r: record %d reports a %s total of %d, lower than "
                             "the %d reported before; keeping %d ([rf] usage_reports = "
                             "\"cumulative\")", session.id, n, grant.service.value,
                             usu, before, total)
        if last:
            session.last_number = max(session.last_number, n)
        return touched

    def _offline_closed(self, session: Session, now: float) -> None:
        """Keep a closed session for ``offline_retention`` after its last record, compact
        (offline_state.pack_closed): its record numbers tell a duplicate from a late record,
        its parties, start and totals price a late one."""
        session.expires = now + self.config.offline_retention
        closed = self._closed_offline
        closed.pop(session.id, None)
        closed[session.id] = offline_state.pack_closed(session)
        self._offline_forget(now)

    def _offline_forget(self, now: float) -> None:
        """Drop closed sessions and EVENT keys past their retention (oldest first)."""
        closed = self._closed_offline
        forget_at = offline_state.closed_forget_at
        while closed:
            if forget_at(next(iter(closed.values()))) > now:
                break
            closed.popitem(last=False)
        events = self._offline_events
        while events:
            k, forget = next(iter(events.items()))
            if forget > now:
                break
            del events[k]

    def _offline_journal(self, session: Session, kind: str, key: str, n: int | None,
                         at: float, used: dict[ServiceKind, int], specs: list[_Spec],
                         now: float, *, octets: tuple[int | None, int | None] | None = None,
                         ) -> None:
        """Enqueue the ACR's ``acct`` record (session state AFTER it; *octets*: its octet
        counters as received, input and output) and then the rated records *specs*
        describe, in ONE append. Raises (nothing enqueued, nothing rated twice) when the
        journal failed."""
        row = offline_state.session_row(session)
        row.update(k=kind, n=n, at=at)
        if specs:
            row["rate"] = [[k, _VALUE[s], u, b] for k, s, u, b in specs]
        acct: dict[str, Any] = {
            "type": "acct", "idem": f"{key}:acct", "session": session.id,
            "request": str(session.last_number if n is None else n), "record": kind,
            "used": {_VALUE[s]: u for s, u in used.items()}, "result": "ok",
            "balance_effects": [], "holds": [], "rf": row}
        if octets is not None:
            acct["octets"] = list(octets)
        records = [acct, *self._offline_rates(session, specs, end=at, result=_RESULT.get(kind),
                                              request=n if kind == "late" else None)]
        self.ledger.record_many_now(records, now=now)
        rated = len(records) - 1
        if rated:
            self.counters["offline_record"] = self.counters.get("offline_record", 0) + rated

    def _offline_close_specs(self, session: Session, key: str) -> list[_Spec]:
        """The rated records of the whole call: one per service it used (one of the session's
        own service when it used nothing)."""
        grants = [g for g in session.grants if g.used_total] or session.grants[:1] or [
            Grant(-1, session.service, SERVICE_UNIT[session.service])]
        return [(_offline_key(key, i, g.service), g.service, g.used_total, 0)
                for i, g in enumerate(grants)]

    def _offline_rates(self, session: Session, specs: list[_Spec], *, end: float,
                       result: str | None, request: int | None) -> list[dict[str, Any]]:
        return [self._offline_rated(session, service, usage, end=end, key=k,
                                    result=result or "ok", base=base, request=request)
                for k, service, usage, base in specs]

    def _offline_rated(self, session: Session, service: ServiceKind, usage: int, *,
                       end: float, key: str, result: str, base: int = 0,
                       request: int | None = None) -> dict[str, Any]:
        """The fields of one rated record of *usage* units. *base*: units of the call already
        recorded; the price is then what *usage* adds to theirs. A call is rated at its start,
        as an online one (the tariff and band in force then: a tariff reloaded while it is
        open does not re-price it, ``band_mode = "start"`` takes the start band)."""
        at = session.started
        rated = self._rate(session, service, base + usage, at) if usage > 0 else None
        before = self._rate(session, service, base, at) if rated is not None and base else None
        fields: dict[str, Any] = {
            "type": "rated", "idem": key, "session": session.id,
            "request": str(session.last_number if request is None else request),
            "service": service.value,
            "usage": usage, "unit": SERVICE_UNIT[service].value,
            "a": session.origin, "b": session.destination, "account": session.account,
            "deck": session.deck, "start": int(session.started * 1_000_000),
            "end": int(end * 1_000_000), "result": result,
            "balance_effects": [], "holds": [],
        }
        if rated is not None and (before is not None or not base):
            price = rated.price - (before.price if before is not None else 0)
            fields.update(price=format_amount(price), currency=rated.currency,
                          deck_version=str(rated.deck_version), prefix=rated.prefix,
                          destination=rated.destination)
        elif usage > 0:
            fields["result"] = "unrated"
        else:
            fields.update(price=format_amount(0), currency=session.currency)
        return fields

    @staticmethod
    def _offline_grants(session: Session, used: dict[ServiceKind, int]) -> list[Grant]:
        """The session's usage counter of each service *used* names, and of its own service
        (created when missing); the session's own first."""
        grants = []
        for service in (session.service, *used):
            grant = next((g for g in session.grants if g.service is service), None)
            if grant is None:
                grant = Grant(-1 - len(session.grants), service, SERVICE_UNIT[service])
                session.grants.append(grant)
            if grant not in grants:
                grants.append(grant)
        return grants

    @staticmethod
    def _offline_total(session: Session, grant: Grant, verb: Verb, at: float,
                       used: dict[ServiceKind, int], *, cumulative: bool = False,
                       octets: int | None = None,
                       containers: dict[ServiceKind, int] | None = None,
                       session_time: int | None = None) -> int:
        """A service's usage in the session after a record: its Used-Service-Units add up
        (each record reports its own part: ``[rf] usage_reports = "incremental"``), or, with
        ``"cumulative"`` (each reports the call's total so far), the highest total reported
        (records may arrive out of order); without any, *octets* -- the record's octet
        counters, when they count for this service (:func:`_counted_by_octets`) -- is the
        call's volume so far, so the call is at least that (the record adds what it exceeds
        the volume counted before; in either mode: RFC 7155 defines them as running totals);
        without either, the session's own service, when timed, lasts until the record's
        Event-Timestamp -- or, when the record carries it, its Acct-Session-Time
        (*session_time*, the client's running total of the session's length). *containers*:
        the part of *used* the record's TS 32.299
        Service-Data-Containers report -- each the usage of its own interval, so it adds in
        either mode (only the Used-Service-Units are running totals in ``"cumulative"``)."""
        n = used.get(grant.service, 0)
        if n:
            if cumulative:
                c = containers.get(grant.service, 0) if containers else 0
                usu = n - c
                return (max(grant.used_total, usu) if usu else grant.used_total) + c
            return grant.used_total + n
        if octets is not None:
            return max(grant.used_total, octets)
        if (grant.service is session.service and verb is not Verb.INITIAL
                and grant.unit is UnitKind.TIME and not any(used.values())):
            if session_time is not None:
                # the client's own measure of the session so far (RFC 7155 §4.6.5
                # Acct-Session-Time, a running total): it wins over our timestamps (a START
                # lost or late would move the start we count from)
                return max(grant.used_total, session_time)
            return max(grant.used_total, int(at - session.started))
        return grant.used_total

    def _offline_session(self, req: ChargingRequest, at: float, now: float) -> Session:
        return Session(
            session_id=req.session_id, account=None, balance=None,
            currency=self.config.currency, service=req.service, subscriber=req.subscriber,
            destination=req.destination, origin=req.origin or req.subscriber,
            peer_host=req.peer_host, peer_realm=req.peer_realm,
            deck=self.config.offline_deck or self.config.deck, started=at,
            expires=now + self._offline_timeout(), offline=True, context=req.context)

    def _offline_timeout(self) -> float:
        timeout = self.config.offline_timeout
        return self.config.tcc if timeout is None else timeout

    # ------------------------------------------------------------------ restart

    async def checkpoint_offline(self, directory: Path, *, step: int = 500,
                                 pause: float = 0.005) -> Position:
        """Write a checkpoint of the Rf state (charging/offline_state.py) as it is at the
        journal position now, and return that position; published only once the journal is
        durable up to it. Rows are encoded and written *step* at a time (~2 ms of loop),
        *pause* seconds apart; a session that changes meanwhile has its row kept as it was
        (copy-on-write, :meth:`_rf_cow`). One at a time."""
        if self._rf_writer is not None:
            raise RuntimeError("an Rf checkpoint is already being written")
        pos = self.ledger.position
        writer = self._rf_writer = offline_state.CheckpointWriter(
            directory, pos, list(self.offline), list(self._closed_offline.items()),
            list(self._offline_events.items()))
        loop = asyncio.get_running_loop()
        try:
            try:
                while not writer.step(step):
                    await asyncio.sleep(pause)
            finally:
                self._rf_writer = None
            await loop.run_in_executor(None, writer.finish)
            await self.ledger.wait_durable(pos)
            await loop.run_in_executor(None, offline_state.publish_checkpoint, writer.tmp,
                                       directory, pos)
        except BaseException:
            writer.abort()
            raise
        return pos

    def _rf_cow(self, session: Session) -> None:
        """Call before changing open *session* (its numbers, totals, expiry, account,
        table): a checkpoint being written keeps the session's row as it was at its position.
        (A closed session's record is bytes, replaced whole: the checkpoint keeps the old.)"""
        writer = self._rf_writer
        if writer is not None:
            writer.preserve(session)

    async def recover_offline(self, journal_dir: Path, directory: Path, *,
                              now: float) -> OfflineRecovery:
        """Rebuild the Rf state after a restart: the newest readable checkpoint in
        *directory* (none: from the journal's start), then every ``acct`` record after its
        position, in journal order. Open sessions keep their usage, record numbers and expiry
        (``[rf] session_timeout`` from their last record: supervise() closes the ones that
        ran out while the server was down); closed ones and EVENT keys are kept for
        ``offline_retention`` after their last record. Rated records an ``acct`` record
        announced but the journal lacks (the crash cut its append short: the ACA was never
        sent) are written now. Call once, before serving."""
        pos, state, problems = offline_state.read_newest(directory)
        currency = self.config.currency
        if state is not None:
            for r in state.get("open") or ():
                self.offline.add(offline_state.session_of(r, currency))
            self._closed_offline.update(offline_state.closed_of(state, currency))
            for k, t in state.get("events") or ():
                self._offline_events[k] = t
        pending: dict[str, tuple[dict[str, Any], int]] = {}  # announced rated idem -> acct
        records = applied = 0
        for chunk in JournalReader(journal_dir).chunks(pos, fields=RECOVERY_FIELDS):
            for rec in chunk.records:
                records += 1
                if pending:
                    pending.pop(rec.get("idem"), None)  # type: ignore[arg-type]
                rf = rec.get("rf")
                if rf is None:
                    continue
                self._offline_apply(rf, rec.get("ts") or 0, currency)
                applied += 1
                for spec in rf.get("rate") or ():
                    pending[spec[0]] = (rf, rec.get("ts") or 0)
        rewritten = 0
        if pending:
            rewritten = self._offline_rewrite(pending, currency)
            await self.ledger.wait_durable(self.ledger.position)
        self._offline_forget(now)
        return OfflineRecovery(pos, records, applied, len(self.offline),
                               len(self._closed_offline), rewritten, tuple(problems))

    def _offline_apply(self, rf: dict[str, Any], ts_us: int, currency: str | None) -> None:
        """One ``acct`` record (journal order): the session's state after it."""
        kind, sid, ts = rf["k"], rf["id"], ts_us / 1_000_000
        retention = self.config.offline_retention
        if kind == "event":
            self._offline_events[f"rf:{sid}:{rf['n']}"] = ts + retention
            return
        closed = self._closed_offline
        if kind == "late":
            record = closed.pop(sid, None)
            session = (offline_state.session_of(rf, currency) if record is None
                       else offline_state.closed_session(sid, record, currency))
        elif kind == "timeout":
            session = self.offline.pop(sid) or offline_state.session_of(rf, currency)
        else:
            # (a closed session still listed here was forgotten when this record came)
            closed.pop(sid, None)
            session = self.offline.get(sid) or offline_state.session_of(rf, currency)
        offline_state.set_totals(session, rf)
        session.last_number = rf.get("last", session.last_number)
        if rf.get("acct") is not None:
            session.account = rf["acct"]
        if rf.get("n") is not None:
            session.seen.add(rf["n"])  # type: ignore[union-attr]
        if kind in ("start", "interim"):
            self.offline.add(session)  # (to the end: the table is in last-activity order)
            session.expires = ts + self._offline_timeout()
        else:
            self.offline.pop(sid)
            session.expires = ts + retention
            closed[sid] = offline_state.pack_closed(session)

    def _offline_rewrite(self, pending: dict[str, tuple[dict[str, Any], int]],
                         currency: str | None) -> int:
        """Write the rated records announced by ``acct`` records but missing from the journal
        (each built as the ACR built it: same session state, key, usage, base, end)."""
        out = []
        for key, (rf, ts_us) in pending.items():
            spec = next(s for s in rf["rate"] if s[0] == key)
            session = offline_state.session_of(rf, currency)
            kind = rf["k"]
            rec = self._offline_rated(session, ServiceKind(spec[1]), spec[2], end=rf["at"],
                                      key=key, result=_RESULT[kind], base=spec[3],
                                      request=rf["n"] if kind == "late" else None)
            self.ledger.record_many_now([rec], now=ts_us / 1_000_000)
            out.append(key)
        _log.warning("rf recovery: wrote %d rated record(s) the crash cut off: %s", len(out),
                     out)
        return len(out)


_Saved = tuple[list[Grant], list[int], int, list[int] | None]


def _save(session: Session) -> _Saved:
    return (list(session.grants), [g.used_total for g in session.grants], session.last_number,
            session.counters)


def _restore(session: Session, saved: _Saved, n: int) -> None:
    grants, totals, last, counters = saved
    session.grants[:] = grants
    for g, t in zip(grants, totals, strict=True):
        g.used_total = t
    session.last_number = last
    session.counters = counters
    session.seen.discard(n)  # type: ignore[union-attr]


def _offline_used(req: ChargingRequest) -> dict[ServiceKind, int]:
    """Units used by service (an ACR's units may name several: rating groups), its
    Used-Service-Units and its Service-Data-Containers together."""
    out: dict[ServiceKind, int] = {}
    for su in (*req.units, *req.containers) if req.containers else req.units:
        service = su.service or req.service
        out[service] = out.get(service, 0) + max(0, su.used)
    return out


def _offline_containers(req: ChargingRequest) -> dict[ServiceKind, int]:
    """Units by service of the ACR's TS 32.299 Service-Data-Containers alone (a part of
    :func:`_offline_used`): each container is the usage of its own interval, rated per
    rating group -- a configured one as its own service."""
    out: dict[ServiceKind, int] = {}
    for su in req.containers:
        service = su.service or req.service
        out[service] = out.get(service, 0) + max(0, su.used)
    return out


def _offline_octets(req: ChargingRequest) -> int | None:
    """The octets of an EVENT_RECORD by its counters (RFC 7155 §4.6.1/4.6.2: input +
    output), or None when it carries none."""
    octets = req.session_octets
    return None if octets is None else (octets[0] or 0) + (octets[1] or 0)


_NO_COUNTERS = [0, 0, 0, 0]


def _counter_volume(session: Session, n: int, octets: tuple[int | None, int | None]) -> int:
    """The session's volume (input + output octets) by its RFC 7155 counters after record
    *n* read *octets* (input, output; None: not carried), keeping ``session.counters``.

    The counters are running totals: "how many octets have been received from the port in
    the course of this session" (RFC 7155 §4.6.1/4.6.2), Unsigned64 -- a Diameter counter
    does not wrap (a RADIUS one does, at 2^32: RFC 2869 §5.1/5.2 Acct-Input/Output-Gigawords
    carry the wraps; mediation/rf.py adds them in, so a wrap reported with its gigawords is
    no decrease). A reading below the one before (per direction), from a newer record, is
    therefore the NAS counting again from zero (a restart of its counters): what it counted
    before is kept and the new reading adds to it, so the octets after the reset are billed
    -- not lost until the new count passes the old one. A record older than the newest one
    seen (overtaken on the way) changes nothing: the newer reading includes its octets."""
    c = session.counters or _NO_COUNTERS
    if n < session.last_number:
        return c[0] + c[1] + c[2] + c[3]
    new = list(c)  # (replaced whole: a checkpoint being written may hold the old list)
    for i, reading in ((0, octets[0]), (2, octets[1])):
        if reading is None:
            continue
        if reading < new[i + 1]:
            _log.warning("rf session %r: record %d reports %s octets %d, below the %d "
                         "read before: the client's counter restarted from zero (RFC 7155 "
                         "§4.6 counters are running totals and do not wrap); billing the "
                         "%d counted before plus the new reading", session.id, n,
                         "input" if i == 0 else "output", reading, new[i + 1],
                         new[i] + new[i + 1])
            new[i] += new[i + 1]
        new[i + 1] = reading
    session.counters = new
    return new[0] + new[1] + new[2] + new[3]


def _counted_by_octets(service: ServiceKind, used: dict[ServiceKind, int],
                       octets: int | None) -> int | None:
    """*octets* when a record's octet counters count for *service* (the session's own), else
    None: only a service metered in octets, and only when the record reports no octets for
    it in Used-Service-Unit. A record reporting both: its USU wins -- the counters cover the
    same traffic (and every rating group's, not the service's alone), so adding them would
    count it twice; its counters add nothing then."""
    if octets is None or SERVICE_UNIT[service] is not UnitKind.OCTETS or used.get(service):
        return None
    return octets


def _offline_key(key: str, i: int, service: ServiceKind) -> str:
    """The idem key of a session's i-th service record: the request's own for the first."""
    return key if i == 0 else f"{key}:{service.value}"


