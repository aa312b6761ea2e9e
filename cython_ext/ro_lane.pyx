# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of the per-CCR glue of mediation.agent.ChargingAgent.respond (the spec).

:class:`Responder` is what the Diameter server calls for every application request when
this module is built: for a CCR that the compiled translator (cython_ext/ro_request.pyx)
accepts and whose decision completes without suspending (the embedded store) it does what
``respond`` does -- translate, remember the peer, ``decide`` driven by ``PyIter_Send`` (no
StopIteration object), the durable mark read right after, the CCA bytes from the compiled
writer -- and hands a :class:`Durable` callback to the journal (invariant 3: the answer goes
out from the durability callback only). Anything else (another command, a CCR the compiled
translator declines, a translation error, a decision that raises or suspends, a result the
compiled CCA writer declines, a failed group commit) goes to the agent's Python methods at
the point where the two paths would differ, so answers are always the spec's.

This module imports nothing from the project: the agent hands its parts over.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from cython_ext.diameter_codec cimport Avp, Message

ABI = 1

include "gc_untrack.pxi"


cdef extern from "Python.h":
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    PySendResult PyIter_Send(object iter, object arg, PyObject** presult)
    object PyObject_Vectorcall(object callable, PyObject** args, size_t nargsf,
                               object kwnames)


# decide(req, now=...) through vectorcall with keyword names: Cython builds a dict per call
# for a keyword argument otherwise
cdef tuple _NOW_KW = ("now",)


cdef inline long long _now_ns() noexcept nogil:
    # time.perf_counter_ns() on Linux: CLOCK_MONOTONIC (the agent's t0 clock)
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <long long>ts.tv_sec * 1000000000 + ts.tv_nsec


