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

import types
from functools import partial as _partial

ABI = 1

include "gc_untrack.pxi"
include "slot_layout.pxi"

# The fields the lane reads and writes per request, by offset once bind_layouts named the
# classes (diameter/peer.py, transport_protocol.py, duplicates.py, watchdog.py, framing.py
# declare __slots__); by name otherwise (slot_layout.pxi).
cdef tuple N_CONN = ("terminated", "state", "_frames", "_events", "_watchdog", "config",
                     "applications", "_inflight", "_dups", "_out")
cdef enum:
    C_TERMINATED, C_STATE, C_FRAMES, C_EVENTS, C_WATCHDOG, C_CONFIG, C_APPLICATIONS
    C_INFLIGHT, C_DUPS, C_OUT
cdef tuple N_PROTO = ("conn", "_log_requests", "_in_handle", "_flush_armed", "_loop",
                      "responder")
cdef enum:
    P_CONN, P_LOG_REQUESTS, P_IN_HANDLE, P_FLUSH_ARMED, P_LOOP, P_RESPONDER
cdef tuple N_DUPS = ("lifetime", "_oldest", "_entries", "_order", "max_entries")
cdef enum:
    D_LIFETIME, D_OLDEST, D_ENTRIES, D_ORDER, D_MAX_ENTRIES
cdef tuple N_WD = ("state", "deadline", "twinit", "_rng")
cdef enum:
    W_STATE, W_DEADLINE, W_TWINIT, W_RNG
cdef tuple N_FB = ("_buf", "_error", "_max", "frames_total")
cdef enum:
    F_BUF, F_ERROR, F_MAX, F_FRAMES_TOTAL


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
# what the fast path hands back for the rest of an outcome that is not the plain one
cdef object _CoroutineType = types.CoroutineType


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
    cdef bint fast_direct   # decide_now is the service class's own: its body inlined here

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
        # decide_now unreplaced (a test may wrap it): run its body here (_decide_now), one
        # Python frame less per CCR
        dn = self.decide_now
        self.fast_direct = (dn is not None and getattr(dn, "__self__", None) is self.service
                            and getattr(dn, "__func__", None)
                            is getattr(type(self.service), "decide_now", None))
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
                result = (self._decide_now(req, now) if self.fast_direct
                          else self.decide_now(req, now))
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

    cdef _decide_now(self, req, now):
        """ChargingService.decide_now's body (charging/service.py, the spec): the service's
        compiled fast path decides, declines (None) or hands back the coroutine of the rest
        of an outcome that is not the plain one, which finishes in one send (the synchronous
        ledger)."""
        svc = self.service
        fast = svc._fast  # (read per call: tests switch it off on a live service)
        if fast is None:
            return None
        done = fast(svc, req, now)
        if done is None or type(done) is not _CoroutineType:
            return done
        try:
            done.send(None)
        except StopIteration as stop:
            return stop.value
        done.close()
        raise RuntimeError("decide_now: the fast path's rest suspended")

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
            # a Message (the compiled writer declined): the agent's own callback sends it,
            # which copes with an answer that cannot be encoded (5012, the session ended)
            agent = self.agent
            when_durable(pos, _partial(agent._durable, peer, request, req,
                                       agent._answer_for(request, req, result), t0,
                                       result.outcome, 272))
            return
        when_durable(pos, Durable(self, peer, request, req, answer, t0, result.outcome))


cdef int raise_pending() except -1:
    # PyIter_Send returned PYGEN_ERROR with the exception set: propagate it
    return -1


@cython.final
@cython.freelist(64)
cdef class Durable:
    """The journal's durability callback for one answer (``agent._durable``'s common case:
    encoded answer bytes; a Message answer goes to ``agent._durable`` itself)."""

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