@cython.final
cdef class Responder:
    """``agent.respond`` for the common CCR. Construct with the agent once; read the agent's
    ``_split`` (decide, durable_mark, call_when_durable) on every call, so a caller may
    replace it afterwards (benchmarks do). ``smap``, ``peers``, ``clock`` and ``metrics``
    are read once here: the agent sets them in its constructor and never replaces them."""

    cdef object agent
    cdef object spec        # agent.respond_py: everything this twin declines
    cdef object twin        # ro_request.ccr_to_request
    cdef object smap
    cdef dict peers
    cdef object encode      # CcaWriter.encode
    cdef object clock
    cdef object observe     # metrics.observe
    cdef dict rc_by_id
    cdef object resume      # diameter.eager.resume
    cdef object metrics
    cdef list ccr_hist
    cdef dict m_requests, m_sums, rc_keys
    cdef double buckets[32]
    cdef int nbuckets
    cdef object decide_now  # service.decide_now (round 6; None: older service)
    cdef object split0      # the agent's _split decide_now goes with (benchmarks replace it)
    cdef object service     # the agent's service (its _fast: the compiled twin's decide)

    def __init__(self, agent, *, spec, twin, encode, rc_by_id, resume, buckets):
        self.agent = agent
        self.spec = spec
        self.twin = twin
        self.smap = agent.smap
        self.peers = agent.peers
        self.encode = encode
        self.clock = agent.clock
        self.observe = agent.metrics.observe
        self.rc_by_id = rc_by_id
        self.resume = resume
        self.metrics = agent.metrics
        self.ccr_hist = None
        self.rc_keys = {}
        # decide_now(req, now) -> ChargingResult | None (charging/service.py): the fast
        # path's decision without a coroutine object; None = run the coroutine decide.
        # Used only while the agent's _split is still the one built with this service
        # (benchmarks/_ro_outside replaces it with a canned decide).
        self.decide_now = getattr(getattr(agent, "service", None), "decide_now", None)
        self.split0 = getattr(agent, "_split", None)
        self.service = getattr(agent, "service", None)
        self.nbuckets = -1  # -1: metrics.observe (the spec) does it
        if type(buckets) is tuple and len(buckets) <= 32:
            self.nbuckets = len(buckets)
            for i in range(self.nbuckets):
                self.buckets[i] = buckets[i]

    cdef observe_ccr(self, int rc, double seconds):
        """Metrics.observe("CCR", rc, seconds) (mediation/metrics.py, the spec). The
        metrics object is the agent's, read at construction (the agent never replaces it);
        its dicts and the CCR histogram list are created once and never replaced."""
        cdef int i = 0
        cdef list hist = self.ccr_hist
        if hist is None:
            m = self.metrics
            found = m._hist.get("CCR") if self.nbuckets >= 0 else None
            if type(found) is not list or len(<list>found) != self.nbuckets + 1:
                self.observe("CCR", rc, seconds)  # the first CCR creates the histogram
                return
            self.ccr_hist = hist = <list>found
            self.m_requests = m.requests
            self.m_sums = m._sum
        key = self.rc_keys.get(rc)
        if key is None:
            key = self.rc_keys[rc] = ("CCR", rc)
        requests = self.m_requests
        requests[key] = requests.get(key, 0) + 1
        while i < self.nbuckets and self.buckets[i] < seconds:  # bisect_left
            i += 1
        hist[i] += 1
        sums = self.m_sums
        sums["CCR"] += seconds

    def __call__(self, request, peer):
        self.respond(request, peer)

    cdef respond(self, request, peer):
        cdef long long t0 = _now_ns()
        cdef PyObject* out = NULL
        cdef PySendResult sent
        agent = self.agent
        split = agent._split
        if type(request) is not Message or (<Message>request).code != 272 or split is None:
            self.spec(request, peer)
            return
        req = self.twin(request, self.smap)
        if req is None:  # the pure translator decides (and answers a bad request)
            self.spec(request, peer)
            return
        host = req.peer_host
        if peer is not None and host and self.peers.get(host) is not peer:
            self.peers[host] = peer
        decide, mark, when_durable = <tuple>split
        now = self.clock()
        cdef PyObject* argv[2]
        argv[0] = <PyObject*>req
        argv[1] = <PyObject*>now
        if not agent.eager:
            # A store that awaits the network (Redis): the whole decision runs in a Task
            # (its first step may need asyncio.current_task()); the agent's _finish hands
            # the result back to decided() below.
            if split is self.split0 and self.service is not None:
                # ChargingService.decide's first step, without its coroutine: the compiled
                # twin takes the request (a coroutine of its own, awaited by the agent's
                # _finish in a Task, which answers through decided()) or declines it (None:
                # decide below)
                svc = self.service
                fast = svc._fast
                if fast is not None:
                    done = fast(svc, req, now)
                    if done is not None and hasattr(done, "__await__"):
                        agent._spawn(agent._finish(peer, request, req, done, t0))
                        return
                    if done is not None:  # decided at once (a synchronous store)
                        self.answer_decided(peer, request, req, done, t0, mark, when_durable)
                        return
            coro = PyObject_Vectorcall(decide, argv, 1, _NOW_KW)  # decide(req, now=now)
            agent._spawn(agent._finish(peer, request, req, coro, t0))
            return
        if self.decide_now is not None and split is self.split0:
            try:
                result = self.decide_now(req, now)
            except Exception:  # what decide raises (JournalError): answer as respond does
                agent._decided(peer, request, req, agent._failed(req), t0, mark=False)
                return
            if result is not None:  # decided, records enqueued: as after `await decide`
                self.answer_decided(peer, request, req, result, t0, mark, when_durable)
                return
            # None: nothing was decided and nothing changed -- the coroutine below
        coro = PyObject_Vectorcall(decide, argv, 1, _NOW_KW)  # decide(req, now=now)
        sent = PyIter_Send(coro, None, &out)
        if sent == PYGEN_RETURN:
            result = <object>out
            Py_DECREF(result)
            self.answer_decided(peer, request, req, result, t0, mark, when_durable)
            return
        if sent == PYGEN_NEXT:  # the decision suspended (a session's turn): a Task goes on
            yielded = <object>out
            Py_DECREF(yielded)
            agent._spawn(agent._finish(peer, request, req, self.resume(coro, yielded), t0))
            return
        try:  # PYGEN_ERROR: the exception is set; raise it here to handle it as respond does
            raise_pending()
        except Exception:
            agent._decided(peer, request, req, agent._failed(req), t0, mark=False)

    def decided(self, peer, request, req, result, long long t0):
        """``agent._decided`` for a CCR whose decision finished in a Task (the agent's
        ``_finish``, right after ``decide`` returned: no await in between, so the durability
        mark read here is the request's own) while the agent's ``_split`` is set: the answer
        goes out through a Durable like an eagerly decided one."""
        decide, mark, when_durable = <tuple>self.agent._split
        self.answer_decided(peer, request, req, result, t0, mark, when_durable)

    cdef answer_decided(self, peer, request, req, result, long long t0, mark, when_durable):
        """A decided request (records enqueued): read the durability mark at once (the
        contract of durable_mark), encode the CCA, send it from the durability callback."""
        pos = mark()
        answer = self.encode(request, req, result)
        if answer is None:
            answer = self.agent._answer_for(request, req, result)
        when_durable(pos, Durable(self, peer, request, req, answer, t0, result.outcome))


cdef int raise_pending() except -1:
    # PyIter_Send returned PYGEN_ERROR with the exception set: propagate it
    return -1


@cython.final
@cython.freelist(64)
cdef class Durable:
    """The journal's durability callback for one answer (``agent._durable``'s common case)."""

    cdef Responder r
    cdef object peer, request, req, answer, outcome
    cdef long long t0

    def __cinit__(self, Responder r, peer, request, req, answer, long long t0, outcome):
        self.r = r
        self.peer = peer
        self.request = request
        self.req = req
        self.answer = answer
        self.t0 = t0
        self.outcome = outcome

    def __call__(self, exc):
        cdef Responder r = self.r
        if exc is not None:  # the group commit failed: the agent answers 5012/4002
            r.agent._durable(self.peer, self.request, self.req, self.answer, self.t0,
                             self.outcome, 272, exc)
            return
        r.observe_ccr(r.rc_by_id[id(self.outcome)], (_now_ns() - self.t0) * 1e-9)
        peer = self.peer
        cdef Lane lane = _REPLY_LANE
        if lane is not None and type(peer) is lane.protocol_cls:
            lane.reply(peer, self.request, self.answer, self.t0)
        else:
            peer.reply(self.request, self.answer, self.t0)


cdef Lane _REPLY_LANE = None


# ------------------------------------------------------------------------------ receiving
cdef inline tuple _header(Message m):
    return (m.version, m.flags, m.code, m.app_id, m.hop_by_hop, m.end_to_end)