cdef inline bint _served(object name, object served) except -1:
    """*name* (a DiameterIdentity) is in the lower-case set *served*: as is (the common
    case, no new string), else lowered; anything but a str is not served."""
    if type(name) is not str:
        return False
    if name in served:
        return True
    return name.lower() in served


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
    cdef Layout l_conn, l_proto, l_dups, l_wd, l_fb
    cdef object cfg_seen      # the PeerConfig whose values below were read
    cdef bint cfg_validate
    cdef Py_ssize_t cfg_max_inflight
    cdef object cfg_realms, cfg_hosts  # served_realms / served_hosts (None: not checked)

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
        self.l_conn.tp = self.l_proto.tp = self.l_dups.tp = self.l_wd.tp = self.l_fb.tp = NULL
        self.cfg_seen = None

    def bind_layouts(self, conn_cls, proto_cls, dups_cls, wd_cls, frames_cls):
        """Read the fields of these classes (PeerConnection, PeerProtocol, DuplicateCache,
        Watchdog, FrameBuffer: all with __slots__) at their offsets from now on; an object
        of any other class is still read by name."""
        _layout(&self.l_conn, conn_cls, N_CONN, None)
        _layout(&self.l_proto, proto_cls, N_PROTO, None)
        _layout(&self.l_dups, dups_cls, N_DUPS, None)
        _layout(&self.l_wd, wd_cls, N_WD, None)
        _layout(&self.l_fb, frames_cls, N_FB, None)

    def layouts_known(self):
        """For the tests: which classes' fields are read by offset (False: by name)."""
        return {"PeerConnection": self.l_conn.tp != NULL,
                "PeerProtocol": self.l_proto.tp != NULL,
                "DuplicateCache": self.l_dups.tp != NULL, "Watchdog": self.l_wd.tp != NULL,
                "FrameBuffer": self.l_fb.tp != NULL}

    cdef inline object _c(self, conn, int i):
        return _get(&self.l_conn, N_CONN, conn, i)

    cdef inline object _p(self, proto, int i):
        return _get(&self.l_proto, N_PROTO, proto, i)

    cdef inline object _d(self, dups, int i):
        return _get(&self.l_dups, N_DUPS, dups, i)

    cdef int _config(self, conn) except -1:
        """The connection's validate_requests and max_inflight, read again only when its
        PeerConfig object is another one (a PeerConfig is never changed in place)."""
        cfg = self._c(conn, C_CONFIG)
        if cfg is not self.cfg_seen:
            self.cfg_validate = bool(cfg.validate_requests)
            self.cfg_max_inflight = cfg.max_inflight
            self.cfg_realms = getattr(cfg, "served_realms", None)
            self.cfg_hosts = getattr(cfg, "served_hosts", None)
            self.cfg_seen = cfg
        return 0

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
        conn = self._p(proto, P_CONN)
        if conn is None:
            return
        if (type(answer) is not bytes or type(request) is not Message
                or self._c(conn, C_TERMINATED)
                or (self._p(proto, P_LOG_REQUESTS) and self._logging())):
            proto.reply(request, answer, t0)
            return
        state = self._c(conn, C_STATE)
        hbh = (<Message>request).hop_by_hop
        inflight = self._c(conn, C_INFLIGHT)
        if (not (state is self.fast_a or state is self.fast_b) or type(inflight) is not dict
                or hbh not in <dict>inflight):
            proto.reply(request, answer, t0)
            return
        key = (<dict>inflight).pop(hbh)
        if key is not None:  # DuplicateCache.complete()
            entries = self._d(self._c(conn, C_DUPS), D_ENTRIES)
            hit = entries.get(key)
            if hit is not None:
                entry = (hit[0], answer)
                untrack_atomic_tuple(entry)
                entries[key] = entry
        self._c(conn, C_OUT).append(answer)  # the table's only action in R-Open/I-Open
        if not self._p(proto, P_IN_HANDLE) and not self._p(proto, P_FLUSH_ARMED):
            _put(&self.l_proto, N_PROTO, proto, P_FLUSH_ARMED, True)
            self._p(proto, P_LOOP).call_soon(proto._flush)

    def receive(self, proto, conn, bytes data, double now):
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data), pos = 0, length, nframes = 0, whole_end
        cdef Py_ssize_t mx
        cdef unsigned int flags, code, app
        if self._c(conn, C_TERMINATED):
            return None
        frames = self._c(conn, C_FRAMES)
        if (_get(&self.l_fb, N_FB, frames, F_BUF)
                or _get(&self.l_fb, N_FB, frames, F_ERROR) is not None):
            return None
        mx = _get(&self.l_fb, N_FB, frames, F_MAX)
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
            if self._c(conn, C_TERMINATED):
                break
            state = self._c(conn, C_STATE)
            if ((state is self.fast_a or state is self.fast_b) and flags & 0x80
                    and code != 257 and code != 280 and code != 282 and app != 0):
                msg = self._fast(conn, frame, now, flags, code, app)
                if msg is not None:
                    pending.append(msg)
            else:
                self.on_frame(conn, frame, now)
            if self._c(conn, C_EVENTS):
                pending.extend(conn._take_events())
        if self._c(conn, C_EVENTS):
            pending.extend(conn._take_events())
        _put(&self.l_fb, N_FB, frames, F_FRAMES_TOTAL,
             _get(&self.l_fb, N_FB, frames, F_FRAMES_TOTAL) + nframes)
        if whole_end < n:
            frames.feed(data[whole_end:])  # a partial frame: buffered (checked above)
        # 3. dispatch, as PeerProtocol._handle does
        responder = self._p(proto, P_RESPONDER)
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
        cdef Layout *lw = &self.l_wd
        wd = self._c(conn, C_WATCHDOG)
        if wd is not None:
            if _get(lw, N_WD, wd, W_STATE) is self.wd_okay:
                # Watchdog.received() in state OKAY for a non-DWA: SetWatchdog (RFC 3539)
                _put(lw, N_WD, wd, W_DEADLINE,
                     now + _get(lw, N_WD, wd, W_TWINIT) - self.jitter
                     + 2 * self.jitter * _get(lw, N_WD, wd, W_RNG)())
            else:
                old = wd.state
                wd.received(now, is_dwa=False)
                conn._watchdog_changed(old)
        self._config(conn)
        if self.cfg_validate:
            if not self._valid(m):
                hdr = _header(m)
                try:
                    self.check_request(msg, header=hdr)  # raises the spec's error
                except self.diameter_error as err:
                    conn._protocol_error(err, answered=conn._answer_error(err))
                    return None
        # process_request's common case: negotiated application, a new key, room in flight
        if app not in self._c(conn, C_APPLICATIONS):
            self.process_request(conn, msg, now, _header(m))
            return None  # its RequestReceived (if any) is in conn._events
        host = None  # msg.get(264, ""): Origin-Host by code, base vendor, the first one
        dest_realm = dest_host = None  # 283 / 293, the first of each (facts A, RFC 6733 §6.1.4)
        cdef bint plain = True
        cdef unsigned int c
        for a in m.avps:
            if type(a) is not Avp:
                plain = False
                break
            if (<Avp>a).vendor == 0:
                c = (<Avp>a).code
                if c == 264:
                    if host is None:
                        host = a.value
                elif c == 283:
                    if dest_realm is None:
                        dest_realm = a.value
                elif c == 293:
                    if dest_host is None:
                        dest_host = a.value
        if not plain:
            host = msg.get(264, "")
            dest_realm = msg.get(283)
            dest_host = msg.get(293)
        elif host is None:
            host = ""
        # not for local consumption (peer_receive.not_served): the spec answers 3002 / 3003
        if ((self.cfg_hosts is not None and dest_host is not None
             and not _served(dest_host, self.cfg_hosts))
                or (self.cfg_realms is not None and dest_host is None and dest_realm is not None
                    and not _served(dest_realm, self.cfg_realms))):
            self.process_request(conn, msg, now, _header(m))
            return None
        key = (host.lower() if type(host) is str else "", m.end_to_end)
        inflight = self._c(conn, C_INFLIGHT)
        dups = self._c(conn, C_DUPS)
        hbh = m.hop_by_hop
        if len(inflight) >= self.cfg_max_inflight or hbh in inflight:
            self.process_request(conn, msg, now, _header(m))
            return None  # its RequestReceived (if any) is in conn._events
        lifetime = self._d(dups, D_LIFETIME)
        if now - lifetime >= self._d(dups, D_OLDEST):
            dups._expire(now)
        entries = self._d(dups, D_ENTRIES)
        if key in entries:  # a duplicate: the spec answers or drops it
            self.process_request(conn, msg, now, _header(m))
            return None  # its RequestReceived (if any) is in conn._events
        # DuplicateCache.claim() on a MISS
        if lifetime > 0:
            untrack_atomic_tuple(key)
            entry = (now, None)
            untrack_atomic_tuple(entry)
            entries[key] = entry
            self._d(dups, D_ORDER).append(key)  # list(_order) == list(_entries)
            if now < self._d(dups, D_OLDEST):
                _put(&self.l_dups, N_DUPS, dups, D_OLDEST, now)
            if len(entries) > self._d(dups, D_MAX_ENTRIES):
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