@cython.final
cdef class Lane:
    """Compiled twin of ``PeerConnection.receive_data`` + ``peer_receive.on_frame``'s fast
    lane + ``process_request`` + ``PeerProtocol._handle``'s loop, for a connection with a
    responder (diameter/transport_protocol.py hands the parts over, once per server).

    :meth:`receive` returns None when it declined the whole read before touching anything
    (a partial frame buffered, a framing error, a terminated connection): the caller then
    runs the Python path on the same bytes. Otherwise every frame is handled, in order:
    an application request on an open connection (version/length checked here; flags R,
    not a base command, application not 0) is decoded, pushes the watchdog, is validated,
    claims its duplicate key and is handed to the responder; any other frame, any doubt
    (decode error, validation error, a duplicate hit, 3004/3007) goes through the Python
    ``on_frame``/``process_request``, which answer as the spec does. Events and requests
    are dispatched after the whole read, in frame order, as ``_handle`` does. Returns
    the ``ConnectionTerminated`` event seen, or False."""

    cdef object decode, on_frame, process_request, check_request, check_avps, diameter_error
    cdef object fast_a, fast_b, wd_okay, request_received
    cdef dict commands
    cdef double jitter
    cdef Py_ssize_t nesting_bytes
    cdef object protocol_cls, log_enabled, log_config, log_wrapper
    cdef bint log_on

    def __init__(self, *, decode, on_frame, process_request, check_request, check_avps,
                 diameter_error, fast_states, wd_okay, jitter, commands, nesting_bytes,
                 request_received, protocol_cls=None, log_enabled=None):
        self.decode = decode
        self.on_frame = on_frame
        self.process_request = process_request
        self.check_request = check_request
        self.check_avps = check_avps
        self.diameter_error = diameter_error
        self.fast_a = fast_states[0] if fast_states else object()
        self.fast_b = fast_states[len(fast_states) - 1] if fast_states else object()
        self.wd_okay = wd_okay
        self.jitter = jitter
        self.commands = commands
        self.nesting_bytes = nesting_bytes
        self.request_received = request_received
        self.protocol_cls = protocol_cls
        self.log_enabled = log_enabled

    def use_for_replies(self, protocol_cls, log_enabled, log_config=None):
        """Answers made by :class:`Durable` for a *protocol_cls* peer go through
        :meth:`reply` (the twin of ``PeerProtocol.reply``); *log_enabled()*: whether the
        per-request log line is on (then ``PeerProtocol.reply`` runs, it writes the line)."""
        global _REPLY_LANE
        self.protocol_cls = protocol_cls
        self.log_enabled = log_enabled
        self.log_config = log_config
        self.log_wrapper = None
        _REPLY_LANE = self

    cdef bint _logging(self) except -1:
        """``log_enabled()``, remembered while *log_config*'s wrapper class stays the same
        (the rule of diameter/transport_protocol._log_enabled, which says when it holds)."""
        cfg = self.log_config
        if cfg is None:
            return bool(self.log_enabled())
        wrapper = getattr(cfg, "default_wrapper_class", None)
        if wrapper is not None and wrapper is self.log_wrapper:
            return self.log_on
        on = bool(self.log_enabled())
        if wrapper is not None and getattr(wrapper, "__module__", "") == "structlog._native":
            self.log_wrapper = wrapper
            self.log_on = on
        return on

    cdef reply(self, proto, request, answer, long long t0):
        """``PeerProtocol.reply`` + ``PeerConnection.send_answer_bytes`` for encoded answer
        bytes on an open connection; anything else runs the Python methods (the spec)."""
        conn = proto.conn
        if conn is None:
            return
        if (type(answer) is not bytes or type(request) is not Message or conn.terminated
                or (proto._log_requests and self._logging())):
            proto.reply(request, answer, t0)
            return
        state = conn.state
        hbh = (<Message>request).hop_by_hop
        inflight = conn._inflight
        if not (state is self.fast_a or state is self.fast_b) or hbh not in inflight:
            proto.reply(request, answer, t0)
            return
        key = inflight.pop(hbh)
        if key is not None:  # DuplicateCache.complete()
            entries = conn._dups._entries
            hit = entries.get(key)
            if hit is not None:
                entry = (hit[0], answer)
                untrack_atomic_tuple(entry)
                entries[key] = entry
        conn._out.append(answer)  # the table's only action in R-Open/I-Open: Snd-Message
        if not proto._in_handle and not proto._flush_armed:
            proto._flush_armed = True
            proto._loop.call_soon(proto._flush)

    def receive(self, proto, conn, bytes data, double now):
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data), pos = 0, length, nframes = 0, whole_end
        cdef Py_ssize_t mx
        cdef unsigned int flags, code, app
        if conn.terminated:
            return None
        frames = conn._frames
        if frames._buf or frames._error is not None:
            return None
        mx = frames._max
        # 1. the frame boundaries (headers only): any framing doubt -> the Python path
        while n - pos >= 4:
            if p[pos] != 1:
                return None
            length = (<Py_ssize_t>p[pos + 1] << 16) | (<Py_ssize_t>p[pos + 2] << 8) | p[pos + 3]
            if length < 20 or length & 3 or length > mx:
                return None
            if n - pos < length:
                break
            pos += length
            nframes += 1
        whole_end = pos
        # 2. every whole frame, in order
        cdef list pending = []
        cdef Py_ssize_t off = 0
        while off < whole_end:
            length = (<Py_ssize_t>p[off + 1] << 16) | (<Py_ssize_t>p[off + 2] << 8) | p[off + 3]
            frame = PyBytes_FromStringAndSize(<const char*>p + off, length)
            flags = p[off + 4]
            code = (<unsigned int>p[off + 5] << 16) | (<unsigned int>p[off + 6] << 8) | p[off + 7]
            app = ((<unsigned int>p[off + 8] << 24) | (<unsigned int>p[off + 9] << 16)
                   | (<unsigned int>p[off + 10] << 8) | p[off + 11])
            off += length
            if conn.terminated:
                break
            state = conn.state
            if ((state is self.fast_a or state is self.fast_b) and flags & 0x80
                    and code != 257 and code != 280 and code != 282 and app != 0):
                msg = self._fast(conn, frame, now, flags, code, app)
                if msg is not None:
                    pending.append(msg)
            else:
                self.on_frame(conn, frame, now)
            if conn._events:
                pending.extend(conn._take_events())
        if conn._events:
            pending.extend(conn._take_events())
        frames.frames_total += nframes
        if whole_end < n:
            frames.feed(data[whole_end:])  # a partial frame: buffered (checked above)
        # 3. dispatch, as PeerProtocol._handle does
        responder = proto.responder
        terminated = False
        for ev in pending:
            if type(ev) is Message:
                if type(responder) is Responder:
                    try:
                        (<Responder>responder).respond(ev, proto)
                    except Exception:
                        proto._handler_failed(ev, _now_ns())
                else:
                    try:
                        responder(ev, proto)
                    except Exception:
                        proto._handler_failed(ev, _now_ns())
            elif type(ev) is self.request_received:
                msg = ev.message
                try:
                    responder(msg, proto)
                except Exception:
                    proto._handler_failed(msg, _now_ns())
            else:
                t = proto._other_event(ev)
                if t is not None:
                    terminated = t
        return terminated

    cdef object _fast(self, conn, bytes frame, double now, unsigned int flags,
                      unsigned int code, unsigned int app):
        """One application request on an open connection: the Message to hand to the
        responder, or None when it was answered/dropped here or by the Python path."""
        try:
            msg = self.decode(frame)
        except self.diameter_error:
            self.on_frame(conn, frame, now)  # the spec answers the decode error
            return None
        cdef Message m = <Message>msg
        wd = conn._watchdog
        if wd is not None:
            if wd.state is self.wd_okay:
                # Watchdog.received() in state OKAY for a non-DWA: SetWatchdog (RFC 3539)
                wd.deadline = now + wd.twinit - self.jitter + 2 * self.jitter * wd._rng()
            else:
                old = wd.state
                wd.received(now, is_dwa=False)
                conn._watchdog_changed(old)
        if conn.config.validate_requests:
            if not self._valid(m):
                hdr = _header(m)
                try:
                    self.check_request(msg, header=hdr)  # raises the spec's error
                except self.diameter_error as err:
                    conn._protocol_error(err, answered=conn._answer_error(err))
                    return None
        # process_request's common case: negotiated application, a new key, room in flight
        if app not in conn.applications:
            self.process_request(conn, msg, now, _header(m))
            return None  # its RequestReceived (if any) is in conn._events
        host = ""  # msg.get(264, ""): Origin-Host by code, base vendor, the first one
        for a in m.avps:
            if type(a) is not Avp:
                host = msg.get(264, "")
                break
            if (<Avp>a).code == 264 and (<Avp>a).vendor == 0:
                host = a.value
                break
        key = (host.lower() if type(host) is str else "", m.end_to_end)
        inflight = conn._inflight
        dups = conn._dups
        hbh = m.hop_by_hop
        if len(inflight) >= conn.config.max_inflight or hbh in inflight:
            self.process_request(conn, msg, now, _header(m))
            return None  # its RequestReceived (if any) is in conn._events
        if now - dups.lifetime >= dups._oldest:
            dups._expire(now)
        entries = dups._entries
        if key in entries:  # a duplicate: the spec answers or drops it
            self.process_request(conn, msg, now, _header(m))
            return None  # its RequestReceived (if any) is in conn._events
        # DuplicateCache.claim() on a MISS
        if dups.lifetime > 0:
            untrack_atomic_tuple(key)
            entry = (now, None)
            untrack_atomic_tuple(entry)
            entries[key] = entry
            dups._order.append(key)  # list(_order) == list(_entries) (diameter/duplicates.py)
            if now < dups._oldest:
                dups._oldest = now
            if len(entries) > dups.max_entries:
                dups._evict()
        inflight[hbh] = key
        return msg

    cdef bint _valid(self, Message m) except -1:
        """check_request's verdict when it is 'valid' on the common path (the remembered
        command, a clean header, a short buffer, check_avps passes); False: run the spec."""
        cmd = self.commands.get((m.code, m.app_id))
        if cmd is None or m.version != 1 or (m.flags & 0xA0) != 0x80:
            return False
        if m.flags & 0x40 and not cmd.proxiable:
            return False
        avps = m.avps
        if avps:
            buf = getattr(avps[0], "_buf", None)
            if buf is not None and len(buf) >= self.nesting_bytes:
                return False
        try:
            self.check_avps(avps, cmd.request)  # strict=False, its default (no kwargs dict)
        except self.diameter_error:
            return False
        return True
